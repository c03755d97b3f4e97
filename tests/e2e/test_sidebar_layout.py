"""The sidebar at JupyterLab's default width and wider: nothing overflows the panel, every control is named."""

from __future__ import annotations

import pytest

from .conftest import ARTIFACTS, INTERACTIVE, log_viewer, open_sidebar, start_task, task_row, unnamed_controls, wait_finished


def outside(panel) -> list[str]:
    """Visible controls cut off at the left or right: by the panel's edge or by any ancestor that clips or scrolls."""
    return panel.evaluate("""(panel, selector) => {
        const cut = [];
        for (const el of panel.querySelectorAll(selector)) {
            const r = el.getBoundingClientRect();
            if (!r.width || !el.checkVisibility()) continue;
            for (let a = el.parentElement; a; a = a.parentElement) {
                if (a !== panel && getComputedStyle(a).overflowX === 'visible') continue;
                const b = a.getBoundingClientRect();
                if (r.left < b.left - 1 || r.right > b.right + 1) {
                    cut.push(`${el.getAttribute('aria-label') || el.textContent.trim().slice(0, 40)}: ${Math.round(r.left)}..${Math.round(r.right)} in ${Math.round(b.left)}..${Math.round(b.right)}`);
                    break;
                }
                if (a === panel) break;
            }
        }
        return cut; }""", f"{INTERACTIVE}, [role=progressbar], h3")


def resize_sidebar(page, panel, width: int) -> None:
    """Drag the splitter at the panel's right edge, as a user widens the side panel."""
    box = panel.bounding_box()
    edge, middle = box["x"] + box["width"] + 2, box["y"] + box["height"] / 2
    page.mouse.move(edge, middle)
    page.mouse.down()
    page.mouse.move(box["x"] + width + 2, middle, steps=5)
    page.mouse.up()
    page.wait_for_function(f"Math.abs(document.getElementById('nbtasklog-sidebar').getBoundingClientRect().width - {width}) < 8")


@pytest.fixture
def tasks(lab):
    """A finished backup with warnings and errors, and one still running (a Cancel button, a live progress bar)."""
    done = start_task(lab, "dashboard_backup", {"dashboards": 20, "delay": 0})
    wait_finished(lab, done)
    running = start_task(lab, "dashboard_backup", {"dashboards": 2000, "delay": 0.05})
    yield done, running
    lab.api("POST", f"tasks/{running}/cancel", {})
    wait_finished(lab, running)


def test_narrow_and_wider_sidebar_keep_controls_inside_and_named(lab, page, tasks):
    """At the default width (250 px) and at 450 px, tasks, viewer and settings fit the panel; all controls are named."""
    done, running = tasks
    panel = open_sidebar(lab, page)
    task_row(panel, running).get_by_role("button", name=f"Cancel task {running}").wait_for()
    task_row(panel, done).click()
    viewer = log_viewer(panel, done)
    viewer.get_by_role("listitem").filter(has_text="Backup finished").wait_for()
    viewer.get_by_role("button", name="Source: all").click()
    viewer.get_by_role("group", name="Source").get_by_role("checkbox", name="superset_api", exact=False).wait_for()
    default_width = panel.bounding_box()["width"]
    assert 200 <= default_width <= 300, default_width  # JupyterLab 4 opens side panels 250 px wide

    for width, name in ((default_width, "sidebar-default-width.png"), (450, "sidebar-450px.png")):
        if width != default_width:
            resize_sidebar(page, panel, width)
        assert outside(panel) == [], f"at {width} px"
        assert unnamed_controls(panel) == [], f"at {width} px"
        page.screenshot(path=str(ARTIFACTS / name))
        panel.get_by_role("tab", name="Settings").click()
        panel.get_by_role("combobox", name="Task log level").wait_for()
        assert outside(panel) == [], f"settings at {width} px"
        assert unnamed_controls(panel) == [], f"settings at {width} px"
        panel.get_by_role("tab", name="Tasks").click()
        viewer.get_by_role("listitem").first.wait_for()
