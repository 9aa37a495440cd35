"""The package as users install it: a wheel built from this checkout holds every module and the
shipped search spaces, and an installed copy, away from the checkout, lists and loads them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
SPACES = ["cpu-small", "default"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the checkout (the build leaves nothing in the checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("orca_automl", "search_spaces"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(work / "dist"), str(source)],
        check=True, capture_output=True, text=True,
    )
    (built,) = (work / "dist").glob("orca_automl-*.whl")
    return built


def test_the_wheel_holds_every_module_and_the_shipped_spaces(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "orca_automl").rglob("*.py")}
    assert modules - names == set()  # a package missing from pyproject's list would show here
    assert {f"orca_automl/search_spaces/{name}.yaml" for name in SPACES} <= names


def test_an_installed_copy_lists_and_loads_the_shipped_spaces(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, text=True)
    script = (
        "import json, orca_automl\n"
        "from orca_automl.search import available_spaces, cycle_toolkit, load_space\n"
        "names = cycle_toolkit().known_names()\n"
        "spaces = {n: load_space(n, names) for n in available_spaces()}\n"
        "print(json.dumps({'package': orca_automl.__file__, 'spaces': sorted(spaces),\n"
        "                  'paths': [str(s.path) for s in spaces.values()],\n"
        "                  'params': [len(s.params) for s in spaces.values()]}))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(target)}, check=True)
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(found["package"]).is_relative_to(target)  # the installed copy, not the checkout
    assert found["spaces"] == SPACES
    assert all(Path(p).is_relative_to(target) for p in found["paths"])
    assert all(n > 0 for n in found["params"])
