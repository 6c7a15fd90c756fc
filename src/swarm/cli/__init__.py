"""Command-line interface of swarm."""
