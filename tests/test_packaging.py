"""`pip install .` (not editable) into a fresh venv ships the config tree: `slmexp --cfg job` works from any
directory and reads its configs from the installed package (Hydra's pkg://slmexp.conf), not from a checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_pip_install_dot_finds_its_configs(tmp_path: Path) -> None:
    # A copy of the tracked files, so the build writes nothing into the checkout (build/, *.egg-info).
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    src = tmp_path / "src"
    for name in filter(None, (f.decode() for f in files)):
        path = ROOT / name
        if path.is_file() and not path.is_symlink():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / name)
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
