"""The two faces of LogFilter mean the same: SQL over a real DuckDB store == the in-memory predicate.

Random records (levels, sources, mixed-case unicode messages, nested metadata) are written to one
DuckDB file per module, each example under its own task id; random filters are then run both ways.
"""

from __future__ import annotations

import itertools
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from procs import task_row

from nbtasklog.filter import LogFilter, from_params, make_filter
from nbtasklog.levels import LEVEL_NAMES
from nbtasklog.record import LogRecord, metadata_to_json
from nbtasklog.store.store import Store, records_to_arrow

SOURCES = ["plugin", "system", "superset_api", "stdout", "Plugin"]
# Characters whose case mapping is special somewhere: Turkish dotted I, Greek sigma (final form),
# German sharp s, Kelvin sign, ligatures, titlecase digraphs, plus accents, CJK and an emoji.
SPECIAL = "İıIiΣσςßẞKkﬃǅǄǆéÉÅåΩωЖжĲĳ \t%_\\'\"/.-:0129😀中"
# Metadata keys are text, as from keyword arguments. (A dict mixing 1 and "1" as keys would be written
# with a duplicate key, which DuckDB reads first-wins and json.loads last-wins: not generated here.)
KEYS = ["a", "b", "dashboard_id", "x-y", "0", "Key", "k_2"]
T0 = 1_700_000_000_000_000  # a UTC time in microseconds (2023-11)

text_chars = st.one_of(
    st.sampled_from(SPECIAL),
    st.sampled_from(string.ascii_letters),
    st.characters(codec="utf-8"),  # NUL included; lone surrogates cannot be UTF-8 (the buffer replaces them)
)
# Half the messages from a tiny alphabet, so that case-mapping corner cases (a final Σ after a letter,
# İ next to i) meet matching search terms often.
messages = st.one_of(st.text(text_chars, max_size=24), st.text(st.sampled_from("aAiIİıΣσς ßẞ"), max_size=8))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-20, max_value=20),
    st.floats(allow_nan=False, allow_infinity=False),
    # Floats where JSON renderings differ (exponent or not, "e+16" or "e16"): compared as text, they must agree.
    st.sampled_from([0.1, 1.0, -0.0, 1e16, 1e21, 1e-7, 123.456, 2.5e-5, 1e300, 5e-324, 1.2345678901234567e19]),
    st.floats(min_value=1e15, max_value=1e23),
    st.floats(min_value=1e-9, max_value=1e-4),
    st.text(text_chars, max_size=8),
    st.sampled_from(["10", "true", "null", "1.0", ""]),
)
meta_values = st.one_of(scalars, st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=3),
    ),
    max_leaves=8,
))
metadata = st.one_of(st.none(), st.dictionaries(st.sampled_from(KEYS), meta_values, max_size=4))

_task_ids = (f"prop{n:08d}" for n in itertools.count())


@st.composite
def record_lists(draw: Any) -> list[LogRecord]:
    """A task's records: increasing seqs (with gaps), any timestamps, levels, sources, messages, metadata."""
    task_id = next(_task_ids)
    count = draw(st.integers(min_value=0, max_value=20))
    gaps = draw(st.lists(st.integers(min_value=1, max_value=3), min_size=count, max_size=count))
    seqs = list(itertools.accumulate(gaps))
    records = []
    for seq in seqs:
        meta = draw(metadata)
        records.append(
            LogRecord(
                task_id,
                seq,
                T0 + draw(st.integers(min_value=0, max_value=10_000_000)),
                draw(st.sampled_from(LEVEL_NAMES)),
                draw(st.sampled_from(SOURCES)),
                draw(messages),
                None if meta is None else metadata_to_json(meta),
            )
        )
    return records


def _paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every (key path, value) in a metadata tree."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((prefix + (key,), value))
            out.extend(_paths(value, prefix + (key,)))
    return out


def _sometimes(draw: Any, one_in: int) -> bool:
    """True about once in `one_in` draws (integers() would favour its bounds); shrinks towards False."""
    return draw(st.sampled_from([False] * (one_in - 1) + [True]))


