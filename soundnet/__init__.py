"""SoundNet8 (Aytar, Vondrick, Torralba, NeurIPS 2016) in PyTorch, with its pretrained weights.

Quick start
-----------
>>> from soundnet import load_soundnet, load_audio
>>> model = load_soundnet()                 # eval mode, pretrained weights
>>> x = load_audio("clip.flac")             # (1, 1, T): 22050 Hz, mono, x256
>>> feats = model.extract_features(x)       # {"conv1": (1, 16, T1), ..., "conv8_2": ...}
>>> x = load_audio("clip.flac", short="tile")   # heads need >= 209,374 samples (9.5 s)
>>> objects, places = model(x)              # (1, 1000, T8), (1, 401, T8) logits
>>> decode(objects, head="objects", k=3)    # [[("stage", 0.023), ...]]

Or from a shell: ``python -m soundnet.predict clip.flac`` and ``python -m soundnet.weights``.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

from soundnet.audio import (
    INPUT_SCALE,
    AudioInfo,
    audio_info,
    iter_audio_blocks,
    load_audio,
    read_audio,
    to_model_input,
)
from soundnet.errors import AudioError, InputTooShortError, ParameterError, SoundNetError, WeightsError
from soundnet.geometry import (
    SAMPLE_RATE_HZ,
    frame_counts,
    frames_to_time,
    frames_to_window,
    layer_geometry,
    min_samples,
    n_frames,
    time_to_frames,
)
from soundnet.labels import (
    clip_probabilities,
    decode,
    decode_frames,
    object_names,
    place_labels,
    vector_to_obj,
    vector_to_scenes,
)
from soundnet.model import CONV_LAYERS, HEAD_LAYERS, LAYERS, SoundNet8, load_soundnet
from soundnet.weights import resolve_weights, weights_sha256

#: The seed's class name (it also accepts the seed's (batch, 1, n, 1) input and Conv2d weights).
SoundNet8_pytorch = SoundNet8

try:  # the one place the version is read: the installed distribution's metadata (pyproject.toml)
    __version__: str = _distribution_version("soundnet-interp")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "AudioError",
    "AudioInfo",
    "CONV_LAYERS",
    "HEAD_LAYERS",
    "INPUT_SCALE",
    "InputTooShortError",
    "LAYERS",
    "ParameterError",
    "SAMPLE_RATE_HZ",
    "SoundNet8",
    "SoundNet8_pytorch",
    "SoundNetError",
    "WeightsError",
    "audio_info",
    "clip_probabilities",
    "decode",
    "decode_frames",
    "frame_counts",
    "frames_to_time",
    "frames_to_window",
    "iter_audio_blocks",
    "layer_geometry",
    "load_audio",
    "load_soundnet",
    "min_samples",
    "n_frames",
    "object_names",
    "place_labels",
    "read_audio",
    "resolve_weights",
    "time_to_frames",
    "to_model_input",
    "vector_to_obj",
    "vector_to_scenes",
    "weights_sha256",
]
