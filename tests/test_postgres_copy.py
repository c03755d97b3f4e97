"""Attacks on the shared store: the CSV COPY straight into task_logs must store exactly what the old row-by-row COPY
(text format, psycopg adapting each value, through the temporary table) stored, for hostile text."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from hostile import MESSAGES

from nbtasklog.store import store as store_module
from nbtasklog.store.buffer import _to_arrow
from nbtasklog.store.store import LOG_COLUMNS, Store, _json_without_nul, _text_without_nul


def _old_copy_postgresql(conn: Any, batch: pa.Table) -> None:
    """_copy_postgresql as it was before the CSV COPY: row by row through a temporary table, the reference."""
    cursor = conn.connection.driver_connection.cursor()
    quoted = ", ".join(f'"{c}"' for c in LOG_COLUMNS)
    cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS nbtasklog_batch ON COMMIT DELETE ROWS "
                   f"AS SELECT {quoted} FROM task_logs WITH NO DATA")
    with cursor.copy(f"COPY nbtasklog_batch ({quoted}) FROM STDIN") as copy:
        columns = [batch.column(name).to_pylist() for name in LOG_COLUMNS]
        for task_id, seq, timestamp, level, source, message, metadata in zip(*columns):
            copy.write_row((task_id, seq, timestamp, level, _text_without_nul(source), _text_without_nul(message),
                            None if metadata is None else _json_without_nul(metadata)))
    cursor.execute(
        f"INSERT INTO task_logs ({quoted}) SELECT {quoted} FROM nbtasklog_batch b "
        "WHERE EXISTS (SELECT 1 FROM tasks t WHERE t.id = b.task_id) ON CONFLICT (task_id, seq) DO NOTHING"
    )


TEXTS = [
    *MESSAGES,
    '"', '""', '"a,b"', "a,b", "\\", "\\\\", "\\N", "NULL", "\\.", "\\.\n", "\n\\.\n", "x\n\\.", "\\.\r\n",
    "\r", "\r\n", "\n", "a\rb", "trailing\\", ",", ",,,", "'", "\t", "\x7f", "\u2028\u2029", "\ufeffBOM",
    "x" * 2_000_000,
]
METADATA = [
    None, "{}", '{"a":"\\u0000"}', '{"a":"\\\\u0000"}', '{"\\u0000k":"v"}', '{"a":"x\\u0000y","b":["\\u0000"]}',
    '{"a":"\\ud83d\\ude00"}', '{"q":"\\"quoted\\", with comma\\n and \\r"}', '{"b":"\\\\"}', '{"a": 1,  "b" : 2}',
    '{"n":null}', '{"dup":1,"dup":2}', '{"big":' + "9" * 40 + "}", '{"f":1.0e+300}', '{"s":"\\\\."}',
    json.dumps({"nl": "\n\\.\n"}), json.dumps({"k": "é ü 😀"}, ensure_ascii=False), json.dumps({"k": "é 😀"}),
]
STAMPS = [0, -1, 1, 1_700_000_000_123_456, -62_135_596_800_000_000, 253_402_300_799_999_999]


def _records(task_id: str) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    seq = 0
    for text in TEXTS:
        for meta in (None, METADATA[len(out) % len(METADATA)]):
            seq += 1
            out.append((task_id, seq, STAMPS[seq % len(STAMPS)], "INFO", text[:255], text, meta))
    for meta in METADATA:
        seq += 1
        out.append((task_id, seq, STAMPS[seq % len(STAMPS)], "WARNING", "s\x00rc", "m", meta))
    return out


def _task_row(task_id: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.timezone.utc)
    return {"id": task_id, "plugin": "p", "params": "{}", "status": "RUNNING", "created_at": now, "started_at": now}


def _stored(url: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(
                "select seq, timestamp, level, source, message, metadata::text from task_logs order by seq")]
    finally:
        engine.dispose()


def _write(url: str, batch: pa.Table, task_id: str) -> list[tuple[Any, ...]] | str:
    store = Store(url)
    try:
        store.migrate() if hasattr(store, "migrate") else None
        store.write([_task_row(task_id)])
        try:
            store.write(batch=batch)
        except Exception as error:  # noqa: BLE001 - what a path refuses is part of the comparison
            return f"{type(error).__name__}"
        return _stored(url)
    finally:
        store.close()


@pytest.mark.parametrize("case", ["all", *range(len(METADATA))])
def test_csv_copy_stores_what_the_row_by_row_copy_stored(postgres, monkeypatch, case):
    records = _records("t1")
    if case != "all":  # one metadata value alone: a refusal of one value must not hide the others
        records = [r for r in records if r[6] == METADATA[case]][:3]
    batch = _to_arrow(records)
    new = _write(postgres.new_database(), batch, "t1")
    monkeypatch.setattr(store_module, "_copy_postgresql", _old_copy_postgresql)
    old = _write(postgres.new_database(), batch, "t1")
    if isinstance(old, list) and isinstance(new, list):
        assert len(new) == len(old)
        for a, b in zip(new, old):
            assert a == b
    else:
        assert new == old


def test_the_fallback_for_a_batch_the_unique_key_refuses_stores_the_same(postgres, monkeypatch):
    """Half the batch is stored already (a retry whose first try committed): the COPY into task_logs fails
    on the key, the temporary table and ON CONFLICT take the rest; the same rows as the old path."""
    records = _records("t1")
    half, batch = _to_arrow(records[: len(records) // 2]), _to_arrow(records)

    def both(url: str) -> list[tuple[Any, ...]]:
        store = Store(url)
        try:
            store.write([_task_row("t1")])
            store.write(batch=half)
            store.write(batch=batch)
            return _stored(url)
        finally:
            store.close()

    new = both(postgres.new_database())
    monkeypatch.setattr(store_module, "_copy_postgresql", _old_copy_postgresql)
    old = both(postgres.new_database())
    assert len(new) == len(records) and new == old
