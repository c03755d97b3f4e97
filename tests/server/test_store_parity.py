"""The two LogStores answer alike: the same calls on a Store (a DuckDB file of this process) and on a
RemoteStore (a `jupyter server` process with the extension, over its REST API) give the same answers.

Records and task rows go in as the engine writes them, through a WriteBuffer over each store; every
read is asked of both, and the answers must be equal (and, for logs, equal to the in-memory filter
applied to what was written). A static check keeps both classes' members and signatures those of the
LogStore Protocol.
"""

from __future__ import annotations

import inspect
import typing
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from servers import JupyterServer

from nbtasklog.filter import LogFilter, make_filter
from nbtasklog.levels import Level
from nbtasklog.record import LogRecord, datetime_to_us, metadata_to_json
from nbtasklog.remote import RemoteStore, ServerConnection
from nbtasklog.runner import os_username
from nbtasklog.settings import Settings, parse_settings
from nbtasklog.store.buffer import WriteBuffer
from nbtasklog.store.interface import LogStore
from nbtasklog.store.store import SQLError, Store, records_to_arrow

pytestmark = pytest.mark.slow  # a jupyter server process starts for the module

# Tasks of this module start two days ago: cleanup (below) takes only tasks older than ten years.
BASE = (datetime.now(timezone.utc) - timedelta(days=2)).replace(microsecond=0)
SOURCES = ("plugin", "superset_api", "db")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


# ---- the Protocol, statically ---------------------------------------------------------------------
def protocol_members() -> dict[str, Any]:
    """LogStore's methods (name -> function) and data attributes (name -> annotation)."""
    members: dict[str, Any] = {}
    for name, value in vars(LogStore).items():
        if callable(value) and not name.startswith("_"):
            members[name] = value
    for name, annotation in typing.get_type_hints(LogStore).items():
        members[name] = annotation
    return members


@pytest.mark.parametrize("implementation", [Store, RemoteStore])
def test_both_classes_have_every_member_of_the_protocol_with_its_signature(implementation):
    """Each LogStore method exists on the class with the same parameters (names, kinds, defaults) and the
    same types; each data attribute is set by the class or its instances (checked on instances below)."""
    members = protocol_members()
    assert {"write", "query_logs", "log_stats", "get_task", "list_tasks", "delete_tasks", "load_settings",
            "sql", "reset", "close", "url", "gil_bound_writes"} <= set(members)
    for name, wanted in members.items():
        if not inspect.isfunction(wanted):
            continue
        given = getattr(implementation, name, None)
        assert inspect.isfunction(given), f"{implementation.__name__}.{name} is missing"
        wanted_parameters = list(inspect.signature(wanted).parameters.values())
        given_parameters = list(inspect.signature(given).parameters.values())
        assert [(p.name, p.kind, p.default) for p in given_parameters] == \
            [(p.name, p.kind, p.default) for p in wanted_parameters], f"{implementation.__name__}.{name}"
        assert typing.get_type_hints(given) == typing.get_type_hints(wanted), f"{implementation.__name__}.{name}"


# ---- a Store and a RemoteStore, written alike -------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    home = tmp_path_factory.mktemp("parity")
    started = JupyterServer(home / "jupyter", home / "server" / "logs.duckdb").start()
    yield started
    started.stop()


class Pair:
    """A Store and a RemoteStore, each behind the WriteBuffer an engine would give it."""

    def __init__(self, local: Store, remote: RemoteStore, spill: Path) -> None:
        self.local, self.remote = local, remote
        self.buffers = [WriteBuffer(store, spill / name, name, flush_interval=3600)
                        for name, store in (("local", local), ("remote", remote))]

    def put(self, rows: list[dict[str, Any]], records: Sequence[LogRecord] = (), settings: dict[str, str] | None = None) -> None:
        """Task rows, records and settings written by both buffers, as an engine's flusher writes them."""
        for buffer in self.buffers:
            for row in rows:
                buffer.put_task(row)
            for record in records:
                buffer.append(tuple(record))
            if settings:
                buffer.put_settings(settings)
            assert buffer.flush(), buffer.health()
        assert self.remote.refused_records == 0

    def same(self, call: Callable[[LogStore], Any]) -> Any:
        """The answer of both stores to `call`, which must be one answer."""
        local, remote = call(self.local), call(self.remote)
        assert local == remote
        return local

    def same_error(self, call: Callable[[LogStore], Any], kind: type[Exception]) -> str:
        """Both stores refuse `call` with `kind` and the same message."""
        messages = []
        for store in (self.local, self.remote):
            with pytest.raises(kind) as raised:
                call(store)
            messages.append(str(raised.value))
        assert messages[0] == messages[1]
        return messages[0]


