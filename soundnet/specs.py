"""SoundNet8's architecture as data: each block's channels, kernel, stride, padding and pool.

The one source of the layer names and geometry used by the model (:mod:`soundnet.model`), the
weights converter (:mod:`soundnet.weights`) and the frame arithmetic (:mod:`soundnet.geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LayerSpec", "LAYER_SPECS", "LAYERS", "CONV_LAYERS", "HEAD_LAYERS", "SPEC_BY_NAME", "BN_EPS"]


@dataclass(frozen=True)
class LayerSpec:
    """Geometry of one SoundNet block.

    Attributes
    ----------
    name : str
        Block name, e.g. ``"conv5"``.
    in_channels, out_channels : int
        Channels in and units out.
    kernel : int
        Convolution kernel length (in samples of the block's input).
    stride : int
        Convolution stride.
    padding : int
        Zero padding on each side of the block's input.
    pool : int
        Max-pool size and stride after the ReLU (0 when there is no pool).
    batchnorm : bool
        Whether the block has BatchNorm + ReLU (heads do not).
    """

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: int
    pool: int = 0
    batchnorm: bool = True


LAYER_SPECS: tuple[LayerSpec, ...] = (
    LayerSpec("conv1", 1, 16, 64, 2, 32, pool=8),
    LayerSpec("conv2", 16, 32, 32, 2, 16, pool=8),
    LayerSpec("conv3", 32, 64, 16, 2, 8),
    LayerSpec("conv4", 64, 128, 8, 2, 4),
    LayerSpec("conv5", 128, 256, 4, 2, 2, pool=4),
    LayerSpec("conv6", 256, 512, 4, 2, 2),
    LayerSpec("conv7", 512, 1024, 4, 2, 2),
    LayerSpec("conv8", 1024, 1000, 8, 2, 0, batchnorm=False),
    LayerSpec("conv8_2", 1024, 401, 8, 2, 0, batchnorm=False),
)
#: All layer names, in forward order (heads last).
LAYERS: tuple[str, ...] = tuple(s.name for s in LAYER_SPECS)
#: The seven convolutional blocks whose units are studied.
CONV_LAYERS: tuple[str, ...] = LAYERS[:7]
#: The two heads: objects (ImageNet 1000) and places (401 Places2 categories).
HEAD_LAYERS: tuple[str, ...] = ("conv8", "conv8_2")
SPEC_BY_NAME: dict[str, LayerSpec] = {s.name: s for s in LAYER_SPECS}
#: BatchNorm's epsilon in every block that has one (as in the original Torch model).
BN_EPS = 1e-5
