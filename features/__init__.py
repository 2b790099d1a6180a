"""Point-in-time behaviour features: one implementation for training, batch scoring and serving."""