@pytest.fixture(scope="module")
def pair(server: JupyterServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    home = tmp_path_factory.mktemp("parity-local")
    made = Pair(Store(home / "logs.duckdb"), RemoteStore(ServerConnection(server.url, server.token)), home)
    yield made
    for buffer in made.buffers:
        buffer.stop(timeout=5)
    made.local.close()
    made.remote.close()


_ids = iter(range(1, 1_000_000))


def task_id(created: datetime) -> str:
    """An id as runner.new_task_id makes them (they sort by creation time), unique within this module."""
    return f"{datetime_to_us(created):013x}{next(_ids):08x}"


def task_row(plugin: str, status: str, created: datetime, records: int = 0, **fields: Any) -> dict[str, Any]:
    row = {"id": task_id(created), "plugin": plugin, "params": '{"dashboards": [1, 2], "note": "ünï ✓"}',
           "status": status, "created_at": created, "started_at": created + timedelta(seconds=1),
           "finished_at": None if status in ("PENDING", "RUNNING") else created + timedelta(minutes=3),
           "error": None, "progress": None if status == "PENDING" else 1.0, "progress_message": None,
           "log_level": None, "record_count": records,
           # The server records a kernel's task as the user it knows the request as: behind its own token
           # login, the user it runs as.
           "username": os_username()}
    row.update(fields)
    return row


def records_of(task: str, count: int, start: datetime, first: int = 1) -> list[LogRecord]:
    """`count` records from seq `first`: levels, sources, words and metadata of every kind a filter names."""
    out = []
    for seq in range(first, first + count):
        metadata: dict[str, Any] | None = {
            "dashboard_id": seq % 9, "nested": {"k": f"v{seq % 3}", "deep": {"n": seq}}, "label": "" if seq % 5 == 0 else f"L{seq % 4}",
            "flag": seq % 2 == 0, "ratio": seq / 8, "tags": ["a", "b"] if seq % 6 == 0 else [],
        }
        if seq % 11 == 0:
            metadata = None
        elif seq % 13 == 0:
            metadata = {"only": "this", "unicode": "Grüße ✓"}
        words = ("copied Apple dashboard", "APPLE pie and ünïcode ✓", "nothing to see", "db error: timeout")[seq % 4]
        out.append(LogRecord(task, seq, datetime_to_us(start) + seq * 1_000 + (seq % 3), LEVELS[seq % 4],
                             SOURCES[seq % 3], f"{words} #{seq}", None if metadata is None else metadata_to_json(metadata)))
    return out


@pytest.fixture(scope="module")
def written(pair: Pair) -> dict[str, Any]:
    """Finished tasks of two plugins with their records, written in two flushes, and their rows."""
    backup = task_row("backup", "SUCCESS", BASE, records=150)
    failed = task_row("cleanup", "FAILED", BASE + timedelta(minutes=1), records=40, error="RuntimeError: it broke ✗",
                      progress=0.25, progress_message="a quarter", log_level="DEBUG")
    cancelled = task_row("backup", "CANCELLED", BASE + timedelta(minutes=2), records=3)
    records = {backup["id"]: records_of(backup["id"], 150, BASE), failed["id"]: records_of(failed["id"], 40, BASE + timedelta(minutes=1)),
               cancelled["id"]: records_of(cancelled["id"], 3, BASE + timedelta(minutes=2))}
    running = dict(backup, status="RUNNING", finished_at=None, progress=0.5, record_count=90)
    pair.put([running], records[backup["id"]][:90])  # the first flush of a running task
    pair.put([backup, failed, cancelled], [*records[backup["id"]][90:], *records[failed["id"]], *records[cancelled["id"]]])
    return {"backup": backup, "failed": failed, "cancelled": cancelled, "records": records}


# ---- logs ---------------------------------------------------------------------------------------------
FILTERS = [
    {},
    {"level": "WARNING"},
    {"level": "ERROR"},
    {"errors_only": True},
    {"source": "superset_api"},
    {"source": ["plugin", "db"]},
    {"search": "apple"},
    {"search": "ünïcode ✓"},
    {"search": "#1"},
    {"meta": {"dashboard_id": 7}},
    {"meta": {"nested.k": "v1"}},
    {"meta": {"nested.deep.n": 42}},
    {"meta": {"flag": True}},
    {"meta": {"ratio": 0.5}},
    {"meta": ["label="]},
    {"meta": {"nested": None}},
    {"meta": ["only", "unicode=Grüße ✓"]},
    {"meta": ["missing"]},
    {"after": 20},
    {"before": 40},
    {"after": 20, "before": 40},
    {"since": BASE + timedelta(milliseconds=50)},
    {"until": BASE + timedelta(milliseconds=50)},
    {"since": BASE + timedelta(milliseconds=30), "until": BASE + timedelta(milliseconds=70)},
    {"limit": 5},
    {"order": "desc"},
    {"order": "desc", "limit": 7},
    {"order": "desc", "before": 100, "limit": 3},
    {"level": "INFO", "source": "plugin", "meta": {"dashboard_id": 4}, "search": "apple"},
    {"level": "WARNING", "after": 10, "until": BASE + timedelta(milliseconds=120), "order": "desc", "limit": 4},
]


def spec_id(spec: dict[str, Any]) -> str:
    """A test id that stays the same from run to run: times as their distance from BASE."""
    def shown(value: Any) -> str:
        return f"BASE+{(value - BASE) // timedelta(milliseconds=1)}ms" if isinstance(value, datetime) else repr(value)

    return ",".join(f"{key}={shown(value)}" for key, value in spec.items()) or "no filter"


@pytest.mark.parametrize("spec", FILTERS, ids=spec_id)
def test_logs_by_every_filter_are_the_same(pair, written, spec):
    """query_logs answers alike for each filter, and what the in-memory face of the filter keeps."""
    for key in ("backup", "failed"):
        task = written[key]["id"]
        flt = make_filter(**spec)
        got = pair.same(lambda store: store.query_logs(task, flt))
        assert got == flt.apply(written["records"][task])


@pytest.mark.parametrize("spec", [{"limit": 7}, {"order": "desc", "limit": 9}, {"level": "INFO", "source": "db", "limit": 4}])
def test_keyset_paging_walks_the_same_pages(pair, written, spec):
    """Pages through next_page: the same pages on both, which put together are the whole filtered log."""
    task = written["backup"]["id"]

    def pages(store: LogStore) -> list[list[LogRecord]]:
        flt: LogFilter = make_filter(**spec)
        out = []
        while page := store.query_logs(task, flt):
            out.append(page)
            flt = flt.next_page(page)
        return out

    walked = pair.same(pages)
    assert len(walked) > 2 and all(len(page) <= spec["limit"] for page in walked)
    whole = make_filter(**spec).with_limit(None)
    assert [r for page in walked for r in page] == whole.apply(written["records"][task])


def test_stats_are_the_same(pair, written):
    for key in ("backup", "failed", "cancelled"):
        task = written[key]["id"]
        stats = pair.same(lambda store: store.log_stats(task))
        assert sum(stats["levels"].values()) == len(written["records"][task])
    assert set(stats["metadata_keys"]) == {"dashboard_id", "nested", "label", "flag", "ratio", "tags"}


def test_tasks_and_their_rows_are_the_same(pair, written):
    for key in ("backup", "failed", "cancelled"):
        row = written[key]
        got = pair.same(lambda store: store.get_task(row["id"]))
        assert got == dict(row, params={"dashboards": [1, 2], "note": "ünï ✓"})


UNKNOWN = ["0" * 21, "", "no such task", "a/b", "../tasks", "?x=1", "with#fragment"]


@pytest.mark.parametrize("task", UNKNOWN, ids=repr)
def test_an_unknown_task_is_the_same_nothing(pair, written, task):
    """No row, no record, empty stats; a task id is never read as part of a path or a query string."""
    assert pair.same(lambda store: store.get_task(task)) is None
    assert pair.same(lambda store: store.query_logs(task, make_filter())) == []
    assert pair.same(lambda store: store.log_stats(task)) == {"levels": {}, "sources": {}, "metadata_keys": []}


def test_an_id_that_spells_another_task_in_a_url_finds_nothing(pair, written):
    """`ID#x` and `ID` with its last character %-escaped are other ids: in a URL they would name task ID."""
    known = written["backup"]["id"]
    for task in (known + "#x", known[:-1] + f"%{ord(known[-1]):02x}", known + "?"):
        assert pair.same(lambda store: store.get_task(task)) is None
        assert pair.same(lambda store: store.query_logs(task, make_filter())) == []
        assert pair.same(lambda store: store.log_stats(task))["levels"] == {}


# ---- task listings ------------------------------------------------------------------------------------
LISTINGS = [
    {},
    {"status": ["SUCCESS"]},
    {"status": ["FAILED", "CANCELLED"]},
    {"status": ("RUNNING",)},
    {"plugin": "backup"},
    {"plugin": "backup", "status": ["CANCELLED"]},
    {"plugin": "nobody"},
    {"limit": 1},
    {"limit": 0},
    {"user": os_username()},
    {"user": "somebody-else"},
]


@pytest.mark.parametrize("spec", LISTINGS, ids=repr)
def test_task_listings_are_the_same(pair, written, spec):
    rows = pair.same(lambda store: store.list_tasks(**spec))
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)  # newest first


