"""The export writers: a filtered log as JSON lines, CSV or Parquet, read and written page by page.

The REST export streams each page's bytes as soon as they are written; the notebook widget's export
joins them into one download. Neither holds the whole log's records at once, and both write the same
bytes for the same filter. Nothing here needs the server, so a kernel imports it as it is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from ..filter import LogFilter
from ..follow import PAGE
from ..record import LogRecord
from ..store.store import LOG_ARROW_SCHEMA, records_to_arrow
from ..wire import dumps

MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
CSV_COLUMNS = ("task_id", "seq", "timestamp", "level", "source", "message", "metadata")


def log_pages(read: Callable[[LogFilter], list[LogRecord]], flt: LogFilter) -> Iterator[list[LogRecord]]:
    """The records `flt` selects, in its order and up to its limit, one page of at most PAGE records at a
    time through `read` (Engine.logs of one task); at least one page, which may be empty."""
    page = flt.with_limit(PAGE) if flt.limit is None or flt.limit > PAGE else flt
    remaining = flt.limit
    while True:
        records = read(page)
        if remaining is not None:
            records = records[:remaining]
            remaining -= len(records)
        yield records
        if len(records) < (page.limit or 0) or remaining == 0:
            return
        page = page.next_page(records)


class ExportWriter(Protocol):
    def page(self, records: list[LogRecord]) -> bytes:
        """The bytes of the next page of records (the first call also writes what opens the file)."""

    def close(self) -> bytes:
        """The bytes that end the file."""


class JsonLinesExport:
    """One record a line, as GET logs answers it."""

    def page(self, records: list[LogRecord]) -> bytes:
        return "".join(dumps(r.to_dict()) + "\n" for r in records).encode("utf-8")

    def close(self) -> bytes:
        return b""


class CsvExport:
    """A header line, then one row a record; metadata as its JSON text, empty when there is none."""

    def __init__(self) -> None:
        self._header_due = True

    def page(self, records: list[LogRecord]) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out)
        if self._header_due:
            writer.writerow(CSV_COLUMNS)
            self._header_due = False
        for r in records:
            writer.writerow([r.task_id, r.seq, r.timestamp.isoformat(), r.level, r.source, r.message, r.metadata_json or ""])
        return out.getvalue().encode("utf-8")

    def close(self) -> bytes:
        return b""


class ParquetExport:
    """A Parquet file written one row group per page; its bytes are handed out as they are produced."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._writer: pq.ParquetWriter | None = None

    def page(self, records: list[LogRecord]) -> bytes:
        writer = self._opened()
        if records:
            writer.write_table(records_to_arrow(records))
        return self._take()

    def close(self) -> bytes:
        self._opened().close()
        return self._take()

    def _opened(self) -> pq.ParquetWriter:
        """The file's writer, made with the first page (or at close, for a log without records)."""
        if self._writer is None:
            self._writer = pq.ParquetWriter(pa.PythonFile(self, mode="w"), LOG_ARROW_SCHEMA)
        return self._writer

    def _take(self) -> bytes:
        data, self._chunks = b"".join(self._chunks), []
        return data

    # What pa.PythonFile asks of the sink it writes to.
    closed = False

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def tell(self) -> int:
        return 0

    def close_file(self) -> None:
        pass


EXPORT_WRITERS: dict[str, Callable[[], ExportWriter]] = {"jsonl": JsonLinesExport, "csv": CsvExport, "parquet": ParquetExport}
