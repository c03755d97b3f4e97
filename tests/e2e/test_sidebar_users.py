"""A team's store: the sidebar says who ran each task and lists "My tasks" or "All tasks", live too. The
server knows users by name (authorizers.NamedUsers: the browser is alice; a request naming bob is bob)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from playwright.sync_api import expect

from .conftest import TOKEN, _require, open_sidebar, serve_lab, task_row, wait_finished


@pytest.fixture(scope="module")
def team_lab(tmp_path_factory):
    _require()
    with serve_lab(tmp_path_factory.mktemp("team-lab"), "--ServerApp.identity_provider_class=authorizers.NamedUsers") as lab:
        yield lab


def start_as(lab, user: str) -> str:
    request = urllib.request.Request(
        f"{lab.url}nbtasklog/api/tasks", method="POST",
        data=json.dumps({"plugin": "dashboard_backup", "params": {"dashboards": 2, "delay": 0}}).encode(),
        headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json", "X-Test-User": user})
    with urllib.request.urlopen(request, timeout=30) as response:
        task = json.loads(response.read())
    assert task["username"] == user
    return task["id"]


def test_my_tasks_and_all_tasks(team_lab, page):
    lab = team_lab
    mine, theirs = start_as(lab, "alice"), start_as(lab, "bob")
    for task_id in (mine, theirs):
        wait_finished(lab, task_id)
    panel = open_sidebar(lab, page)
    whose = panel.get_by_role("radiogroup", name="Whose tasks")
    all_tasks = whose.get_by_role("radio", name="All tasks")
    my_tasks = whose.get_by_role("radio", name="My tasks")
    expect(all_tasks).to_be_checked()
    expect(task_row(panel, theirs)).to_contain_text("by bob")
    expect(task_row(panel, mine)).to_contain_text("by alice")
    table = panel.get_by_role("table", name="Tasks")
    expect(table.get_by_role("row", name="Task dashboard_backup SUCCESS by bob")).to_have_count(1)

    my_tasks.check()
    expect(task_row(panel, theirs)).to_have_count(0)
    expect(task_row(panel, mine)).to_be_visible()
    # Live: bob's new task stays out of alice's list, hers comes in.
    later_theirs, later_mine = start_as(lab, "bob"), start_as(lab, "alice")
    expect(task_row(panel, later_mine)).to_be_visible(timeout=30_000)
    wait_finished(lab, later_theirs)
    expect(task_row(panel, later_theirs)).to_have_count(0)

    # The keyboard moves the choice back (native radios: arrow keys).
    my_tasks.focus()
    page.keyboard.press("ArrowDown")
    expect(all_tasks).to_be_checked()
    expect(task_row(panel, later_theirs)).to_be_visible(timeout=30_000)
    expect(task_row(panel, theirs)).to_be_visible()
