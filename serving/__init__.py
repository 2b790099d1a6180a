"""The BentoML scoring service: thin HTTP layer over the same feature and scoring code as the CLI."""
