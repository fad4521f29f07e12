"""STRFs (interp.analysis.strf): a planted linear unit is recovered; real units get a table."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from interp.analysis.strf import STRFConfig, estimate_strfs, strf_features
from soundnet.geometry import SAMPLE_RATE_HZ, n_frames

LAYER = "conv3"
CFG = STRFConfig(n_mels=16, max_lags=8, n_folds=4)


def _ripples(rng: np.random.Generator, seconds: float = 3.0) -> np.ndarray:
    """Noise whose spectrum changes in time and frequency (random smooth gains on its STFT):
    a stimulus rich enough for reverse correlation."""
    n = int(seconds * SAMPLE_RATE_HZ)
    z = librosa.stft(rng.standard_normal(n).astype(np.float32), n_fft=512, hop_length=128)
    gains = rng.standard_normal((8, max(2, z.shape[1] // 8)))
    gains = np.kron(gains, np.ones((z.shape[0] // 8 + 1, 8)))[: z.shape[0], : z.shape[1]]
    if gains.shape[1] < z.shape[1]:
        gains = np.pad(gains, ((0, 0), (0, z.shape[1] - gains.shape[1])), mode="edge")
    y = librosa.istft(z * np.exp(1.5 * gains), hop_length=128, length=n)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


class PlantedSTRF(torch.nn.Module):
    """The real model, with unit 0 of conv3 replaced by a known STRF of the log-mel input."""

    def __init__(self, model, weights: np.ndarray) -> None:
        super().__init__()
        self.model, self.weights = model, weights

    def extract_features(self, x: torch.Tensor, *, layers):
        feats = self.model.extract_features(x, layers=layers)
        out = feats[LAYER].clone()
        for i in range(x.shape[0]):
            y = x[i, 0].numpy() / 256.0
            frames = np.arange(n_frames(len(y), LAYER))
            f = strf_features(y, LAYER, frames, CFG)
            out[i, 0] = torch.from_numpy(f @ self.weights.ravel() / 100.0).float()
        feats[LAYER] = out
        return feats


@pytest.mark.slow
def test_a_planted_linear_unit_is_recovered(model):
    rng = np.random.default_rng(0)
    lag, mel = np.meshgrid(np.arange(CFG.max_lags), np.arange(CFG.n_mels), indexing="ij")
    planted = np.exp(-((lag - 5) ** 2) / 2.0 - ((mel - 6) ** 2) / 4.0) - 0.6 * np.exp(
        -((lag - 2) ** 2) / 2.0 - ((mel - 10) ** 2) / 4.0
    )  # excitation late in the field, mid bands; inhibition earlier, higher up
    waves = [_ripples(rng) for _ in range(30)]
    res = estimate_strfs(PlantedSTRF(model, planted), waves, [LAYER], config=CFG)[LAYER]
    est = res.filters[0]
    r = np.corrcoef(est.ravel(), planted.ravel())[0, 1]
    assert r > 0.9, r
    t = res.table.set_index("unit")
    assert t.loc[0, "r_heldout"] > 0.9  # a linear unit is predicted on held-out clips
    assert t["r_heldout"].drop(index=0).median() < t.loc[0, "r_heldout"]
    assert len(t) == 64 and (t["n_lags"] == CFG.max_lags).all()
    assert t.loc[0, "lag_s"] == pytest.approx(4638 / SAMPLE_RATE_HZ / CFG.max_lags)


def test_conv1_has_a_spectral_strf_from_every_sixth_frame(model):
    """conv1's 3.5 ms field is shorter than one 10 ms log-mel hop: one time bin (a spectral
    tuning curve), and rows every 5 ms (the frames in between repeat the same column)."""
    from interp.analysis.strf import frame_stride, layer_lags

    cfg = STRFConfig(n_mels=16, n_folds=4)
    assert layer_lags("conv1", cfg) == 1 and layer_lags("conv2", cfg) == cfg.max_lags
    assert frame_stride("conv1", cfg) == 6 and frame_stride("conv2", cfg) == 1
    rng = np.random.default_rng(1)
    waves = [_ripples(rng, 1.0) for _ in range(12)]
    res = estimate_strfs(model, waves, ["conv1"], config=cfg)["conv1"]
    assert res.filters.shape == (16, 1, 16)
    assert (res.table["n_lags"] == 1).all() and res.lag_s == pytest.approx(res.table["lag_s"].iloc[0])
    per_clip = int(res.table["n_frames"].iloc[0]) / len(waves)
    assert per_clip == pytest.approx(SAMPLE_RATE_HZ / 16 / 6, rel=0.05)  # one row per 6 frames of 16 samples
    assert res.table["r_heldout"].median() > 0.2  # conv1 is close to linear in the band energies
