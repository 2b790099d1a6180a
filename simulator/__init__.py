"""Seeded demo-data simulator with known ground truth."""
