"""SoundNet8 in PyTorch, faithful to the original Torch model.

The network takes a mono waveform at 22050 Hz scaled x256 (see :mod:`soundnet.audio`) shaped
``(batch, 1, n_samples)`` and returns the object logits ``(batch, 1000, n_frames8)`` and the place
logits ``(batch, 401, n_frames8)``.

Layer names follow the seed's ``SoundNet8_pytorch`` (``conv1`` .. ``conv7``, ``conv8``,
``conv8_2``) so that its ``sound8.pth`` state dict loads unchanged (after squeezing the Conv2d
width axis). Each block ``convN`` is ``Conv1d -> BatchNorm1d(eps=1e-5) -> ReLU`` followed, for
conv1, conv2 and conv5, by a max-pool; a layer's *features* are the output of its whole block,
exactly what the seed's ``extract_feat`` returned (conv5's output is the paper's "pool5").
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from soundnet.errors import ParameterError
from soundnet.specs import BN_EPS, CONV_LAYERS, HEAD_LAYERS, LAYER_SPECS, LAYERS, SPEC_BY_NAME, LayerSpec
from soundnet.weights import load_state_dict

__all__ = [
    "LayerSpec",
    "LAYER_SPECS",
    "LAYERS",
    "CONV_LAYERS",
    "HEAD_LAYERS",
    "BN_EPS",
    "SPEC_BY_NAME",
    "SoundNet8",
    "FeatureExtractor",
    "load_soundnet",
]


def _block(spec: LayerSpec) -> nn.Sequential:
    mods: list[nn.Module] = [nn.Conv1d(spec.in_channels, spec.out_channels, spec.kernel, spec.stride, spec.padding)]
    if spec.batchnorm:
        mods += [nn.BatchNorm1d(spec.out_channels, eps=BN_EPS), nn.ReLU(inplace=True)]
    if spec.pool:
        mods.append(nn.MaxPool1d(spec.pool, spec.pool))
    return nn.Sequential(*mods)


class FeatureExtractor(Protocol):
    """Anything with SoundNet8's ``extract_features`` (the plain model, the fast path, a stand-in
    that loads the model on first use)."""

    def extract_features(
        self, x: torch.Tensor, *, layers: tuple[str, ...] | list[str] | None = None
    ) -> dict[str, torch.Tensor]: ...


class SoundNet8(nn.Module):
    """The 8-layer SoundNet (Aytar, Vondrick and Torralba, NeurIPS 2016).

    Use :func:`load_soundnet` to get it with the pretrained weights in eval mode.

    Notes
    -----
    Input: float32 ``(batch, 1, n_samples)`` at 22050 Hz, *scaled x256* (what
    :func:`soundnet.audio.load_audio` returns). Output of :meth:`forward`: ``(objects, places)``
    logits of shapes ``(batch, 1000, n_frames8)`` and ``(batch, 401, n_frames8)``; ``n_frames8``
    is 0 for inputs shorter than 209,374 samples (about 9.5 s), see :mod:`soundnet.geometry`.
    """

    def __init__(self) -> None:
        super().__init__()
        for spec in LAYER_SPECS:
            self.add_module(spec.name, _block(spec))
        # The seed's state dicts hold Conv2d weights (out, in, k, 1): accept them unchanged.
        self.register_load_state_dict_pre_hook(_squeeze_conv2d_weights)

    # the blocks, made by add_module above (declared for type checkers)
    conv1: nn.Sequential
    conv2: nn.Sequential
    conv3: nn.Sequential
    conv4: nn.Sequential
    conv5: nn.Sequential
    conv6: nn.Sequential
    conv7: nn.Sequential
    conv8: nn.Sequential
    conv8_2: nn.Sequential

    # -- the seed's conveniences -------------------------------------------------------------
    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Run conv1..conv7 and return conv7's output ``(batch, 1024, n_frames7)``."""
        for name in CONV_LAYERS:
            x = self.run_block(name, x)
        return x

    def run_block(self, name: str, h: torch.Tensor) -> torch.Tensor:
        """Apply block ``name`` to ``h``; an input too short for one frame gives 0 frames.

        PyTorch raises on a convolution or pool whose input is shorter than its kernel; SoundNet
        semantics are simply "no frame", so this returns ``(batch, out_channels, 0)`` instead,
        which keeps :mod:`soundnet.geometry` and the real shapes equal for every input length.
        """
        spec = SPEC_BY_NAME[name]
        length = h.shape[-1]
        conv_frames = (length + 2 * spec.padding - spec.kernel) // spec.stride + 1
        if length == 0 or conv_frames < max(1, spec.pool):
            return h.new_zeros((h.shape[0], spec.out_channels, 0))
        return getattr(self, name)(h)  # the whole block, so that forward hooks on it fire

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Object and place logits, ``(batch, 1000, T8)`` and ``(batch, 401, T8)``.

        The seed's 4-D input ``(batch, 1, n_samples, 1)`` is accepted too and then gives the
        seed's 4-D outputs ``(batch, 1000, T8, 1)`` and ``(batch, 401, T8, 1)``.
        """
        x, seed_layout = _as_3d(x)
        h = self.trunk(x)
        out = self.run_block("conv8", h), self.run_block("conv8_2", h)
        return (out[0].unsqueeze(-1), out[1].unsqueeze(-1)) if seed_layout else out

    def extract_features(
        self, x: torch.Tensor, *, layers: tuple[str, ...] | list[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Every layer's output by name.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, 1, n_samples)
            Waveform at 22050 Hz, scaled x256.
        layers : sequence of str, optional
            Names to return (default all of :data:`LAYERS`). The forward pass stops after the
            last one needed.

        Returns
        -------
        dict of str to torch.Tensor
            ``{"conv1": (batch, 16, T1), ..., "conv7": (batch, 1024, T7), "conv8": (batch, 1000,
            T8), "conv8_2": (batch, 401, T8)}``; the heads have ``T8 = 0`` frames for inputs
            shorter than 209,374 samples.
        """
        x, seed_layout = _as_3d(x)
        wanted = list(LAYERS if layers is None else ([layers] if isinstance(layers, str) else layers))
        unknown = [w for w in wanted if w not in SPEC_BY_NAME]
        if unknown or not wanted:
            raise ParameterError(
                f"The 'layers' parameter of extract_features must name layers from {list(LAYERS)}. "
                f"Got {layers!r} instead."
            )
        out: dict[str, torch.Tensor] = {}
        h = x
        last_conv = max((CONV_LAYERS.index(w) for w in wanted if w in CONV_LAYERS), default=-1)
        if any(w in HEAD_LAYERS for w in wanted):
            last_conv = len(CONV_LAYERS) - 1
        for name in CONV_LAYERS[: last_conv + 1]:
            h = self.run_block(name, h)
            if name in wanted:
                out[name] = h
        for name in HEAD_LAYERS:
            if name in wanted:
                out[name] = self.run_block(name, h)
        if seed_layout:
            return {name: out[name].unsqueeze(-1) for name in wanted}
        return {name: out[name] for name in wanted}

    def extract_feat(self, x: torch.Tensor) -> list:
        """The seed's API: a list of numpy arrays, conv1..conv7, conv8, conv8_2."""
        feats = self.extract_features(x)
        return [feats[n].detach().cpu().numpy() for n in LAYERS]


