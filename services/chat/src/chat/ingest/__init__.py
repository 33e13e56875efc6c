"""Imports: sync's batches stored idempotently by provenance, summaries, rollbacks."""
