"""Widget wire format, kernel side: columnar JSON vs Arrow IPC for a batch of records (python bench/viewer/wire_encode.py OUT_DIR)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pyarrow as pa

from nbtasklog.record import LogRecord, metadata_to_json
from nbtasklog.store.store import records_to_arrow
from nbtasklog.widget import encode_records

N = 100_000
T0 = 1_714_564_800_000_000
SOURCES = ("plugin", "reader", "writer", "superset_api")
LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "INFO", "WARNING", "INFO", "INFO", "INFO", "ERROR")
records = [LogRecord("t", i + 1, T0 + i * 10, LEVELS[i % 10], SOURCES[i % 4], f"record {i + 1} of {N}",
                     metadata_to_json({"row": i, "ratio": i / 7})) for i in range(N)]


def arrow_ipc(batch: list[LogRecord]) -> bytes:
    table = records_to_arrow(batch)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def best(fn, repeat=5):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(records)
        times.append(time.perf_counter() - start)
    return min(times), out


out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
for name, fn in (("json", encode_records), ("arrow", arrow_ipc)):
    seconds, data = best(fn)
    (out / f"batch.{name}").write_bytes(data)
    print(f"{name:6} encode {seconds * 1000:7.1f} ms  {len(data) / 1e6:6.2f} MB")
print("schema:", records_to_arrow(records[:1]).schema)