def test_keyset_paging_of_tasks_walks_the_same_pages(pair, written):
    def pages(store: LogStore) -> list[list[str]]:
        out, before = [], None
        while rows := store.list_tasks(before_id=before, limit=2):
            out.append([r["id"] for r in rows])
            before = rows[-1]["id"]
        return out

    walked = pair.same(pages)
    ids = [i for page in walked for i in page]
    assert {written[key]["id"] for key in ("backup", "failed", "cancelled")} <= set(ids)
    assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids))


def test_a_listing_longer_than_a_server_page_is_whole(pair):
    """list_tasks(limit=1200) of 1,100 tasks gives them all on both (the server answers at most 1,000 a request)."""
    created = BASE - timedelta(days=400)
    rows = [task_row("many", "SUCCESS", created + timedelta(seconds=i)) for i in range(1_100)]
    pair.put(rows)
    listed = pair.same(lambda store: store.list_tasks(plugin="many", limit=1_200))
    assert [r["id"] for r in listed] == [r["id"] for r in reversed(rows)]
    assert len(pair.same(lambda store: store.list_tasks(plugin="many", limit=1_050))) == 1_050
    assert pair.same(lambda store: store.delete_tasks([r["id"] for r in rows])) == 1_100


def test_an_active_task_is_listed_and_changes_alike(pair):
    """A RUNNING task with its first records, then its final row and the rest."""
    created = datetime.now(timezone.utc).replace(microsecond=0)
    row = task_row("live", "RUNNING", created, records=5, progress=0.5, progress_message="halfway")
    records = records_of(row["id"], 8, created)
    pair.put([row], records[:5])
    assert [r["id"] for r in pair.same(lambda store: store.list_tasks(status=["RUNNING"], plugin="live"))] == [row["id"]]
    assert len(pair.same(lambda store: store.query_logs(row["id"], make_filter()))) == 5
    final = dict(row, status="SUCCESS", finished_at=created + timedelta(seconds=5), progress=1.0, progress_message=None, record_count=8)
    pair.put([final], records[5:])
    assert pair.same(lambda store: store.list_tasks(status=["RUNNING"], plugin="live")) == []
    assert pair.same(lambda store: store.get_task(row["id"]))["status"] == "SUCCESS"
    assert pair.same(lambda store: store.query_logs(row["id"], make_filter(order="desc", limit=2))) == records[:5:-1]


