"""The statuses a task passes through: PENDING → RUNNING → SUCCESS / FAILED / CANCELLED, or INTERRUPTED
when its process ended first."""

from __future__ import annotations

STATUSES = ("PENDING", "RUNNING", "SUCCESS", "FAILED", "CANCELLED", "INTERRUPTED")
ACTIVE = ("PENDING", "RUNNING")
FINISHED = ("SUCCESS", "FAILED", "CANCELLED", "INTERRUPTED")
ENDED = ("SUCCESS", "FAILED", "CANCELLED")  # finished by the task itself (INTERRUPTED may be taken up again)
