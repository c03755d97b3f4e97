"""The JupyterLab sidebar: task list, starting a plugin, its log, and the admin settings (US4.4)."""

from __future__ import annotations

from .conftest import ARTIFACTS, open_sidebar

SIDEBAR = "#nbtasklog-sidebar"


def start_backup(page) -> None:
    form = page.locator(f"{SIDEBAR} .ntl-start")
    form.get_by_label("Plugin", exact=True).select_option("dashboard_backup")
    form.get_by_label("dashboards", exact=True).fill("4")
    form.get_by_label("delay", exact=True).fill("0.01")
    form.get_by_role("button", name="Start").click()


def test_sidebar_lists_opens_and_settings_apply_to_new_tasks(lab, page):
    """Start from the form, see it live in the list, open its log; task log level WARNING keeps only WARNING+."""
    open_sidebar(lab, page)
    start_backup(page)
    row = page.locator(f"{SIDEBAR} .ntl-task-table tbody tr").first
    row.locator("td.ntl-status-SUCCESS").wait_for(timeout=30_000)  # updated live through tasks/stream
    assert "dashboard_backup" in row.inner_text()
    row.click()
    viewer = page.locator(f"{SIDEBAR} .ntl-viewer")
    try:
        viewer.locator(".ntl-message", has_text="Backup finished").wait_for(timeout=30_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "sidebar-failed.png"))
        raise
    assert viewer.locator(".ntl-status").inner_text() == "SUCCESS"
    assert viewer.get_by_role("progressbar").get_attribute("aria-valuenow") == "100"
    assert page.locator(f"{SIDEBAR} .ntl-note-error").count() == 0, page.locator(f"{SIDEBAR} .ntl-note-error").all_inner_texts()
    page.screenshot(path=str(ARTIFACTS / "sidebar.png"))

    # US4.4: the admin sets the task log level to WARNING; a new task persists WARNING and ERROR only
    page.locator(f"{SIDEBAR} [role=tab]", has_text="Settings").click()
    settings = page.locator(f"{SIDEBAR} .ntl-settings")
    settings.get_by_label("Task log level", exact=True).select_option("WARNING")
    settings.get_by_role("button", name="Save").click()
    settings.locator(".ntl-note", has_text="Saved").wait_for(timeout=10_000)
    assert lab.api("GET", "settings")["task_log_level"] == "WARNING"
    page.screenshot(path=str(ARTIFACTS / "sidebar-settings.png"))
    try:
        page.locator(f"{SIDEBAR} [role=tab]", has_text="Tasks").click()
        start_backup(page)
        page.wait_for_function(f"document.querySelectorAll('{SIDEBAR} .ntl-task-table tbody tr').length >= 2 && "
                               f"document.querySelector('{SIDEBAR} .ntl-task-table tbody tr td').textContent === 'SUCCESS'", timeout=30_000)
        newest = lab.api("GET", "tasks?plugin=dashboard_backup&limit=1")["tasks"][0]
        levels = {r["level"] for r in lab.api("GET", f"tasks/{newest['id']}/logs?limit=1000")["records"]}
        assert levels <= {"WARNING", "ERROR"}, levels
    finally:
        lab.api("PUT", "settings", {"task_log_level": "INFO"})


def test_cancel_and_delete(lab, page):
    """A running task can be cancelled from the list, a finished one deleted with its logs."""
    open_sidebar(lab, page)
    form = page.locator(f"{SIDEBAR} .ntl-start")
    form.get_by_label("Plugin", exact=True).select_option("dashboard_backup")
    form.get_by_label("dashboards", exact=True).fill("500")
    form.get_by_label("delay", exact=True).fill("0.05")
    form.get_by_role("button", name="Start").click()
    row = page.locator(f"{SIDEBAR} .ntl-task-table tbody tr").first
    row.locator("button", has_text="Cancel").click(timeout=15_000)
    row.locator("td.ntl-status-CANCELLED").wait_for(timeout=30_000)
    task_id = row.get_attribute("data-id")
    row.locator("button", has_text="Delete").click()
    page.wait_for_function(f"!document.querySelector('{SIDEBAR} tr[data-id=\"{task_id}\"]')", timeout=15_000)
    assert task_id not in [t["id"] for t in lab.api("GET", "tasks?limit=1000")["tasks"]]
