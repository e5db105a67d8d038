"""The process that owns a run: recorded in its tags at start, so that a later process can
judge whether the run's owner is still alive (:mod:`incdyn.platform.ghosts`).

Tags: host, pid and when that process started (boot id and start tick, Linux), which tells a
reused pid apart. A run owned by another host cannot be judged from here.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

TAG_HOST = "incdyn.host"
TAG_PID = "incdyn.pid"
TAG_PID_START = "incdyn.pid_start"  # boot id and start tick of the pid: a reused pid differs


def _process_start(pid: int) -> str:
    """``<boot id>:<start tick>`` of process ``pid`` (Linux), or ``""`` where unknown."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"  # field 22: starttime
    except (OSError, IndexError):
        return ""


def owner_tags() -> dict[str, str]:
    """The tags that name this process as a run's owner."""
    pid = os.getpid()
    return {TAG_HOST: socket.gethostname(), TAG_PID: str(pid), TAG_PID_START: _process_start(pid)}


def owner_gone(tags: dict[str, str]) -> bool:
    """Whether the process that the run's ``tags`` name has ended (False when it cannot be
    judged: no owner recorded, or another host)."""
    if tags.get(TAG_HOST) != socket.gethostname() or not tags.get(TAG_PID, "").isdigit():
        return False
    pid = int(tags[TAG_PID])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    if _state(pid) == "Z":  # killed, not yet reaped by its parent
        return True
    recorded = tags.get(TAG_PID_START, "")
    return bool(recorded) and _process_start(pid) not in ("", recorded)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""
