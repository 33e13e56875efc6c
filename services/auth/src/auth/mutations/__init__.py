"""Device mutations of preferences: sync's `mutation.requested` commands, applied once."""
