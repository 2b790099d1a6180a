"""The event lake: the store's tables as Parquet, partitioned by a stable hash of the lead id."""
