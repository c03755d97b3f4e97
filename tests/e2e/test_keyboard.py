"""The sidebar and the viewer driven by the keyboard alone: no click from opening the panel to reading a record."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import ARTIFACTS, log_rows, log_viewer, open_lab, start_task, task_row, wait_finished


def focus_by(page, key: str, target, limit: int = 60) -> None:
    """Press `key` until `target` has the focus, as a keyboard user moves through the page."""
    for _ in range(limit):
        if target.evaluate("e => e === document.activeElement"):
            return
        page.keyboard.press(key)
    raise AssertionError(f"{key} x{limit} never reached {target}")


def test_sidebar_and_viewer_work_by_keyboard(lab, page):
    """Tab into the panel, open a task with Enter, change the level with arrows, search with Enter, move through rows."""
    task_id = start_task(lab, "dashboard_backup", {"dashboards": 20, "delay": 0})
    wait_finished(lab, task_id)
    open_lab(lab, page)

    # JupyterLab's side tab bar: Tab reaches it, arrows move along it, Enter opens the panel
    focus_by(page, "Tab", page.get_by_role("tab", name="File Browser (Ctrl+Shift+F)"))
    focus_by(page, "ArrowDown", page.get_by_role("tab", name="Task logs"), limit=10)
    page.keyboard.press("Enter")
    panel = page.get_by_role("region", name="Task logs")
    expect(panel).to_be_visible()

    row = task_row(panel, task_id)
    focus_by(page, "Tab", row)
    page.keyboard.press("Enter")
    viewer = log_viewer(panel, task_id)
    records = log_rows(viewer)
    expect(records.filter(has_text="Backup finished")).to_have_count(1)

    # Level: arrows change the select; WARNING and above leaves warnings and errors only
    level = viewer.get_by_role("combobox", name="Level")
    focus_by(page, "Tab", level)
    page.keyboard.press("ArrowDown")
    expect(level).to_have_value("WARNING")
    expect(records.filter(has_text="Backup finished")).to_have_count(0)
    assert {text.split()[1] for text in records.all_inner_texts()} == {"WARNING", "ERROR"}
    page.keyboard.press("ArrowUp")
    expect(level).to_have_value("INFO")
    expect(records.filter(has_text="Backup finished")).to_have_count(1)

    # Source: Enter opens the list, Space toggles a source, Escape closes it and returns to the button
    source = viewer.get_by_role("button", name="Source: all")
    focus_by(page, "Tab", source)
    page.keyboard.press("Enter")
    expect(source).to_have_attribute("aria-expanded", "true")
    plugin = viewer.get_by_role("group", name="Source").get_by_role("checkbox", name=re.compile(r"^plugin \("))
    focus_by(page, "Tab", plugin)
    page.keyboard.press("Space")
    expect(viewer.get_by_role("button", name="Source: 2 selected")).to_be_visible()
    expect(records.filter(has_text="Saved dashboard")).to_have_count(0)  # plugin's records
    page.keyboard.press("Space")
    page.keyboard.press("Escape")
    expect(source).to_be_focused()
    expect(source).to_have_attribute("aria-expanded", "false")
    expect(records.filter(has_text="Backup finished")).to_have_count(1)

    # Search: Enter goes to the next match (also in records not rendered yet), Shift+Enter back
    search = viewer.get_by_role("searchbox", name="Search")
    focus_by(page, "Tab", search)
    page.keyboard.type("dashboard 1")
    page.keyboard.press("Enter")
    counter = viewer.get_by_text(re.compile(r"^\d+ of \d+ matches$"))
    expect(counter).to_have_text(re.compile(r"^1 of \d+ matches$"))
    total = int(counter.inner_text().split()[2])
    assert total >= 10  # dashboards 10..19, in several records each
    page.keyboard.press("Enter")
    expect(counter).to_have_text(f"2 of {total} matches")
    page.keyboard.press("Shift+Enter")
    page.keyboard.press("Shift+Enter")
    expect(counter).to_have_text(f"{total} of {total} matches")  # wraps round to the last
    page.keyboard.press("Control+a")
    page.keyboard.press("Backspace")
    expect(counter).to_have_count(0)

    # Errors only with Space, then "Jump to first error" with Enter
    errors = viewer.get_by_role("checkbox", name="Errors only")
    focus_by(page, "Tab", errors)
    page.keyboard.press("Space")
    expect(errors).to_be_checked()
    expect(records.filter(has_text="Backup finished")).to_have_count(0)
    assert {text.split()[1] for text in records.all_inner_texts()} == {"ERROR"}
    focus_by(page, "Tab", viewer.get_by_role("button", name="Jump to first error"))
    page.keyboard.press("Enter")
    expect(viewer.get_by_role("status").filter(has_text="First error: record")).to_have_count(1)
    focus_by(page, "Shift+Tab", errors)
    page.keyboard.press("Space")
    expect(errors).not_to_be_checked()
    expect(records.filter(has_text="INFO").first).to_be_visible()  # levels other than ERROR are back

    # The record list: Tab reaches it; Home, End and arrows scroll; Enter opens a record's metadata
    focus_by(page, "Tab", viewer.get_by_role("list", name="Log records"))
    page.keyboard.press("Home")
    expect(records.filter(has_text="Task started")).to_be_in_viewport()
    page.keyboard.press("End")
    expect(records.filter(has_text="Task succeeded")).to_be_in_viewport()
    expect(records.filter(has_text="Task started")).to_have_count(0)  # scrolled out of the virtual list
    page.keyboard.press("Home")  # record 1 ...
    current = viewer.get_by_role("status", name="Current record")
    expect(current).to_have_text(re.compile(r"^Record 1, 1 of \d+: "))
    said = current.text_content()
    page.keyboard.press("ArrowUp")  # already the first: said again (the region's text changes, by a silent space)
    page.wait_for_function("([region, said]) => region.textContent !== said", arg=[current.element_handle(), said])
    assert current.text_content().strip() == said.strip()
    page.keyboard.press("ArrowDown")  # ... record 2, "Backup target prepared", which has metadata
    # the list keeps the focus; a status region says which record is current, for screen readers
    expect(viewer.get_by_role("list", name="Log records")).to_be_focused()
    expect(viewer.get_by_role("status", name="Current record")).to_have_text(
        re.compile(r"^Record 2, 2 of \d+: INFO, system: Backup target prepared"))
    page.keyboard.press("Enter")
    toggle = viewer.get_by_role("button", name="Details of record 2")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(toggle).to_be_focused()
    expect(records.filter(has_text="Backup target prepared")).to_contain_text("database_uuid")
    page.screenshot(path=str(ARTIFACTS / "sidebar-keyboard.png"))
