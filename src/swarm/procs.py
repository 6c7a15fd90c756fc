"""Facts about local processes that locks, work directories and clusters share (no swarm imports)."""
from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Is process ``pid`` running on this machine? (One we may not signal still counts as alive.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
