"""Secrets never stored: what a task logs, its params, its error and its progress reach every face with
the secrets replaced by the marker (nbtasklog.redact); extra patterns and keys come from the engine's
options. The Redactor's own cases are in tests/test_redact.py."""

from __future__ import annotations

import json
import logging

from conftest import TIMEOUT
from procs import make_engine, read_db  # noqa: F401  (fixture)

from nbtasklog.redact import MARKER

TOKEN = "ghp_" + "a1B2c3D4e5" * 4  # a GitHub token's shape


def test_secrets_in_messages_metadata_params_errors_and_progress_are_never_stored(make_engine, db_path,
                                                                                   open_root_logger):
    engine = make_engine(db_path)
    seen: list[str] = []

    def plugin(params, context):
        seen.append(params["password"])
        context.logger.info("connecting to postgresql://admin:hunter2@db:5432/app with %s", TOKEN)
        context.logger.info("login", user="ada", password="hunter2", nested={"api_key": "k-123", "ok": 1})
        logging.getLogger("lib").warning("Authorization: Bearer abcdefgh12345678")
        print(f"token={TOKEN}")
        context.progress(0.5, f"using {TOKEN}")
        raise RuntimeError(f"failed with password=hunter2 and {TOKEN}")

    task = engine.run_task(plugin, {"user": "ada", "password": "hunter2", "url": "https://u:s3cret@example.com/x"})
    live = []
    for record in task.follow():
        live.append(record)
    assert task.wait(TIMEOUT) == "FAILED"
    assert seen == ["hunter2"]  # the plugin itself gets its params as given
    assert engine.flush()
    info = task.info()
    assert info["params"] == {"user": "ada", "password": MARKER, "url": f"https://u:{MARKER}@example.com/x"}
    assert "hunter2" not in info["error"] and TOKEN not in info["error"] and MARKER in info["error"]
    assert TOKEN not in info["progress_message"]
    stored = task.logs()
    for record in [*stored, *live]:
        text = record.message + (record.metadata_json or "")
        assert "hunter2" not in text and TOKEN not in text and "abcdefgh12345678" not in text and "k-123" not in text
    login = next(r for r in stored if r.message == "login")
    assert login.metadata == {"user": "ada", "password": MARKER, "nested": {"api_key": MARKER, "ok": 1}}
    assert f"postgresql://admin:{MARKER}@db:5432/app with {MARKER}" in stored[1].message
    engine.close()
    dump = json.dumps([read_db(db_path, "select * from task_logs"), read_db(db_path, "select * from tasks")], default=str)
    assert "hunter2" not in dump and TOKEN not in dump


def test_extra_patterns_and_keys_come_from_the_engine_options(make_engine):
    engine = make_engine(redact_patterns=[r"EMP-\d{6}"], redact_keys=["employee_number"])

    def plugin(params, context):
        context.logger.info("badge EMP-123456 scanned", employee_number=42, room="B2")

    task = engine.run_task(plugin)
    task.wait(TIMEOUT)
    record = task.logs(search="badge")[0]
    assert record.message == f"badge {MARKER} scanned"
    assert record.metadata == {"employee_number": MARKER, "room": "B2"}


def test_a_secret_past_where_a_long_message_is_searched_is_never_kept(make_engine):
    """A long message is searched only up to a margin past the limit: what redaction shortens must not
    bring the unsearched rest into the part that is kept."""
    engine = make_engine(max_message_bytes=1000)

    def plugin(params, context):
        context.logger.info("Cookie: " + "a" * 5096 + "\nAuthorization: Bearer sk9live9SECRET123456")
        context.logger.info("x" * 4990 + "Authorization: Bearer sk9live9SECRET123456")  # across where the search stops

    task = engine.run_task(plugin)
    task.wait(TIMEOUT)
    for record in task.logs(source="plugin"):
        assert "SECRET" not in record.message and "sk9live" not in record.message
        assert "[message cut:" in record.message and len(record.message.encode()) <= 1000


def test_plain_keyword_fields_with_secrets_in_their_values_are_never_stored(make_engine, db_path):
    """The logging call decides plain fields (str, int, float, bool, None) from the dict without reading
    their JSON: a secret in a plain string value, under an innocent key, must still go, in the stored
    record, the live one and the database file alike; and the clean fields beside it stay as given."""
    engine = make_engine(db_path, redact_patterns=[r"EMP-\d{6}"])
    secrets = {"dsn": "postgresql://admin:hunter2@db:5432/app", "header": "Bearer abcdefgh12345678",
               "key_id": "AKIAIOSFODNN7EXAMPLE", "repo_token": TOKEN, "badge": "EMP-123456"}

    def plugin(params, context):
        for name, value in secrets.items():
            context.logger.info("field %s", name, rows=3, ratio=0.5, ok=True, none=None, table="users", **{name: value})

    task = engine.run_task(plugin)
    live = [r for r in task.follow() if r.source == "plugin"]
    assert task.wait(TIMEOUT) == "SUCCESS"
    assert engine.flush()
    stored = task.logs(source="plugin")
    assert len(stored) == len(secrets) and [r.seq for r in live] == [r.seq for r in stored]
    for record in [*stored, *live]:
        fields = record.metadata
        assert {k: fields[k] for k in ("rows", "ratio", "ok", "none", "table")} == \
            {"rows": 3, "ratio": 0.5, "ok": True, "none": None, "table": "users"}
        assert MARKER in record.metadata_json
        for value in secrets.values():
            assert value not in record.metadata_json
    engine.close()
    dump = json.dumps(read_db(db_path, "select * from task_logs"), default=str)
    assert all(secret not in dump for secret in ("hunter2", "abcdefgh12345678", "AKIAIOSFODNN7EXAMPLE", TOKEN, "EMP-123456"))
