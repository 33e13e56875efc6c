"""Parley event contracts."""
