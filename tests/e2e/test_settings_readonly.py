"""A user whom the server's authorizer does not let write nbtasklog.settings sees the settings read-only."""

from __future__ import annotations


import pytest
from playwright.sync_api import expect

from .conftest import ARTIFACTS, _require, open_sidebar, serve_lab


@pytest.fixture(scope="module")
def readonly_lab(tmp_path_factory):
    """A server of its own: its authorizer denies `write` on `nbtasklog.settings` to every user."""
    _require()
    with serve_lab(tmp_path_factory.mktemp("readonly-lab"), "--ServerApp.authorizer_class=authorizers.NoSettingsWrite") as lab:
        yield lab


def test_settings_view_is_read_only_and_no_put_succeeds(readonly_lab, page):
    """Values shown, controls disabled with the reason said; even a forced submit is refused by the server (403)."""
    lab = readonly_lab
    before = lab.api("GET", "settings")
    assert before["writable"] is False
    puts: list[int] = []
    page.on("response", lambda r: r.request.method == "PUT" and "/nbtasklog/api/settings" in r.url and puts.append(r.status))

    panel = open_sidebar(lab, page)
    panel.get_by_role("tab", name="Settings").click()
    settings = panel.get_by_role("form", name="Logging settings")
    expect(settings.get_by_role("status")).to_have_text("Read-only: you are not allowed to change the settings.")
    log_level = settings.get_by_role("combobox", name="Log level", exact=True)
    task_level = settings.get_by_role("combobox", name="Task log level")
    belief = settings.get_by_role("checkbox", name="belief_scope logging")
    save = settings.get_by_role("button", name="Save")
    expect(log_level).to_have_value(before["log_level"])
    expect(task_level).to_have_value(before["task_log_level"])
    (expect(belief).to_be_checked if before["belief_scope_enabled"] else expect(belief).not_to_be_checked)()
    for control in (log_level, task_level, belief, save):
        expect(control).to_be_disabled()
    page.screenshot(path=str(ARTIFACTS / "sidebar-settings-read-only.png"))

    # A submit forced past the disabled button (as a crafted page could send it) is refused by the server.
    settings.evaluate("form => form.requestSubmit()")
    expect(settings.get_by_role("alert")).to_contain_text("403")
    assert puts and set(puts) == {403}, puts
    assert lab.api("GET", "settings") == before
