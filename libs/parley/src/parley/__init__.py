"""The parley command-line tool."""
