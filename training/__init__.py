"""Model training on sales feedback: out-of-time validation, calibration, MLflow runs and registry."""
