"""Event payload models, one module per producing service."""
