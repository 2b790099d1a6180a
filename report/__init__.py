"""The marketing report: what drives conversion, in one HTML page that opens from disk."""