@st.composite
def filters(draw: Any, records: list[LogRecord]) -> LogFilter:
    """A filter built through make_filter: each condition now and then, mostly one that a chosen target record passes.

    Conditions drawn at random would rarely all hold together, and the faces would mostly be
    compared on empty results; aiming each one at a target record keeps most answers non-empty.
    """
    target = draw(st.sampled_from(records)) if records else LogRecord("-", 1, T0, "DEBUG", "plugin", "", None)

    def aimed() -> bool:
        return not _sometimes(draw, 4)

    levels_up_to_target = LEVEL_NAMES[: LEVEL_NAMES.index(target.level) + 1]
    kwargs: dict[str, Any] = {}
    if _sometimes(draw, 2):
        names = levels_up_to_target if aimed() else LEVEL_NAMES
        kwargs["level"] = draw(st.sampled_from([n.lower() if _sometimes(draw, 2) else n for n in names]))
    if _sometimes(draw, 3):
        names = draw(st.lists(st.sampled_from(SOURCES + ["nobody"]), min_size=1, max_size=3))
        kwargs["source"] = names + [target.source] if aimed() else names
    messages_seen = [r.message for r in records if r.message]
    if messages_seen and _sometimes(draw, 2):
        message = target.message if target.message and aimed() else draw(st.sampled_from(messages_seen))
        start = draw(st.integers(min_value=0, max_value=len(message) - 1))
        end = draw(st.integers(min_value=start + 1, max_value=min(len(message), start + 4)))
        term = message[start:end]
        kwargs["search"] = draw(st.sampled_from([term, term.upper(), term.lower(), term.swapcase()]))
    elif _sometimes(draw, 4):
        kwargs["search"] = draw(st.text(text_chars, min_size=1, max_size=3))
    target_paths = _paths(target.metadata) if target.metadata_json else []
    all_paths = [p for r in records if r.metadata_json for p in _paths(r.metadata)]
    conditions: dict[str, Any] = {}
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2]))):
        paths = target_paths if target_paths and aimed() else all_paths
        if paths and not _sometimes(draw, 5):
            path, value = draw(st.sampled_from(paths))
        else:
            path = tuple(draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3)))
            value = draw(scalars)
        if value is None or isinstance(value, (dict, list)) or _sometimes(draw, 3):
            value = None  # the key exists
        elif _sometimes(draw, 5):
            value = draw(scalars.filter(lambda v: v is not None))
        conditions[".".join(path)] = value
    if conditions:
        kwargs["meta"] = conditions
    top = (records[-1].seq if records else 0) + 2
    if _sometimes(draw, 4):
        kwargs["after"] = draw(st.integers(min_value=0, max_value=target.seq - 1 if aimed() else top))
    if _sometimes(draw, 4):
        kwargs["before"] = draw(st.integers(min_value=target.seq + 1 if aimed() else 1, max_value=top))
    stamps = [r.timestamp_us for r in records] or [T0]
    if _sometimes(draw, 6):
        kwargs["since"] = (target.timestamp_us if aimed() else draw(st.sampled_from(stamps))) + draw(st.integers(-1, 1))
    if _sometimes(draw, 6):
        kwargs["until"] = (target.timestamp_us if aimed() else draw(st.sampled_from(stamps))) + draw(st.integers(-1, 1))
    kwargs["order"] = draw(st.sampled_from(["asc", "desc"]))
    if _sometimes(draw, 3):
        kwargs["limit"] = draw(st.integers(min_value=1, max_value=top))
    return make_filter(**kwargs)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """One real DuckDB store for the whole module (opening one costs far more than an example)."""
    db = Store(tmp_path_factory.mktemp("prop") / "prop.duckdb")
    yield db
    db.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), records=record_lists())
def test_sql_face_equals_in_memory_face(store: Store, data: st.DataObject, records: list[LogRecord]) -> None:
    """For random records and filters, the store's SQL query returns exactly what flt.apply() returns."""
    task_id = records[0].task_id if records else "prop-empty"
    store.write([task_row(task_id)], records_to_arrow(records))
    for _ in range(4):  # several filters per written task: writing costs more than querying
        flt = data.draw(filters(records), label="filter")
        assert store.query_logs(task_id, flt) == flt.apply(records)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=record_lists(), page_size=st.integers(min_value=1, max_value=6), order=st.sampled_from(["asc", "desc"]),
       level=st.sampled_from([None, "INFO", "WARNING"]))
def test_keyset_pages_in_both_faces_cover_the_log_exactly_once(store: Store, records: list[LogRecord], page_size: int,
                                                               order: str, level: str | None) -> None:
    """Walking pages with next_page gives the same pages from SQL and memory, and together the whole filtered log."""
    assume(records)
    task_id = records[0].task_id
    store.write([task_row(task_id)], records_to_arrow(records))
    flt = make_filter(level=level, order=order, limit=page_size)
    walked: list[LogRecord] = []
    for _ in range(len(records) + 1):
        page = store.query_logs(task_id, flt)
        assert page == flt.apply(records)
        if not page:
            break
        walked.extend(page)
        flt = flt.next_page(page)
    assert walked == make_filter(level=level, order=order).apply(records)


@given(data=st.data(), records=record_lists())
def test_the_query_string_form_reads_back_as_the_same_filter(data: st.DataObject, records: list[LogRecord]) -> None:
    """to_params then from_params gives the filter back: what a client sends is what the server applies."""
    flt = data.draw(filters(records))
    params = {name: [value] for name, value in flt.to_params().items()}
    assert from_params(params) == flt
