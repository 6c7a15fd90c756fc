"""Checks that span the stores of a deployment: ``stack`` (``swarm admin check stack``) gathers
the facts from PostgreSQL, the bucket and the state directory and hands them to the pure
``swarm.model.integrity``. Whole-stack restores call :func:`stack.check_stack` on their target and
report its result under ``integrity``.

May import: swarm.model, swarm.sources, swarm.platform, swarm.errors, swarm.clock.
"""
from swarm.services.check.stack import DEFAULT_WORKERS, StackCheckResult, check_stack

__all__ = ["DEFAULT_WORKERS", "StackCheckResult", "check_stack"]
