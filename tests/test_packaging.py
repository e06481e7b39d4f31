"""Packaging: `pip install .` (not editable) into a fresh venv ships the config tree: `slmexp --cfg job` works from any
directory and reads its configs from the installed package (Hydra's pkg://slmexp.conf), not from a checkout. And the
lowest setuptools that pyproject.toml's [build-system] admits really builds the wheel (the SPDX `license` string
needs setuptools 77, PEP 639)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _copy_of_the_checkout(dst: Path) -> Path:
    """The files git tracks or would track (not the ignored ones), copied to `dst`, so a build writes nothing into
    the checkout (build/, *.egg-info)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        path = ROOT / name
        if path.is_file() and not path.is_symlink():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dst / name)
    return dst


@pytest.mark.slow
def test_pip_install_dot_finds_its_configs(tmp_path: Path) -> None:
    src = _copy_of_the_checkout(tmp_path / "src")
    venv = tmp_path / "venv"
    # The heavy dependencies come from this interpreter's site-packages; slmexp itself is installed from `src`.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    # Build isolation fetches the build backend pyproject.toml names (setuptools) from the package index.
    out = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps",
                          str(src)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(py), "-c", "import slmexp, slmexp.conf; print(slmexp.__file__)"], cwd=elsewhere,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout's editable one
    job = subprocess.run([str(venv / "bin" / "slmexp"), "--cfg", "job", "arm=slm-lora-q4km"], cwd=elsewhere,
                         capture_output=True, text=True, timeout=300)
    assert job.returncode == 0, job.stderr[-2000:]
    assert "gguf_type: q4_k_m" in job.stdout and "name: support-intent" in job.stdout
    assert (venv / "lib").exists() and list(venv.glob("lib/python*/site-packages/slmexp/conf/sweep/demo.yaml"))


def test_wheel_builds_with_the_lowest_setuptools_build_system_admits(tmp_path: Path) -> None:
    """A venv holding exactly the lowest setuptools [build-system] requires admits builds the wheel (no build
    isolation, no dependencies: ~10 s, setuptools comes from PyPI or pip's cache), and its METADATA carries the SPDX
    licence as PEP 639's `License-Expression` (setuptools 69-76 refuse the string instead)."""
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    reqs = [Requirement(r) for r in build["requires"]]
    setuptools = next(r for r in reqs if r.name == "setuptools")
    lowest = [s.version for s in setuptools.specifier if s.operator in (">=", "==", "~=")]
    assert len(lowest) == 1, f"[build-system] requires needs one lower bound on setuptools: {setuptools}"
    pins = [f"setuptools=={lowest[0]}", *(str(r) for r in reqs if r.name != "setuptools")]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # with pip, no site-packages of ours
    py = str(venv / "bin" / "python")
    out = subprocess.run([py, "-m", "pip", "install", "-q", *pins], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    have = subprocess.run([py, "-c", "import setuptools; print(setuptools.__version__)"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert have == lowest[0], have
    src = _copy_of_the_checkout(tmp_path / "src")
    wheels = tmp_path / "wheels"
    out = subprocess.run([py, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                          str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"setuptools=={lowest[0]} cannot build the wheel:\n{out.stderr[-3000:]}"
    (wheel,) = wheels.glob("slmexp-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        names = zf.namelist()
    assert "License-Expression: Apache-2.0" in metadata.splitlines(), metadata[:1000]
    assert "slmexp/run.schema.json" in names  # the record's JSON Schema ships (slmexp.record_schema.errors reads it)
