"""SoundNet8 (Aytar, Vondrick, Torralba, NeurIPS 2016) in PyTorch, with its pretrained weights.

Quick start
-----------
>>> from soundnet import load_soundnet, load_audio
>>> model = load_soundnet()                 # eval mode, pretrained weights
>>> x = load_audio("clip.flac")             # (1, 1, T): 22050 Hz, mono, x256
>>> objects, places = model(x)              # (1, 1000, T8), (1, 401, T8)
>>> feats = model.extract_features(x)       # {"conv1": ..., "conv8_2": ...}
"""

from soundnet.audio import INPUT_SCALE, load_audio, read_audio, to_model_input
from soundnet.errors import AudioError, ParameterError, SoundNetError, WeightsError
from soundnet.geometry import SAMPLE_RATE_HZ, frame_counts, frames_to_time, layer_geometry, n_frames
from soundnet.labels import decode, vector_to_obj, vector_to_scenes
from soundnet.model import CONV_LAYERS, HEAD_LAYERS, LAYERS, SoundNet8, load_soundnet

#: The seed's class name.
SoundNet8_pytorch = SoundNet8

__version__ = "0.1.0"

__all__ = [
    "AudioError", "CONV_LAYERS", "HEAD_LAYERS", "INPUT_SCALE", "LAYERS", "ParameterError",
    "SAMPLE_RATE_HZ", "SoundNet8", "SoundNet8_pytorch", "SoundNetError", "WeightsError", "decode",
    "frame_counts", "frames_to_time", "layer_geometry", "load_audio", "load_soundnet", "n_frames",
    "read_audio", "to_model_input", "vector_to_obj", "vector_to_scenes",
]
