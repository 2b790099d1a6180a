"""The event store and ingestion of mapped sources into it."""
