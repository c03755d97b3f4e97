"""The JupyterLab sidebar: task list, starting a plugin, its log, and the admin settings (US4.4)."""

from __future__ import annotations

from playwright.sync_api import expect

from .conftest import ARTIFACTS, log_rows, log_viewer, open_sidebar, task_row


def start_backup(lab, panel, dashboards: int, delay: float) -> str:
    """Fill and submit the start form as a user does; returns the new task's id."""
    before = {t["id"] for t in lab.api("GET", "tasks?plugin=dashboard_backup&limit=1000")["tasks"]}
    form = panel.get_by_role("form", name="Start a task")
    form.get_by_label("Plugin", exact=True).select_option("dashboard_backup")
    form.get_by_label("dashboards", exact=True).fill(str(dashboards))
    form.get_by_label("delay", exact=True).fill(str(delay))
    form.get_by_role("button", name="Start").click()
    for _ in range(100):
        new = {t["id"] for t in lab.api("GET", "tasks?plugin=dashboard_backup&limit=1000")["tasks"]} - before
        if new:
            (task_id,) = new
            return task_id
        panel.page.wait_for_timeout(100)
    raise AssertionError("the start form created no task")


def test_sidebar_lists_opens_and_settings_apply_to_new_tasks(lab, page):
    """Start from the form, see it live in the list, open its log; task log level WARNING keeps only WARNING+."""
    panel = open_sidebar(lab, page)
    task_id = start_backup(lab, panel, 4, 0.01)
    row = task_row(panel, task_id)
    row.get_by_role("button", name=f"Delete task {task_id}").wait_for(timeout=30_000)  # updated live through tasks/stream
    expect(row).to_contain_text("SUCCESS")
    expect(row).to_contain_text("dashboard_backup")
    row.click()
    viewer = log_viewer(panel, task_id)
    try:
        viewer.get_by_role("listitem").filter(has_text="Backup finished").wait_for(timeout=30_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "sidebar-failed.png"))
        raise
    expect(viewer.get_by_role("status", name="Task status")).to_have_text("SUCCESS")
    assert viewer.get_by_role("progressbar", name="Progress").get_attribute("aria-valuenow") == "100"
    assert panel.get_by_role("alert").all_inner_texts() == []  # no error shown anywhere in the panel
    page.screenshot(path=str(ARTIFACTS / "sidebar.png"))

    # The same log, with room: a tab of the main area, named after the plugin; asked twice, one tab
    for _ in range(2):
        panel.get_by_role("button", name=f"Open in a tab: the log of task {task_id}").click()
    tab = page.get_by_role("tab", name=f"dashboard_backup {task_id[-6:]}")
    expect(tab).to_have_count(1)
    expect(tab).to_have_attribute("aria-selected", "true")
    in_tab = log_viewer(page.get_by_role("main"), task_id)
    expect(log_rows(in_tab).filter(has_text="Backup finished")).to_have_count(1)
    assert in_tab.bounding_box()["width"] > 2 * viewer.bounding_box()["width"]  # wider than the side panel
    page.screenshot(path=str(ARTIFACTS / "log-tab.png"))
    tab.click(button="middle")  # closes a tab in JupyterLab; the viewer goes with it
    expect(tab).to_have_count(0)
    panel.get_by_role("button", name=f"Open in a tab: the log of task {task_id}").click()  # and it opens again
    expect(log_rows(log_viewer(page.get_by_role("main"), task_id)).filter(has_text="Backup finished")).to_have_count(1)
    tab.click(button="middle")

    # US4.4: the admin sets the task log level to WARNING; a new task persists WARNING and ERROR only
    panel.get_by_role("tab", name="Settings").click()
    settings = panel.get_by_role("form", name="Logging settings")
    settings.get_by_label("Task log level", exact=True).select_option("WARNING")
    settings.get_by_role("button", name="Save").click()
    settings.get_by_role("status").filter(has_text="Saved").wait_for(timeout=10_000)
    assert lab.api("GET", "settings")["task_log_level"] == "WARNING"
    page.screenshot(path=str(ARTIFACTS / "sidebar-settings.png"))
    try:
        panel.get_by_role("tab", name="Tasks").click()
        newest = start_backup(lab, panel, 20, 0)
        task_row(panel, newest).get_by_role("button", name=f"Delete task {newest}").wait_for(timeout=30_000)
        levels = {r["level"] for r in lab.api("GET", f"tasks/{newest}/logs?limit=1000")["records"]}
        assert levels <= {"WARNING", "ERROR"}, levels
        assert levels, "20 dashboards: the backup logs warnings and errors"
    finally:
        lab.api("PUT", "settings", {"task_log_level": "INFO"})


def test_cancel_and_delete(lab, page):
    """A running task can be cancelled from the list, a finished one deleted with its logs."""
    panel = open_sidebar(lab, page)
    task_id = start_backup(lab, panel, 500, 0.05)
    row = task_row(panel, task_id)
    row.get_by_role("button", name=f"Cancel task {task_id}").click(timeout=15_000)
    row.get_by_role("button", name=f"Delete task {task_id}").wait_for(timeout=30_000)
    expect(row).to_contain_text("CANCELLED")
    # The list's filters ask the server: only CANCELLED tasks of dashboard_backup are left, this one among them
    filters = panel.get_by_role("group", name="Filter tasks")
    filters.get_by_role("combobox", name="Tasks with status").select_option("CANCELLED")
    filters.get_by_role("combobox", name="Tasks of plugin").select_option("dashboard_backup")
    tasks_table = panel.get_by_role("table", name="Tasks")
    expect(tasks_table.get_by_role("row").filter(has_text="SUCCESS")).to_have_count(0)
    expect(row).to_be_visible()
    cancelled = {t["id"] for t in lab.api("GET", "tasks?status=CANCELLED&plugin=dashboard_backup&limit=1000")["tasks"]}
    expect(tasks_table.get_by_role("row").filter(has_text="CANCELLED")).to_have_count(len(cancelled))
    filters.get_by_role("combobox", name="Tasks with status").select_option("")
    filters.get_by_role("combobox", name="Tasks of plugin").select_option("")
    row.get_by_role("button", name=f"Delete task {task_id}").click()
    expect(task_row(panel, task_id)).to_have_count(0, timeout=15_000)
    assert task_id not in [t["id"] for t in lab.api("GET", "tasks?limit=1000")["tasks"]]
