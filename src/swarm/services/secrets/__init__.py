"""Secrets kept out, and checked: ``swarm admin secrets check``.

``check.check_secrets`` reads every secret the deployment needs from where it is kept (the
``[secrets]`` table: ``swarm.model.secrets.SecretsPolicy``), judges each value, and scans the
places a secret must never be (the config file, the live state directory, the newest state
snapshot, export archives) for the values (by keyed hash) and for the scanner's secret
shapes. It returns a ``SecretsCheckResult`` and never prints; no value is kept, returned or
written.

May import: swarm.model, swarm.sources, swarm.repo (reading a snapshot), swarm.services.state,
swarm.services.transfer (reading an archive), swarm.errors, swarm.clock.
"""
from swarm.services.secrets.check import Finding, SecretsCheckResult, SecretStatus, check_secrets

__all__ = ["Finding", "SecretStatus", "SecretsCheckResult", "check_secrets"]
