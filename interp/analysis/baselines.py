"""Baselines for the linear probes: what a probe reads without SoundNet's training.

A layer's probe accuracy says little on its own: a linear readout of any rich enough set of
nonlinear filters classifies many corpora well above chance, and a corpus whose categories differ
in bandwidth or length (the demo's speech is 8 kHz audio) is partly separable by its spectrum
alone. Three baselines go in the same probe table, read out by the same probe on the same clips
and folds:

``log-mel``
    Per-clip mean and standard deviation over time of a log-mel spectrogram (librosa; 64 mel
    bands to 11,025 Hz, 1,024-sample frames with a 512-sample hop, i.e. 46 ms frames every 23 ms;
    dB re the clip's peak): 128 features that know the long-term spectrum and its variability and
    nothing else.
``random init``
    :class:`soundnet.model.SoundNet8` with PyTorch's default initialisation (seeded), batch norm
    at its initial identity statistics: the architecture without learning.
``shuffled``
    The pretrained net with every layer's weights permuted: each convolution's kernel entries
    (all of them, across filters and taps) and its biases are shuffled within the layer; each
    batch norm's per-channel parameters (scale, shift, running mean and variance) are permuted
    together across channels. Each layer keeps its weight distribution; the learned structure is
    gone.

Both nets are summarised exactly as the run was (:func:`interp.recording.summarize_waves` with the
run's recorder settings), so their per-clip ``mean`` features compare with the run's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from interp.corpus.corpora import clip_waves
from interp.run.store import Run
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ
from soundnet.model import LAYER_SPECS, SoundNet8

__all__ = [
    "BASELINES",
    "LOGMEL_LAYER",
    "logmel_features",
    "random_soundnet",
    "shuffled_soundnet",
    "baseline_features",
]

#: The baseline names, in the order the probe table lists them.
BASELINES = ("random init", "shuffled", "log-mel")
#: The ``layer`` value of the log-mel baseline's row in the probe table.
LOGMEL_LAYER = "log-mel"


def logmel_features(
    waves: Sequence[np.ndarray],
    *,
    n_mels: int = 64,
    n_fft: int = 1024,
    hop_length: int = 512,
    sr: int = SAMPLE_RATE_HZ,
) -> np.ndarray:
    """Per-clip mean and standard deviation over time of a log-mel spectrogram.

    Parameters
    ----------
    waves : sequence of np.ndarray, each (n_samples,)
        Mono float32 in [-1, 1] at ``sr``.
    n_mels : int
        Mel bands (0 Hz to ``sr / 2``).
    n_fft, hop_length : int (in samples)
        Frame length and hop (46 ms and 23 ms at 22050 Hz).
    sr : int (in Hz)

    Returns
    -------
    np.ndarray, shape (n_clips, 2 * n_mels), float64
        Columns ``0 .. n_mels-1``: mean log power per band (dB re the clip's peak); then the
        standard deviation over frames of each band.
    """
    import librosa  # (lazily: half a second of imports that only this baseline needs)

    if n_mels < 1 or n_fft < 2 or hop_length < 1:
        raise ParameterError(
            f"logmel_features needs n_mels >= 1, n_fft >= 2 and hop_length >= 1. "
            f"Got {n_mels}, {n_fft}, {hop_length} instead."
        )
    out = np.empty((len(waves), 2 * n_mels), dtype=np.float64)
    for i, w in enumerate(waves):
        y = np.asarray(w, dtype=np.float32)
        if y.ndim != 1 or len(y) == 0:
            raise ParameterError(f"logmel_features needs non-empty 1-D waves. Wave {i} has shape {y.shape}.")
        mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
        db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
        out[i, :n_mels] = db.mean(axis=1)
        out[i, n_mels:] = db.std(axis=1)
    return out


def random_soundnet(*, seed: int = 0) -> SoundNet8:
    """SoundNet's architecture with PyTorch's default initialisation, in eval mode.

    Parameters
    ----------
    seed : int
        Seed of the initialisation (a private generator state: the global one is restored).

    Returns
    -------
    SoundNet8
        Convolutions with PyTorch's default (Kaiming-uniform) weights; batch norm with scale 1,
        shift 0, running mean 0 and variance 1.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = SoundNet8()
    return model.eval()


def shuffled_soundnet(model: SoundNet8, *, seed: int = 0) -> SoundNet8:
    """A copy of ``model`` with every layer's weights shuffled within the layer, in eval mode.

    Parameters
    ----------
    model : SoundNet8
        The pretrained net (left unchanged).
    seed : int

    Returns
    -------
    SoundNet8
        Convolution weights and biases permuted entry-wise within each layer; batch-norm scale,
        shift, running mean and variance permuted together across the layer's channels.
    """
    if not isinstance(model, SoundNet8):
        raise ParameterError(
            f"The 'model' parameter of shuffled_soundnet must be a SoundNet8. Got {type(model).__name__} instead."
        )
    rng = np.random.default_rng(seed)
    out = SoundNet8()
    out.load_state_dict(model.state_dict())
    with torch.no_grad():
        for spec in LAYER_SPECS:
            block = getattr(out, spec.name)
            for m in block:
                if isinstance(m, torch.nn.Conv1d):
                    for t in (m.weight, m.bias):
                        if t is not None:
                            flat = t.data.reshape(-1)
                            flat.copy_(flat[torch.from_numpy(rng.permutation(flat.numel()))])
                elif isinstance(m, torch.nn.BatchNorm1d):
                    perm = torch.from_numpy(rng.permutation(m.num_features))
                    for t in (m.weight, m.bias, m.running_mean, m.running_var):
                        if t is not None:
                            t.data.copy_(t.data[perm])
    return out.eval()


def baseline_features(
    run: Run,
    clips: pd.DataFrame,
    model: SoundNet8,
    *,
    layers: Sequence[str],
    baselines: Sequence[str] = BASELINES,
    seed: int = 0,
) -> tuple[dict[tuple[str, str], np.ndarray], dict[tuple[str, str], str]]:
    """Per-clip features of the baselines (:mod:`interp.analysis.baselines`) for ``clips``.

    Parameters
    ----------
    run : Run
        The run (its recorder settings summarise the baseline nets as the run was summarised).
    clips : pandas.DataFrame
        The clips, e.g. rows of ``run.ok_clips`` (decoded again).
    model : SoundNet8
        The pretrained net (shuffled for ``"shuffled"``).
    layers : sequence of str
        Conv layers of the two baseline nets.
    baselines : sequence of {"random init", "shuffled", "log-mel"}
    seed : int
        Seed of the random initialisation and of the shuffle.

    Returns
    -------
    features : dict ``{(baseline, layer): np.ndarray (n_clips, n_features)}``
        Per-clip ``mean`` over time for the nets; the log-mel statistics under layer ``"log-mel"``.
    descriptions : dict ``{(baseline, layer): str}``
    """
    from interp.recording import RecordConfig, summarize_waves

    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ParameterError(
            f"The 'baselines' parameter of baseline_features must name baselines from {list(BASELINES)}. "
            f"Got {list(baselines)} instead."
        )
    waves = clip_waves(clips)
    config = RecordConfig.from_meta(run.meta)
    feats: dict[tuple[str, str], np.ndarray] = {}
    desc: dict[tuple[str, str], str] = {}
    for name in baselines:
        if name == "log-mel":
            feats[(name, LOGMEL_LAYER)] = logmel_features(waves)
            desc[(name, LOGMEL_LAYER)] = "log-mel (64 bands) mean and std over time, standardised"
            continue
        net = random_soundnet(seed=seed) if name == "random init" else shuffled_soundnet(model, seed=seed)
        out = summarize_waves(
            net, waves, layers=list(layers), stats=("mean",), config=config, fast=False, heads_short="none"
        )
        for layer in layers:
            feats[(name, layer)] = np.asarray(out[layer]["mean"], dtype=np.float64)
            desc[(name, layer)] = f"mean over time ({name} SoundNet), standardised"
    return feats, desc
