"""What the user typed, made into what the engine takes: -p parameters, a task id or prefix, filter options."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable
from typing import Any

from ..errors import UnknownTaskError
from .exits import UNKNOWN_TASK, CLIError
from .output import local_time
from .session import Session


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def parse_value(text: str) -> Any:
    """A -p value: JSON when it is JSON (numbers, true, null, lists, objects, "quoted"), else the text itself."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):  # 1e999: not storable as JSON
        return text
    return value


def parse_params(params_json: str | None, pairs: Iterable[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if params_json is not None:
        try:
            value = json.loads(params_json, parse_constant=_reject_constant)
        except ValueError as error:
            raise CLIError(f"--params-json is not valid JSON: {error}") from None
        if not isinstance(value, dict):
            raise CLIError(f"--params-json must be a JSON object like '{{\"dashboards\": 3}}', not {type(value).__name__}")
        params.update(value)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"bad parameter {pair!r}: use -p key=value")
        params[key.strip()] = parse_value(raw)
    return params


def resolve_task(session: Session, text: str) -> str:
    """The id of the task `text` names: the id itself or a prefix only one task id starts with."""
    engine = session.engine()
    prefix = text.strip().lower()
    if not prefix:
        raise CLIError("give a task id (or a unique prefix of one)")
    try:
        engine.task_info(prefix)
        return prefix
    except UnknownTaskError:
        pass
    # Ids are lowercase hex, so every id starting with `prefix` is below prefix + "g" and above every
    # other id that is: newest first under that bound, the matches come first.
    candidates = [t for t in engine.tasks(before=prefix + "g", limit=11) if t.id.startswith(prefix)]
    if not candidates:
        raise CLIError(f"unknown task {text!r} (see: {session.command_hint('tasks')})", UNKNOWN_TASK)
    if len(candidates) > 1:
        listing = []
        for task in candidates[:10]:
            try:
                info = task.info()
                listing.append(f"{task.id} ({info['plugin']}, {info['status']}, {local_time(info['created_at'])})")
            except UnknownTaskError:
                continue
        more = " and more" if len(candidates) > 10 else ""
        raise CLIError(f"task prefix {text!r} is ambiguous; it matches: {'; '.join(listing)}{more}")
    return candidates[0].id


def filter_args(args: argparse.Namespace) -> dict[str, Any]:
    """The filter options of `logs` as keyword arguments of make_filter."""
    return {"level": args.level, "source": args.source, "search": args.search, "meta": args.meta, "after": args.after}
