"""The README is true: every code block in it runs, and its tables match the code (CLI, REST, configuration).

Python blocks run in a fresh interpreter on a temporary database; shell blocks run in bash as
written, from the repository's root, with the package's commands on PATH and a temporary database.
Two Quick start commands cannot simply run to completion here: `./dev lab` is a server (it is
started, must serve the quick start notebook, and is stopped) and `./dev test` is the suite this
test belongs to (see test_dev_test).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from procs import free_port

from nbtasklog.cli import build_parser
from nbtasklog.server.app import NbTaskLogApp

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
BLOCKS = [(m.group(1), m.group(2), README.count("\n", 0, m.start()) + 1) for m in BLOCK.finditer(README)]
BIN = Path(sys.executable).parent  # this environment's nbtasklog, jupyter and python


def section(title: str) -> str:
    start = README.index(f"\n## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def blocks(language: str) -> list:
    return [pytest.param(code, id=f"line {line}") for lang, code, line in BLOCKS if lang == language]


def environment(tmp_path: Path) -> dict[str, str]:
    """This environment's commands first, a temporary database and Jupyter directories, no server to find."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBTASKLOG_", "JUPYTER", "PYTEST_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", NBTASKLOG_DB=str(tmp_path / "readme.duckdb"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_DATA_DIR=str(tmp_path / "data"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), IPYTHONDIR=str(tmp_path / "ipython"))
    return env


def test_every_block_is_one_this_file_runs():
    """A README code block is Python, bash or the CLI synopsis: each kind is executed or checked below."""
    kinds = [(lang, code.split()[0]) for lang, code, _ in BLOCKS]
    assert all(lang in ("python", "bash") or (lang, first) == ("text", "nbtasklog") for lang, first in kinds), kinds
    assert [lang for lang, _ in kinds].count("text") == 1


