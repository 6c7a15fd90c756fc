"""Schedules carried out: the scheduler loop (``runner``), the job history, and renderers for cron,
systemd and Kubernetes (``render``). The decisions are ``swarm.model.schedule``'s."""