def _as_3d(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``(x as (batch, 1, n), whether x came in the seed's (batch, 1, n, 1) layout)``."""
    if isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[1] == 1 and x.shape[3] == 1:
        return x[..., 0], True
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[1] != 1 or not x.is_floating_point():
        what = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ParameterError(
            "SoundNet8 expects a float tensor shaped (batch, 1, n_samples) at 22050 Hz scaled "
            f"x256 (use soundnet.load_audio). Got {what} instead."
        )
    return x, False


def _squeeze_conv2d_weights(
    module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
) -> None:
    """Load-state-dict pre-hook: the seed's ``(out, in, k, 1)`` conv weights -> ``(out, in, k)``;
    a BatchNorm without ``num_batches_tracked`` (older PyTorch) gets 0."""
    for spec in LAYER_SPECS:
        key = f"{prefix}{spec.name}.0.weight"
        w = state_dict.get(key)
        if isinstance(w, torch.Tensor) and w.ndim == 4 and w.shape[-1] == 1:
            state_dict[key] = w[..., 0]
        if spec.batchnorm and f"{prefix}{spec.name}.1.running_mean" in state_dict:
            state_dict.setdefault(f"{prefix}{spec.name}.1.num_batches_tracked", torch.tensor(0, dtype=torch.long))


def check_device(device: str | torch.device, func: str) -> torch.device:
    """``device`` as a :class:`torch.device`, or a clear :class:`ParameterError` for a name
    torch does not know or a CUDA device this PyTorch cannot use; ``func`` names the caller."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(
            f"The 'device' parameter of {func} must be a torch device such as 'cpu' "
            f"or 'cuda'. Got {device!r} instead ({exc})."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(
            f"The 'device' parameter of {func} is {str(device)!r}, but this PyTorch sees no CUDA "
            f"device (torch {torch.__version__}, torch.cuda.is_available() is False). Use 'cpu', "
            "or install a CUDA build of PyTorch on a machine with an NVIDIA GPU."
        )
    return dev


def load_soundnet(
    weights: str | None = None,
    *,
    device: str | torch.device = "cpu",
) -> SoundNet8:
    """SoundNet8 with the pretrained weights, in eval mode.

    Parameters
    ----------
    weights : str or path, optional
        A ``sound8.npy`` (TensorFlow layout) or ``sound8.pth`` (the seed's state dict). When
        omitted, :func:`soundnet.weights.resolve_weights` finds or downloads them.
    device : str or torch.device
        Where to put the model.

    Returns
    -------
    SoundNet8
        In eval mode (BatchNorm uses its running statistics), gradients off.
    """

    check_device(device, "load_soundnet")
    state = {k: (v.float().contiguous() if v.is_floating_point() else v) for k, v in load_state_dict(weights).items()}
    with torch.device("meta"):  # no random initialisation of weights about to be replaced
        model = SoundNet8()
    model.load_state_dict(state, assign=True)  # strict: every tensor comes from the file
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)