def test_a_batch_written_again_adds_only_what_is_new(pair):
    """write(only_new=True), as the buffer retries a batch whose commit may have gone through or replays a
    spill file: the records stored already are left out, the new ones added once, on both."""
    created = datetime.now(timezone.utc).replace(microsecond=0)
    row = task_row("retried", "RUNNING", created, records=10)
    records = records_of(row["id"], 14, created)
    pair.put([row], records[:10])
    for store in (pair.local, pair.remote):
        store.write([dict(row, record_count=14)], records_to_arrow(records[5:]), only_new=True)
    assert pair.remote.refused_records == 0
    assert pair.same(lambda store: store.query_logs(row["id"], make_filter())) == records
    pair.put([dict(row, status="SUCCESS", finished_at=created + timedelta(seconds=2), record_count=14)])
    assert pair.same(lambda store: store.log_stats(row["id"]))["levels"] == dict(Counter(r.level for r in records))


# ---- deletes and cleanup --------------------------------------------------------------------------------
def test_deletes_count_and_remove_alike(pair):
    """delete_tasks counts the tasks it deleted (an unknown id is not one) and takes their records along."""
    created = BASE + timedelta(hours=1)
    rows = [task_row("doomed", "SUCCESS", created + timedelta(seconds=i), records=4) for i in range(3)]
    records = [r for row in rows for r in records_of(row["id"], 4, created)]
    pair.put(rows, records)
    assert pair.same(lambda store: store.delete_tasks([rows[0]["id"], "0" * 21, rows[1]["id"]])) == 2
    assert pair.same(lambda store: store.delete_tasks([])) == 0
    assert pair.same(lambda store: store.delete_tasks([rows[0]["id"]])) == 0  # gone already
    for row in rows[:2]:
        assert pair.same(lambda store: store.get_task(row["id"])) is None
        assert pair.same(lambda store: store.query_logs(row["id"], make_filter())) == []
        assert pair.same(lambda store: store.log_stats(row["id"]))["levels"] == {}
    assert [r["id"] for r in pair.same(lambda store: store.list_tasks(plugin="doomed"))] == [rows[2]["id"]]
    assert len(pair.same(lambda store: store.query_logs(rows[2]["id"], make_filter()))) == 4


