"""Settings: command-line flags > environment (SWARM_*) > swarm.toml > defaults.

May import: swarm.errors, swarm.model.
"""
from swarm.config.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
