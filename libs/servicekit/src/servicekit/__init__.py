"""Parley service chassis."""
