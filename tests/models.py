"""How the suite's hypothesis state machines run: NBTASKLOG_MODEL_EXAMPLES examples (default 12) of
`steps` steps, no deadline (real databases and threads), and NBTASKLOG_MODEL_NO_SHRINK=1 to skip the
shrinking of a failure, which can take minutes with real processes."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings


def model_settings(steps: int) -> settings:
    return settings(
        max_examples=int(os.environ.get("NBTASKLOG_MODEL_EXAMPLES", "12")), stateful_step_count=steps, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], derandomize=False,
        phases=[Phase.generate] if os.environ.get("NBTASKLOG_MODEL_NO_SHRINK") else list(Phase))
