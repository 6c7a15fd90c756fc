"""Presentation: human tables, JSON, progress bars. Reads result types; calls no services."""
