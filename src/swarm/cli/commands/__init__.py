"""Typer sub-command modules; each exposes ``register(app)``."""
