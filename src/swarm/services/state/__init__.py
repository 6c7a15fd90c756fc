"""State-directory use cases: snapshots into the repository's tree store (``backup``) and their
restore into a fresh directory (``restore``). See docs/state.md.

May import: swarm.repo, swarm.sources.state, swarm.model, swarm.errors, swarm.clock, swarm.procs.
"""
