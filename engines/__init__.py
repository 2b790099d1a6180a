"""Where per-partition work runs: in this process one partition at a time, or on a Dask cluster."""
