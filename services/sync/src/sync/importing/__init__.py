"""Import jobs: uploads to the blob store, a worker streaming the readers' records to chat
as ingest batches, chat's answers, the report, validation and rollback (docs/migration.md)."""
