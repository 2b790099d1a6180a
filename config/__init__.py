"""Configuration: every setting and every path the library uses, in one typed place (``config.settings``)."""
