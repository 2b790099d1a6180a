"""Model training on sales feedback: out-of-time validation, calibration, evaluation against baselines."""
