"""binder/ installs in a clean virtual environment the way Binder does: environment.yml's packages, then postBuild.

No conda here: the venv's Python and the machine's Node stand for environment.yml's `python` and
`nodejs` pins (checked to agree), its pip packages are installed with pip, and postBuild runs as
written from a copy of the repository's files (no build output, no node_modules: a fresh clone).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(args: list[str], **kwargs) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, **kwargs)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return ANSI.sub("", done.stdout + done.stderr)


def fresh_clone(target: Path) -> None:
    """The files a clone has (tracked ones, and new ones not ignored), nothing built."""
    names = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT).split("\0")
    for name in filter(None, names):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.mark.slow
def test_binder_environment_and_postbuild_install_the_extension(tmp_path: Path) -> None:
    """postBuild in a clean venv builds the JS and installs nbtasklog with both extensions enabled."""
    spec = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    conda = {d.split("=")[0]: d.split("=")[1] for d in spec["dependencies"] if isinstance(d, str) and "=" in d}
    pip_packages = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    project = (ROOT / "pyproject.toml").read_text()
    requires_python = re.search(r'requires-python = "([^"]+)"', project).group(1)
    assert SpecifierSet(requires_python).contains(conda["python"] + ".0"), "environment.yml's Python is not one the package supports"
    node = run(["node", "--version"]).strip()
    assert node.startswith(f"v{conda['nodejs']}."), f"this machine's Node {node} is not environment.yml's {conda['nodejs']}"

    repo, venv = tmp_path / "repo", tmp_path / "venv"
    fresh_clone(repo)
    assert not (repo / "src" / "nbtasklog" / "static" / "widget.js").exists()
    run([sys.executable, "-m", "venv", str(venv)])
    env = {key: value for key, value in os.environ.items()
           if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and not key.startswith(("JUPYTER", "NBTASKLOG"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", PIP_DISABLE_PIP_VERSION_CHECK="1",
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_DATA_DIR=str(tmp_path / "data"))
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *pip_packages], env=env)
    run(["bash", "binder/postBuild"], cwd=repo, env=env)

    servers = run([str(venv / "bin" / "jupyter"), "server", "extension", "list"], env=env, cwd=tmp_path)
    assert re.search(r"nbtasklog enabled", servers) and re.search(r"nbtasklog 0\.1\.0 OK", servers), servers
    labextensions = run([str(venv / "bin" / "jupyter"), "labextension", "list"], env=env, cwd=tmp_path)
    assert re.search(r"nbtasklog v0\.1\.0 enabled\s+OK", labextensions), labextensions
    # Installed into the venv (not the source tree), with the JS that postBuild built.
    location = run([str(venv / "bin" / "python"), "-c", "import nbtasklog; print(nbtasklog.__file__)"], env=env, cwd=tmp_path)
    assert location.strip().startswith(str(venv)), location
    assert (Path(location.strip()).parent / "static" / "widget.js").stat().st_size > 0
