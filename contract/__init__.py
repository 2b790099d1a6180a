"""The data contract: canonical tables, the event taxonomy and source mappings."""
