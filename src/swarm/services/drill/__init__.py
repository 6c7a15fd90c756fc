"""DR drills (``swarm admin drill``, docs/dr-drill.md): provision a scratch deployment, restore a
backup set or a point in time into it, point a swarm API at it, validate it rung by rung, tear
it down, and measure RTO and RPO against the tier's targets; each drill's result is recorded in
the repository under ``drills/``.

Entry points: ``run_drill`` (what the CLI and the scheduler call; ``choose_set`` picks the newest or a
random retained set), ``drill_history``,
``last_drill`` (what ``status`` and metrics read), ``cleanup_drills``.
"""
from swarm.services.drill.run import (
    DrillEnv,
    DrillRequest,
    DrillResult,
    choose_set,
    cleanup_drills,
    drill_history,
    last_drill,
    plan_drill,
    run_drill,
)

__all__ = ["DrillEnv", "DrillRequest", "DrillResult", "choose_set", "cleanup_drills", "drill_history", "last_drill",
           "plan_drill", "run_drill"]
