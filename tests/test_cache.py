"""Caches across processes, with the faults injected for real: two processes on one key, a builder killed with
SIGKILL mid-build, a safetensors file cut short inside a published entry, an answer cache whose last line was cut.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from slmexp.cache import MANIFEST, append_jsonl, publish_dir, read_jsonl_cache, safetensors_intact

# A builder run in its own interpreter: writes a real safetensors file (numpy) slowly and counts its builds.
BUILDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from safetensors.numpy import save_file
    from slmexp.cache import publish_dir
    entry, count, sleep = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])

    def build(tmp):
        with open(count, "a") as f:
            f.write("built\\n")
        time.sleep(sleep)
        save_file({"w": np.arange(4096, dtype=np.float32)}, str(tmp / "model.safetensors"))

    cached = publish_dir(entry, build, lambda e: (e / "model.safetensors").exists())
    print("cached" if cached else "built", flush=True)
""")


def _builder(entry: Path, count: Path, sleep: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-c", BUILDER, str(entry), str(count), str(sleep)], env=env,
                            stdout=subprocess.PIPE, text=True)


def test_two_processes_on_one_key_build_once(tmp_path) -> None:
    entry, count = tmp_path / "cache" / "abc", tmp_path / "count"
    procs = [_builder(entry, count, 1.5), _builder(entry, count, 1.5)]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == ["built", "cached"]
    assert count.read_text().count("built") == 1
    assert safetensors_intact(entry / "model.safetensors") is None and (entry / MANIFEST).is_file()
    assert not list(entry.parent.glob("abc.partial*"))


def test_builder_killed_mid_build_leaves_nothing_used(tmp_path) -> None:
    entry, count = tmp_path / "cache" / "abc", tmp_path / "count"
    p = _builder(entry, count, 30)
    deadline = time.time() + 30
    while not count.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not entry.exists() and list(entry.parent.glob("abc.partial*"))  # the half-built temp dir is left over
    p = _builder(entry, count, 0)
    assert p.communicate(timeout=60)[0].strip() == "built"
    assert count.read_text().count("built") == 2
    assert not list(entry.parent.glob("abc.partial*")), "the killed builder's temp dir was not cleaned up"


def _save(tmp: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"w": np.arange(4096, dtype=np.float32)}, str(tmp / "model.safetensors"))


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_safetensors_in_the_cache_is_rebuilt_not_loaded(tmp_path, caplog) -> None:
    entry = tmp_path / "abc"
    builds: list[Path] = []

    def build(tmp: Path) -> None:
        builds.append(tmp)
        _save(tmp)

    def done(e: Path) -> bool:
        return (e / "model.safetensors").exists()

    assert publish_dir(entry, build, done) is False
    assert publish_dir(entry, build, done) is True and len(builds) == 1
    _cut(entry / "model.safetensors")  # a disk that filled up, a copy interrupted, a bit flip...
    assert publish_dir(entry, build, done) is False, "a cut file in the cache was used"
    assert len(builds) == 2 and safetensors_intact(entry / "model.safetensors") is None
    assert "failed verification" in caplog.text and "model.safetensors" in caplog.text


def test_entry_from_before_manifests_is_checked_by_its_header(tmp_path) -> None:
    entry = tmp_path / "abc"
    entry.mkdir()
    _save(entry)
    _cut(entry / "model.safetensors")  # published by an older slmexp (no manifest), then cut
    built = []
    assert publish_dir(entry, lambda t: (built.append(1), _save(t)), lambda e: True) is False and built
    assert safetensors_intact(entry / "model.safetensors") is None
    whole = tmp_path / "whole"
    whole.mkdir()
    _save(whole)  # an intact legacy entry is adopted (given a manifest), not rebuilt
    assert publish_dir(whole, lambda t: (_ for _ in ()).throw(AssertionError("rebuilt")), lambda e: True) is True
    assert (whole / MANIFEST).is_file()


def test_answer_cache_with_a_cut_last_line_keeps_the_next_answer(tmp_path) -> None:
    path = tmp_path / "answers.jsonl"
    append_jsonl(path, {"i": 0, "raw": "billing"})
    with open(path, "a") as f:  # a job killed while writing answer 1
        f.write('{"i": 1, "raw": "refu')
    append_jsonl(path, {"i": 2, "raw": "shipping"})
    lines = path.read_text().splitlines()
    assert [json.loads(x)["i"] for x in lines] == [0, 2], lines  # every line whole; the cut one dropped
    assert set(read_jsonl_cache(path)) == {0, 2}
    path.write_text('{"i": 5, "raw": "x"')  # a file that is nothing but a cut line
    append_jsonl(path, {"i": 6, "raw": "y"})
    assert set(read_jsonl_cache(path)) == {6}


def test_a_cached_answer_holding_a_unicode_line_separator_stays_one_row(tmp_path) -> None:
    """Answers are written with ensure_ascii=False, so U+2028 / U+0085 sit raw in the file: they must not end a
    line (str.splitlines() cut such a row in two and the answer was asked again)."""
    from slmexp.cache import append_jsonl, read_jsonl, read_jsonl_cache

    path = tmp_path / "answers.jsonl"
    append_jsonl(path, {"i": 0, "raw": "order_status\u2028and\u0085more"})
    append_jsonl(path, {"i": 1, "raw": "refund_status"})
    assert read_jsonl_cache(path)[0]["raw"] == "order_status\u2028and\u0085more"
    assert [r["i"] for r in read_jsonl(path)] == [0, 1]
