"""Pure values and functions: ids, manifests, row-count comparisons. No I/O.

May import: swarm.errors, swarm.clock.
"""
