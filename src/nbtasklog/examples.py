"""Example plugins shipped with nbtasklog: a dashboard backup, a legacy plugin and a high-volume one.

They need no network: the "Superset API" of the backup is simulated, with deterministic data.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from typing import Any

from .belief import belief_scope
from .context import TaskContext
from .plugins import Plugin


class DashboardBackup(Plugin):
    """Back up dashboards from a (simulated) Superset instance, logging from plugin, superset_api and system."""

    name = "dashboard_backup"
    params_schema = {
        "type": "object",
        "properties": {
            "dashboards": {"type": "integer", "minimum": 1, "default": 5, "description": "how many dashboards"},
            "delay": {"type": "number", "minimum": 0, "default": 0.05, "description": "seconds per API call"},
            "seed": {"type": "integer", "default": 7, "description": "makes warnings and errors repeatable"},
        },
    }

    def execute(self, params: dict[str, Any], context: TaskContext) -> dict[str, Any]:
        count = int(params.get("dashboards", 5))
        delay = float(params.get("delay", 0.05))
        rng = random.Random(params.get("seed", 7))
        log = context.logger
        api = log.with_source("superset_api")
        system = log.with_source("system")
        database_uuid = str(uuid.UUID(int=rng.getrandbits(128)))
        system.info("Backup target prepared", database_uuid=database_uuid, dashboards=count)
        log.info("Backing up %d dashboards", count)
        saved, failed = 0, []
        for index in range(count):
            context.check_cancelled()
            dashboard_id = 10 + index
            with belief_scope("backup_dashboard", f"dashboard {dashboard_id}"):
                api.debug("GET /api/v1/dashboard/%d", dashboard_id, dashboard_id=dashboard_id)
                time.sleep(delay)
                elapsed_ms = round(rng.uniform(40, 400), 1)
                api.info("GET /api/v1/dashboard/%d -> 200", dashboard_id, dashboard_id=dashboard_id,
                         database_uuid=database_uuid, elapsed_ms=elapsed_ms, status=200)
                if elapsed_ms > 330:
                    api.warning("Slow response for dashboard %d (%.0f ms)", dashboard_id, elapsed_ms,
                                dashboard_id=dashboard_id, elapsed_ms=elapsed_ms)
                charts = rng.randint(2, 9)
                if rng.random() < 0.15:
                    api.error("Export of dashboard %d failed: 502 Bad Gateway", dashboard_id,
                              dashboard_id=dashboard_id, database_uuid=database_uuid, status=502)
                    failed.append(dashboard_id)
                else:
                    log.info("Saved dashboard %d with %d charts", dashboard_id, charts,
                             dashboard_id=dashboard_id, charts=charts, database_uuid=database_uuid)
                    saved += 1
            context.progress((index + 1) / count, f"{index + 1}/{count} dashboards")
        if failed:
            log.warning("%d dashboard(s) could not be exported: %s", len(failed), failed, failed=failed)
        log.info("Backup finished: %d saved, %d failed", saved, len(failed), saved=saved, failed=len(failed))
        return {"saved": saved, "failed": failed}


class LegacyCleanup:
    """An old-style plugin: execute(params), stdlib logging and print. Its output still lands in its task."""

    name = "legacy_cleanup"

    def execute(self, params: dict[str, Any]) -> int:
        log = logging.getLogger("legacy_cleanup")
        files = int(params.get("files", 3))
        log.info("Cleaning %d temporary files", files)
        for index in range(files):
            print(f"removed /tmp/export-{index}.zip")
        log.warning("Cleanup skipped locked file /tmp/export-locked.zip")
        return files


class HighVolume(Plugin):
    """Emit many records fast (default 1,000,000) from several sources, for load tests and the viewer."""

    name = "high_volume"
    params_schema = {
        "type": "object",
        "properties": {"records": {"type": "integer", "minimum": 1, "default": 1_000_000}},
    }

    def execute(self, params: dict[str, Any], context: TaskContext) -> int:
        total = int(params.get("records", 1_000_000))
        sources = [context.logger.with_source(name) for name in ("plugin", "reader", "writer", "superset_api")]
        levels = ("info", "info", "info", "debug", "info", "warning", "info", "info", "info", "error")
        step = max(1, total // 100)
        for index in range(total):
            logger = sources[index % 4]
            getattr(logger, levels[index % 10])("record %d of %d", index + 1, total, row=index)
            if index % step == 0:
                context.check_cancelled()
                context.progress(index / total)
        return total
