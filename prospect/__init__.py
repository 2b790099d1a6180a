"""Prospect-propensity scorer: command line and configuration."""
