"""Many ablations of one layer, cheaply: splice the change into the next convolution.

:class:`AblationRunner` computes, once per clip, the output ``a`` of the ablated layer and the
pre-activation ``z = W * a + b`` of every convolution that reads it (the next conv layer, or the
two heads after conv7). Replacing units ``S`` by fill values ``f`` changes that pre-activation by
a convolution over ``S`` alone, because a convolution is linear in its input::

    z' = z - W[:, S] * (a[S] - f[S])

(zero padding pads the difference with zeros, as it pads ``a`` and ``a'``). An ablation of
``|S|`` units then costs ``|S| / C`` of the next convolution plus the layers above it, and many
ablations (random draws, folds, doses) of different clips are stacked into one batch for those
layers. :meth:`AblationRunner.features` returns the readouts of :mod:`interp.analysis.causal`:
the mean over counted frames of a conv layer, and the heads' clip-level log-probabilities (as
:class:`interp.analysis.ablation.HeadRunner` computes them, to float32 rounding).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from interp.analysis.ablation import _check_units, run_clip_waves
from interp.recording import RecordConfig, summary_frames
from interp.run.store import Run
from soundnet.audio import INPUT_SCALE
from soundnet.errors import ParameterError
from soundnet.model import CONV_LAYERS, HEAD_LAYERS, SPEC_BY_NAME, SoundNet8
from soundnet.options import Edge

__all__ = ["AblationRunner", "Job"]

#: One ablation of some clips: ``(clip indices, units of the runner's layer)``.
Job = tuple[np.ndarray, Sequence[int]]
_Piece = tuple[int, np.ndarray, np.ndarray, list[int]]


def _feature_dim(name: str) -> int:
    if name == "heads":
        return sum(SPEC_BY_NAME[h].out_channels for h in HEAD_LAYERS)
    return SPEC_BY_NAME[name].out_channels


class AblationRunner:
    """Clip-level readouts of a fixed set of clips under many ablations of one conv layer.

    Parameters
    ----------
    model : SoundNet8
        Not changed while the runner is used (the cached pre-activations are the model's).
    waves : list of np.ndarray
        Mono float32 waveforms at 22050 Hz in [-1, 1] (not scaled), at the length the network
        sees (:func:`interp.analysis.ablation.run_clip_waves`).
    layer : str
        The conv layer whose units are ablated (conv1 .. conv7).
    features : sequence of str
        Readouts to compute: conv layer names at or above ``layer`` (the layer's mean over its
        counted frames, ``(n, n_units)``) and/or ``"heads"`` (conv8's 1000 and conv8_2's 401
        clip-level log-probabilities side by side, ``log(mean over frames of softmax)``).
    fill : np.ndarray, shape (n_units of layer,), optional
        The value an ablated unit takes at every frame (default 0: zero-ablation; the corpus mean
        of :func:`interp.analysis.ablation.unit_means` for mean-ablation).
    batch_size : int
        Clips per batch for the cached pass, and ablated clips per batch above ``layer`` (times 4).
    edge : {"drop", "keep"}
        Which frames enter the clip-level means (:func:`interp.recording.summary_frames`).
    """

    @classmethod
    def for_run(
        cls,
        run: Run,
        model: SoundNet8,
        *,
        layer: str,
        features: Sequence[str],
        fill: np.ndarray | None = None,
        batch_size: int = 16,
    ) -> AblationRunner:
        """A runner over a run's ok clips (in ``run.ok_clips`` order), as its heads saw them."""
        _, waves = run_clip_waves(run)
        edge = RecordConfig.from_meta(run.meta).edge
        return cls(model, waves, layer=layer, features=features, fill=fill, batch_size=batch_size, edge=edge)

    def __init__(
        self,
        model: SoundNet8,
        waves: list[np.ndarray],
        *,
        layer: str,
        features: Sequence[str],
        fill: np.ndarray | None = None,
        batch_size: int = 16,
        edge: Edge = "drop",
    ) -> None:
        if layer not in CONV_LAYERS:
            raise ParameterError(
                f"The 'layer' parameter of AblationRunner must be one of {list(CONV_LAYERS)}. Got {layer!r} instead."
            )
        li = CONV_LAYERS.index(layer)
        feats = [str(f) for f in features]
        bad = [f for f in feats if f != "heads" and (f not in CONV_LAYERS or CONV_LAYERS.index(f) < li)]
        if bad or not feats:
            raise ParameterError(
                f"The 'features' parameter of AblationRunner must name 'heads' or conv layers from {layer} on. "
                f"Got {feats} instead."
            )
        n_units = SPEC_BY_NAME[layer].out_channels
        f = np.zeros(n_units) if fill is None else np.asarray(fill, dtype=np.float64)
        if f.shape != (n_units,) or not np.isfinite(f).all():
            raise ParameterError(
                f"The 'fill' parameter of AblationRunner must be {n_units} finite values (one per unit of {layer}). "
                f"Got shape {f.shape} instead."
            )
        if int(batch_size) < 1:
            raise ParameterError(
                f"The 'batch_size' parameter of AblationRunner must be >= 1. Got {batch_size} instead."
            )
        self.model, self.layer, self.features_, self.edge = model, layer, feats, edge
        self.fill = torch.from_numpy(f.astype(np.float32))
        self.n_clips = len(waves)
        self.batch_size = int(batch_size)
        # the convolutions that read the layer: the next conv layer, or the heads after conv7
        above = "heads" in feats or any(CONV_LAYERS.index(c) > li for c in feats if c != "heads")
        self._next: tuple[str, ...] = ()
        if above:
            self._next = (CONV_LAYERS[li + 1],) if li + 1 < len(CONV_LAYERS) else tuple(HEAD_LAYERS)
        lengths = np.asarray([len(w) for w in waves])
        self._group_of = np.zeros(self.n_clips, dtype=np.int64)
        self._row_of = np.zeros(self.n_clips, dtype=np.int64)
        self._groups: list[dict] = []
        with torch.inference_mode():
            for n in np.unique(lengths):
                idx = np.flatnonzero(lengths == n)
                a_parts: list[torch.Tensor] = []
                z_parts: dict[str, list[torch.Tensor]] = {name: [] for name in self._next}
                for i in range(0, len(idx), self.batch_size):
                    part = idx[i : i + self.batch_size]
                    x = torch.from_numpy(np.stack([waves[j] for j in part]).astype(np.float32)[:, None, :])
                    h = x * INPUT_SCALE
                    for name in CONV_LAYERS[: li + 1]:
                        h = model.run_block(name, h)
                    a_parts.append(h)
                    for name in self._next:
                        z_parts[name].append(self._pre(name, h))
                self._group_of[idx] = len(self._groups)
                self._row_of[idx] = np.arange(len(idx))
                self._groups.append(
                    {
                        "n_samples": int(n),
                        "a": torch.cat(a_parts),
                        "z": {name: torch.cat(p) for name, p in z_parts.items()},
                    }
                )

    def unit_means(self) -> np.ndarray:
        """Each unit's mean over the counted frames of the runner's inputs, shape (n_units,).

        The fill of mean-ablation for the inputs the readouts see: clips tiled for the heads give
        their units other means than the untiled clips' valid frames
        (:func:`interp.analysis.ablation.unit_means`).
        """
        total = torch.zeros(SPEC_BY_NAME[self.layer].out_channels, dtype=torch.float64)
        count = 0
        for grp in self._groups:
            t = min(summary_frames(grp["n_samples"], self.layer, edge=self.edge), grp["a"].shape[-1])
            total += grp["a"][..., :t].double().sum(dim=(0, 2))
            count += t * grp["a"].shape[0]
        if not count:
            raise ParameterError(f"No clip of the runner has a counted {self.layer} frame.")
        return (total / count).numpy()

    def set_fill(self, fill: np.ndarray) -> None:
        """Set the values ablated units take (one per unit of the layer)."""
        f = np.asarray(fill, dtype=np.float64)
        if f.shape != tuple(self.fill.shape) or not np.isfinite(f).all():
            raise ParameterError(
                f"The 'fill' parameter of set_fill must be {self.fill.shape[0]} finite values. Got shape {f.shape} instead."
            )
        self.fill = torch.from_numpy(f.astype(np.float32))

    # -- the pieces of a block ---------------------------------------------------------------
    def _conv(self, name: str) -> torch.nn.Conv1d:
        return getattr(self.model, name)[0]

    def _pre(self, name: str, h: torch.Tensor) -> torch.Tensor:
        """Pre-activation of block ``name`` (its convolution), with run_block's zero-frame rule."""
        spec = SPEC_BY_NAME[name]
        frames = (h.shape[-1] + 2 * spec.padding - spec.kernel) // spec.stride + 1
        if h.shape[-1] == 0 or frames < max(1, spec.pool):
            return h.new_zeros((h.shape[0], spec.out_channels, 0))
        return self._conv(name)(h)

    def _post(self, name: str, z: torch.Tensor) -> torch.Tensor:
        """The rest of block ``name`` (BatchNorm, ReLU, pool) after its convolution."""
        if z.shape[-1] == 0:
            return z
        return getattr(self.model, name)[1:](z)

    # -- evaluation ----------------------------------------------------------------------------
    def features(self, jobs: Iterable[Job]) -> list[dict[str, np.ndarray]]:
        """The readouts of each job's clips with the job's units ablated.

        Parameters
        ----------
        jobs : iterable of (clip indices, units)
            Clip indices into the runner's clips (int array); units of the runner's layer
            (empty: unablated).

        Returns
        -------
        list of dict, one per job
            ``{feature: float64 array (n_job_clips, dim)}`` in the order of the job's clips;
            NaN rows for clips that give a readout no frame.
        """
        todo = [(np.asarray(c, dtype=np.int64).ravel(), [int(u) for u in us]) for c, us in jobs]
        out = [{f: np.full((len(c), _feature_dim(f)), np.nan) for f in self.features_} for c, _ in todo]
        for c, us in todo:
            if len(c) and (c.min() < 0 or c.max() >= self.n_clips):
                raise ParameterError(f"Clip indices must be in [0, {self.n_clips - 1}]. Got {c.min()}..{c.max()}.")
            _check_units({self.layer: us})
        # pieces (job, positions in the job, rows of the group) per group, flushed in batches
        pending: dict[int, list[_Piece]] = {}
        for j, (c, us) in enumerate(todo):
            g = self._group_of[c]
            for gi in np.unique(g):
                where = np.flatnonzero(g == gi)
                pending.setdefault(int(gi), []).append((j, where, self._row_of[c[where]], us))
        limit = 4 * self.batch_size
        with torch.inference_mode():
            for gi, pieces in pending.items():
                batch: list[_Piece] = []
                size = 0
                for piece in pieces:
                    batch.append(piece)
                    size += len(piece[1])
                    if size >= limit:
                        self._run(gi, batch, out)
                        batch, size = [], 0
                if batch:
                    self._run(gi, batch, out)
        return out

    def _spliced(self, grp: dict, rows: np.ndarray, units: list[int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The ablated layer output and the next convolutions' pre-activations for some rows."""
        r = torch.from_numpy(rows)
        a = grp["a"][r]
        z = {name: t[r] for name, t in grp["z"].items()}
        if not units:
            return a, z
        s = torch.as_tensor(units, dtype=torch.long)
        diff = a[:, s, :] - self.fill[s][None, :, None]
        if self.layer in self.features_:  # the ablated layer's own mean is read out
            a = a.clone()
            a[:, s, :] = self.fill[s][None, :, None].expand(len(rows), -1, a.shape[-1])
        for name in z:
            if z[name].shape[-1] == 0:
                continue
            conv = self._conv(name)
            delta = F.conv1d(diff, conv.weight[:, s, :], None, conv.stride, conv.padding)
            z[name] = z[name] - delta
        return a, z

    def _run(self, gi: int, batch: list, out: list[dict[str, np.ndarray]]) -> None:
        grp = self._groups[gi]
        n_samples = grp["n_samples"]
        parts = [self._spliced(grp, rows, us) for _, _, rows, us in batch]
        a = torch.cat([p[0] for p in parts])
        z = {name: torch.cat([p[1][name] for p in parts]) for name in self._next}
        res: dict[str, np.ndarray] = {}

        def conv_mean(name: str, h: torch.Tensor) -> None:
            if name in self.features_:
                t = summary_frames(n_samples, name, edge=self.edge)
                val = h[..., :t].double().mean(dim=-1) if t and h.shape[-1] >= t else None
                res[name] = val.cpu().numpy() if val is not None else np.full((h.shape[0], h.shape[1]), np.nan)

        conv_mean(self.layer, a)
        h = a
        if self._next and self._next[0] in CONV_LAYERS:
            first = self._next[0]
            h = self._post(first, z[first])
            conv_mean(first, h)
            for name in CONV_LAYERS[CONV_LAYERS.index(first) + 1 :]:
                if not any(f == "heads" or CONV_LAYERS.index(f) >= CONV_LAYERS.index(name) for f in self.features_):
                    break
                h = self.model.run_block(name, h)
                conv_mean(name, h)
        if "heads" in self.features_:
            cols = []
            for head in HEAD_LAYERS:
                t = summary_frames(n_samples, head, edge=self.edge)
                if self.layer == CONV_LAYERS[-1]:
                    logits = self._post(head, z[head])
                else:  # h is conv7's output: the loop above ran up to it
                    logits = self.model.run_block(head, h)
                if t and logits.shape[-1] >= t:
                    lsm = torch.log_softmax(logits[..., :t].double(), dim=1)
                    cols.append((torch.logsumexp(lsm, dim=2) - np.log(t)).cpu().numpy())
                else:
                    cols.append(np.full((logits.shape[0], SPEC_BY_NAME[head].out_channels), np.nan))
            res["heads"] = np.concatenate(cols, axis=1)
        start = 0
        for j, where, rows, _ in batch:
            stop = start + len(rows)
            for f in self.features_:
                out[j][f][where] = res[f][start:stop]
            start = stop
