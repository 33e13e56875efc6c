"""Links sent by email: verifying the address, resetting a forgotten password."""
