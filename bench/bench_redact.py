"""7. Redaction per call: `Redactor.text` on messages with and without a secret, `Redactor.metadata_json` on metadata.

The calls are timed inside a real task of a real engine, interleaved with the references, so that a
noisy moment hits them alike: the reference of a message is `TaskLogger.info("msg %d", i)` to the
write buffer (what every record costs today), the reference of metadata the same call with two
metadata keywords. Loops are included in every figure, as in section 1. The flusher is kept out of
the timed loops; the buffer is written between loops, untimed.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from common import Row, check, median, temp_dir

from nbtasklog import Engine
from nbtasklog.redact import MARKER, Redactor

# Ordinary messages of 40–80 characters: one without any of the characters the patterns need first
# (":", "=", "-", "_"), one with a ":" as the runner's own "Task started: …" has, and one with a secret.
PLAIN = "GET /api/v1/dashboard/12 returned 200 in 35 ms (3 charts, 2 filters)"
COLON = "Task started: dashboard_backup for 3 dashboards on the warehouse"
SECRET = "connecting to the warehouse as bob with password=hunter2 now"
METADATA = '{"dashboard_id":12,"table":"users","rows":4213,"took_ms":35.2}'
METADATA_SECRET = '{"dashboard_id":12,"user":"bob","password":"hunter2","rows":4213}'
CASES = ("info", "info_meta", "plain", "colon", "secret", "metadata", "metadata_secret")


def _task(engine: Engine, redactor: Redactor):
    def per_call(params: dict[str, Any], context: Any) -> dict[str, list[float]]:
        n, reps = params["n"], params["reps"]
        info, text, metadata = context.logger.info, redactor.text, redactor.metadata_json
        # Every case is called through a lambda alike (its argument a local of the lambda); the
        # "empty" lambda measures what that and the loop add, which run() takes off.
        calls = {
            "info": lambda i: info("msg %d", i),
            "info_meta": lambda i: info("msg %d", i, dashboard_id=i, table="users"),
            "plain": lambda i, s=PLAIN: text(s),
            "colon": lambda i, s=COLON: text(s),
            "secret": lambda i, s=SECRET: text(s),
            "metadata": lambda i, s=METADATA: metadata(s),
            "metadata_secret": lambda i, s=METADATA_SECRET: metadata(s),
            "empty": lambda i: None,
        }
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(reps):
            for name in calls:
                call = calls[name]
                start = perf_counter()
                for i in range(n):
                    call(i)
                times[name].append((perf_counter() - start) / n * 1e9)
            engine.flush()  # untimed: write what the info loops queued
        return times

    return per_call


def run(quick: bool) -> list[Row]:
    n, reps = (5_000, 3) if quick else (100_000, 9)
    redactor = Redactor()
    check(redactor.text(PLAIN) is PLAIN and redactor.text(COLON) is COLON, "a message without a secret was changed")
    check(redactor.text(SECRET).endswith(f"password={MARKER} now"), "the secret of the message was not redacted")
    check(redactor.metadata_json(METADATA) is METADATA, "metadata without a secret was changed")
    check(f'"password":"{MARKER}"' in redactor.metadata_json(METADATA_SECRET), "the secret of the metadata was not redacted")
    with temp_dir("redact") as directory:
        engine = Engine(directory / "bench.duckdb", flush_interval=3600, flush_size=2**62, handle_signals=False)
        try:
            task = engine.run_task(_task(engine, redactor), {"n": n, "reps": reps})
            check(task.wait(timeout=600) == "SUCCESS", f"redaction task failed: {task.error}")
            times = task.result
        finally:
            engine.close()
    empty = median(times["empty"])  # what the lambda and the loop add to a call
    info, info_meta, plain, colon, secret, metadata, metadata_secret = (
        max(0.0, median(times[name]) - empty) for name in CASES)
    label = f"median of {reps} loops of {n:,} calls, loop taken off ({empty:.0f} ns)"
    ref = "ref: `logger.info(\"msg %d\", i)` in a task"
    ref_meta = "ref: `logger.info(\"msg %d\", i, dashboard_id=i, table=\"users\")` in a task"
    return [
        Row("redact.text_plain", f"7. redaction: `Redactor.text` on a {len(PLAIN)}-character message without a secret "
            f"or any of `: = - _` ({ref}; {label})", plain, info, "ns/call", "≤ 200 ns", plain <= 200),
        Row("redact.text_colon", f"7. redaction: `Redactor.text` on a {len(COLON)}-character message with a `:`, "
            f"no secret: \"{COLON[:14]}…\" ({ref}; {label})", colon, info, "ns/call", "report", None),
        Row("redact.text_secret", f"7. redaction: `Redactor.text` on a {len(SECRET)}-character message with "
            f"`password=…` ({ref}; {label})", secret, info, "ns/call", "report", None),
        Row("redact.metadata", f"7. redaction: `Redactor.metadata_json` on {len(METADATA)} characters of metadata "
            f"without a secret ({ref_meta}; {label})", metadata, info_meta, "ns/call", "report", None),
        Row("redact.metadata_secret", f"7. redaction: `Redactor.metadata_json` on {len(METADATA_SECRET)} characters "
            f"of metadata with `\"password\"` ({ref_meta}; {label})", metadata_secret, info_meta, "ns/call", "report", None),
    ]