def test_cleanup_removes_the_same_tasks(pair):
    """What each control runs for cleanup (local: finished_before, then delete_tasks; remote: the server's
    cleanup) removes the same finished tasks, ended before the cutoff, and nothing else."""
    now = datetime.now(timezone.utc)
    old = [task_row("aged", status, now - timedelta(days=4000 + i), records=2) for i, status in enumerate(("SUCCESS", "FAILED"))]
    young = task_row("aged", "SUCCESS", now - timedelta(days=3000), records=2)
    records = [r for row in (*old, young) for r in records_of(row["id"], 2, row["created_at"])]
    pair.put([*old, young], records)
    age = timedelta(days=3650)
    local = pair.local.finished_before(now - age)
    assert pair.local.delete_tasks(local) == len(local)
    remote = pair.remote.cleanup(f"{age.total_seconds()}s")
    assert sorted(local) == sorted(remote)
    assert {row["id"] for row in old} <= set(local) and young["id"] not in local
    assert [r["id"] for r in pair.same(lambda store: store.list_tasks(plugin="aged"))] == [young["id"]]


# ---- settings, SQL, reconnecting ---------------------------------------------------------------------
def test_settings_written_with_a_batch_read_back_alike(pair):
    """The settings a buffer writes are the settings both read back (the server's answer names every
    setting, its defaults included: the engine reads either through SettingsManager.load)."""
    pair.put([], settings={"task_log_level": "WARNING", "belief_scope_enabled": "false"})
    effective = pair.same(lambda store: parse_settings(Settings(), store.load_settings()))
    assert effective == Settings(task_log_level=Level.WARNING, belief_scope_enabled=False)
    assert pair.local.load_settings().items() <= pair.remote.load_settings().items()
    pair.put([], settings={"task_log_level": "INFO", "belief_scope_enabled": "true"})
    assert pair.same(lambda store: parse_settings(Settings(), store.load_settings())) == Settings()


def test_analyst_sql_answers_alike(pair, written):
    """The same rows, column types and truncation; the same refusal of what is not one read-only query."""
    task = written["backup"]["id"]
    query = (f"SELECT task_id, seq, timestamp, level, source, message, metadata FROM task_logs "
             f"WHERE task_id = '{task}' ORDER BY seq")

    def answer(store: LogStore) -> tuple[list[dict[str, Any]], bool]:
        table, truncated = store.sql(query, 50, 30.0)
        return table.to_pylist(), truncated

    rows, truncated = pair.same(answer)
    assert truncated and [row["seq"] for row in rows] == list(range(1, 51))
    schemas = [store.sql(query, 5, 30.0)[0].schema for store in (pair.local, pair.remote)]
    assert [(f.name, f.type) for f in schemas[0]] == [(f.name, f.type) for f in schemas[1]]
    counts = f"SELECT level, count(*) AS n FROM task_logs WHERE task_id = '{task}' GROUP BY level ORDER BY level"
    by_level = Counter(r.level for r in written["records"][task])
    assert pair.same(lambda store: store.sql(counts, 100, 30.0)[0].to_pylist()) == \
        [{"level": level, "n": n} for level, n in sorted(by_level.items())]
    pair.same_error(lambda store: store.sql("DELETE FROM tasks", 10, 30.0), SQLError)
    pair.same_error(lambda store: store.sql("SELECT 1; SELECT 2", 10, 30.0), SQLError)


def test_after_a_reset_both_answer_as_before(pair, written):
    task = written["failed"]["id"]
    before = pair.same(lambda store: store.query_logs(task, make_filter(level="WARNING")))
    for store in (pair.local, pair.remote):
        store.reset()
    assert pair.same(lambda store: store.query_logs(task, make_filter(level="WARNING"))) == before
    assert pair.same(lambda store: store.get_task(task))["status"] == "FAILED"


def test_both_instances_have_the_protocols_data_attributes(pair):
    for store in (pair.local, pair.remote):
        assert isinstance(store, LogStore)
        for name, annotation in typing.get_type_hints(LogStore).items():
            assert isinstance(getattr(store, name), annotation), (type(store).__name__, name)
