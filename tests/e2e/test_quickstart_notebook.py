"""notebooks/quickstart.ipynb in real JupyterLab with the extension: every cell runs, the viewer renders.

Under nbval the notebook runs embedded (its own DuckDB file); here its kernel is started by a
Jupyter server with the extension, so it talks to the server (remote mode) and the backup runs in
the server process.
"""

from __future__ import annotations

import json

from .conftest import ROOT, TOKEN, log_viewer, open_and_run

# Every code cell of the open notebook ran (an execution count, the kernel idle again) and what each output was.
FINISHED = """() => {
    const nb = window.jupyterapp.shell.currentWidget;
    const cells = nb.content.widgets.filter(c => c.model.type === 'code');
    return nb.sessionContext.session.kernel.status === 'idle'
        && cells.every(c => c.model.executionCount !== null && !c.hasClass('jp-mod-running')); }"""
OUTPUTS = """() => window.jupyterapp.shell.currentWidget.content.widgets
    .filter(c => c.model.type === 'code')
    .map(c => ({source: c.model.sharedModel.getSource().slice(0, 80), outputs: c.model.outputs.toJSON()}))"""


def test_quickstart_runs_in_jupyterlab_with_the_server(lab, page):
    """All cells of the quick start run without an error in remote mode and the log viewer shows the task."""
    notebook = json.loads((ROOT / "notebooks" / "quickstart.ipynb").read_text())
    for cell in notebook["cells"]:  # this run's outputs only, not the committed ones
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    (lab.root / "quickstart.ipynb").write_text(json.dumps(notebook))
    before = {task["id"] for task in lab.api("GET", "tasks?plugin=dashboard_backup")["tasks"]}

    open_and_run(page, f"{lab.url}lab/tree/quickstart.ipynb?reset&token={TOKEN}")
    page.wait_for_function(FINISHED, timeout=180_000, polling=250)

    cells = page.evaluate(OUTPUTS)
    errors = [(c["source"], o) for c in cells for o in c["outputs"]
              if o["output_type"] == "error" or (o["output_type"] == "stream" and o["name"] == "stderr")]
    assert errors == []
    first = cells[0]["outputs"][0]["data"]["text/plain"]
    assert "nbtasklog+http://127.0.0.1" in first, first  # the kernel found the server; the task ran there
    after = {task["id"] for task in lab.api("GET", "tasks?plugin=dashboard_backup")["tasks"]}
    assert len(after - before) == 1  # the lab server is shared with other tests: one task more, run there

    # The task's display and the LogViewer cell: two viewers, each with its filters and the records.
    assert page.get_by_role("toolbar", name="Log filters").count() == 2
    first_viewer = log_viewer(page).first
    status = first_viewer.get_by_role("status", name="Task status")
    status.filter(has_text="SUCCESS").wait_for(timeout=30_000)
    first_viewer.get_by_role("listitem").filter(has_text="Backing up 8 dashboards").wait_for(timeout=30_000)
    assert first_viewer.get_by_label("Level", exact=True).input_value() == "INFO"
    warning_viewer = log_viewer(page).nth(1)
    warning_viewer.get_by_role("listitem").filter(has_text="Slow response for dashboard 17").wait_for(timeout=30_000)
    assert warning_viewer.get_by_role("listitem").filter(has_text="Backing up").count() == 0