@pytest.mark.parametrize("code", blocks("python"))
def test_python_block_runs(code, tmp_path):
    """The block runs to the end in a fresh interpreter, on a database of its own."""
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("code", blocks("bash"))
def test_shell_block_runs(code, tmp_path):
    """Each line runs as written (`./dev lab` and `./dev test` by the tests below), without an error."""
    lines = [line for line in code.splitlines() if not line.startswith(("./dev lab", "./dev test"))]
    assert lines or code.strip(), code
    if not any(line.strip() for line in lines):
        return  # a block of ./dev lab and ./dev test only: test_dev_lab and test_dev_test run them
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(lines)], cwd=ROOT,
                          env=environment(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert done.stdout.strip()


def quick_start_line(command: str) -> list[str]:
    """The arguments of the Quick start line that starts with `command`."""
    code = next(code for lang, code, _ in BLOCKS if lang == "bash" and command in code)
    line = next(line for line in code.splitlines() if line.startswith(command))
    return shlex.split(line, comments=True)


@pytest.mark.slow
def test_dev_lab_serves_the_quick_start(tmp_path):
    """`./dev lab` starts JupyterLab with the extension; the URL it prints opens notebooks/quickstart.ipynb."""
    args = quick_start_line("./dev lab")
    assert args == ["./dev", "lab"]
    port, token = free_port(), "readme"
    env = dict(environment(tmp_path), JUPYTER_PORT=str(port), JUPYTER_TOKEN=token)
    log_path = tmp_path / "lab.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (urls := re.findall(r"http://127\.0\.0\.1:\d+/\S+", log_path.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.3)
        # A token given by JUPYTER_TOKEN is printed masked ("token=..."): the page is fetched with it.
        url = f"http://127.0.0.1:{port}/lab/tree/notebooks/quickstart.ipynb?token="
        assert urls[0].startswith(url), urls
        # jupyter-server prints its URL before its loop binds the port: the first connections may be refused.
        while True:
            try:
                with urllib.request.urlopen(url + token, timeout=30) as page:
                    assert page.status == 200 and b"JupyterLab" in page.read()
                break
            except urllib.error.URLError as error:
                assert isinstance(error.reason, ConnectionRefusedError), error
                assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.1)
        api = f"http://127.0.0.1:{port}/api/contents/notebooks/quickstart.ipynb?token={token}"
        with urllib.request.urlopen(api, timeout=30) as answer:
            notebook = json.load(answer)
        assert notebook["type"] == "notebook" and notebook["content"]["cells"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/nbtasklog/api/health?token={token}", timeout=30) as answer:
            assert json.load(answer)["database"].endswith("readme.duckdb")  # the server extension is on
        # The first thing a new user sees is this output: no stack trace in it, from Python or from
        # the Node commands JupyterLab runs at start (its yarn ran as an ES module once, and failed).
        output = log_path.read_text()
        for sign in ("Traceback (most recent call last)", "Error:", "    at ", "Fail to get yarn configuration"):
            assert sign not in output, output[-3000:]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.slow
def test_dev_test(tmp_path):
    """`./dev test` is what CI runs, and with no arguments it collects the tests and every notebook.

    It cannot run itself from inside itself, so it runs with --collect-only: the same install steps
    and the same pytest configuration, stopping before the tests run. Its other part, the Vitest
    run (only with no arguments), is checked in the script.
    """
    assert quick_start_line("./dev test") == ["./dev", "test"]
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("exec ./dev test")
    env = {k: v for k, v in environment(tmp_path).items() if k != "PATH"} | {"PATH": os.environ["PATH"]}
    # Its own reliability report: the default one, in build/, is the outer run's.
    env["NBTASKLOG_RELIABILITY_REPORT"] = str(tmp_path / "reliability.json")
    done = subprocess.run(["./dev", "test", "--collect-only", "-q"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    collected = done.stdout
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{notebook.name}::Cell 0" in collected
    assert "tests/test_readme.py::test_dev_test" in collected
    assert "tests/e2e/test_quickstart_notebook.py::" in collected
    script = (ROOT / "dev").read_text()
    assert 'if [ "$#" -le 1 ]; then' in script and "vitest run" in script


def test_cli_synopsis_matches_the_parser():
    """Every command of `nbtasklog` is in the synopsis, with exactly the options its parser has."""
    synopsis = next(code for lang, code, _ in BLOCKS if lang == "text")
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    listed = {}
    for line in synopsis.splitlines():
        words = line.split()
        assert words[0] == "nbtasklog" and words[1] in commands, line
        listed[words[1]] = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", line))
    assert set(listed) == set(commands)
    for name, sub in commands.items():
        options = [set(a.option_strings) for a in sub._actions
                   if a.option_strings and not {"-h", "--db", "--color"} & set(a.option_strings)]
        assert all(option & listed[name] for option in options), (name, options, listed[name])
        known = set().union(*options) if options else set()
        assert listed[name] <= known, (name, listed[name] - known)


def test_configuration_tables_match_the_code():
    """Every configurable NbTaskLogApp traitlet is in the table with its default, and every variable the code reads."""
    text = section("Configuration")
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+?) \|", text, re.M))
    traits = NbTaskLogApp.class_own_traits(config=True)  # not the ExtensionApp ones
    assert set(traits) <= set(rows), set(traits) - set(rows)
    for name, trait in traits.items():
        if name == "db_url":  # computed at start
            assert "NBTASKLOG_DB" in rows[name]
            continue
        documented = re.fullmatch(r"`(.+)`", rows[name].strip())
        assert documented and ast.literal_eval(documented.group(1)) == trait.default(), (name, rows[name])
    source = "".join(path.read_text() for path in (ROOT / "src" / "nbtasklog").rglob("*.py"))
    variables = set(re.findall(r"environ(?:\.get)?[(\[]\"(\w+)\"", source))
    assert variables and all(f"| `{name}` |" in text for name in variables), variables


def test_rest_table_matches_the_openapi_document():
    """Each `METHOD path` in the REST section is a route of the OpenAPI document, and every route is named there."""
    document = json.loads((ROOT / "src" / "nbtasklog" / "server" / "openapi.json").read_text())
    routes = {(method.upper(), path.removeprefix("/nbtasklog/api/").replace("{task_id}", "{id}"))
              for path, item in document["paths"].items() for method in item if method in ("get", "post", "put", "delete")}
    text = section("Jupyter server extension")
    named = set()
    for methods, path in re.findall(r"`((?:GET|POST|PUT|DELETE)(?:/(?:GET|POST|PUT|DELETE))*) ([\w{}./]+)", text):
        for method in methods.split("/"):
            named.add((method, path))
    assert named <= routes, named - routes
    streams = {path for method, path in routes if path.endswith("stream")}
    assert all(f"`{path}`" in text for path in streams)
    assert routes - {("GET", path) for path in streams} <= named, routes - named


def test_links_and_images_exist():
    """Relative links and images point at files of the repository; the Binder link opens the quick start."""
    targets = re.findall(r"\]\(((?!https?:|#)[^)\s]+)\)", README)
    assert targets and all((ROOT / target).exists() for target in targets), [t for t in targets if not (ROOT / t).exists()]
    binder = re.search(r"\(https://mybinder\.org/v2/gh/[^)]*urlpath=lab/tree/([^)&]+)\)", README)
    assert binder and (ROOT / binder.group(1)).is_file()
    assert (ROOT / "binder" / "postBuild").exists() and (ROOT / "binder" / "environment.yml").exists()
