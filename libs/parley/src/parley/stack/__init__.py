"""The embedded stack: real PostgreSQL, Redis and a Kafka-protocol broker as child processes."""
