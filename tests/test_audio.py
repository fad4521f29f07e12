"""The audio front end on real recordings and on broken files: every failure is an AudioError
that names the file and an honest reason."""

from __future__ import annotations

import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr
import torch

from soundnet import load_audio
from soundnet.audio import (
    INPUT_SCALE,
    audio_info,
    fit_length,
    iter_audio_blocks,
    read_audio,
    to_model_input,
)
from soundnet.errors import AudioError, ParameterError, SoundNetError
from soundnet.geometry import HEADS_TILE_SAMPLES, SAMPLE_RATE_HZ, min_samples

SR = SAMPLE_RATE_HZ


@pytest.fixture(scope="module")
def clip_path(minibank_dir) -> Path:
    return minibank_dir / "audio" / "tabla" / "tabla_ghe5.flac"  # 3.56 s, real tabla


@pytest.fixture(scope="module")
def clip(clip_path) -> np.ndarray:
    return read_audio(clip_path)


def _error(path, **kwargs) -> AudioError:
    with pytest.raises(AudioError) as info:
        read_audio(path, **kwargs)
    err = info.value
    assert err.path == str(path) and str(path) in str(err) and err.reason in str(err)
    return err


def _truncate(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


# -- good files ---------------------------------------------------------------------------------


def test_every_minibank_clip_decodes_to_its_manifest_length(minibank_dir):
    manifest = pd.read_csv(minibank_dir / "manifest.csv")
    for row in manifest.itertuples():
        y = read_audio(minibank_dir / row.path)
        assert y.dtype == np.float32 and y.ndim == 1
        assert abs(len(y) / SR - row.seconds) < 1e-3, row.path
        assert np.abs(y).max() <= 1.0


def test_six_channels_are_mixed_to_mono(tmp_path, clip):
    gains = np.array([1.0, 0.5, 0.0, -0.25, 0.8, 0.3], dtype=np.float32)
    path = tmp_path / "surround.wav"
    sf.write(path, clip[:, None] * gains[None, :] * 0.9, SR, subtype="FLOAT")
    y = read_audio(path)
    np.testing.assert_allclose(y, clip * 0.9 * gains.mean(), atol=1e-6)
    info = audio_info(path)
    assert info.channels == 6 and info.note() == "mixed 6 channels to mono"


@pytest.mark.parametrize(("rate_hz", "subtype"), [(192_000, "PCM_24"), (8_000, "PCM_16")])
def test_resampling_keeps_duration_and_pitch(tmp_path, rate_hz, subtype):
    duration_s, tone_hz = 1.5, 1000.0
    t = np.arange(int(duration_s * rate_hz)) / rate_hz
    path = tmp_path / f"tone_{rate_hz}.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * tone_hz * t), rate_hz, subtype=subtype)
    y = read_audio(path)
    assert abs(len(y) - duration_s * SR) <= 1
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    peak_hz = np.argmax(spectrum) * SR / len(y)
    assert abs(peak_hz - tone_hz) <= SR / len(y)
    assert 0.45 < np.abs(y[1000:-1000]).max() < 0.55
    assert audio_info(path).note() == f"resampled {rate_hz} Hz -> 22050 Hz"


def test_resampled_real_clip_survives_a_round_trip(tmp_path, clip):
    path = tmp_path / "tabla_48k.wav"
    sf.write(path, soxr.resample(clip, SR, 48_000), 48_000, subtype="FLOAT")
    y = read_audio(path)
    assert len(y) == len(clip)
    assert np.corrcoef(y, clip)[0, 1] > 0.999
    streamed = np.concatenate(list(iter_audio_blocks(path, block_s=0.7)))
    np.testing.assert_allclose(streamed, y, atol=1e-3)


@pytest.mark.parametrize(("suffix", "fmt", "subtype"), [(".mp3", "MP3", "MPEG_LAYER_III"), (".ogg", "OGG", "VORBIS")])
def test_lossy_formats_decode(tmp_path, clip, suffix, fmt, subtype):
    path = tmp_path / f"tabla{suffix}"
    sf.write(path, clip, SR, format=fmt, subtype=subtype)
    y = read_audio(path)
    assert abs(len(y) - len(clip)) <= 1152
    n = min(len(y), len(clip))
    assert np.corrcoef(y[:n], clip[:n])[0, 1] > 0.98
    assert audio_info(path).format == fmt


def _ffmpeg(*args: str) -> None:
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is a system dependency (make system-deps)"
    subprocess.run([ffmpeg, "-v", "error", "-y", *args], check=True)


def test_formats_libsndfile_lacks_go_through_ffmpeg(tmp_path, clip_path, clip):
    path = tmp_path / "tabla.m4a"
    _ffmpeg("-i", str(clip_path), "-c:a", "aac", "-b:a", "128k", str(path))
    y = read_audio(path)
    assert abs(len(y) - len(clip)) < 2048  # AAC frames are 1024 samples
    n = min(len(y), len(clip))
    assert np.corrcoef(y[:n], clip[:n])[0, 1] > 0.98
    assert audio_info(path).format == "ffmpeg"
    part = read_audio(path, offset_s=1.0, duration_s=0.5)
    np.testing.assert_allclose(part, y[SR : SR + SR // 2], atol=1e-4)


def test_files_libsndfile_refuses_but_ffmpeg_reads(tmp_path, clip_path, clip):
    """FLAC in an Ogg container from ffmpeg: libsndfile's FLAC-in-Ogg reader gives up on it."""
    path = tmp_path / "tabla.oga"
    _ffmpeg("-i", str(clip_path), "-c:a", "flac", str(path))
    np.testing.assert_array_equal(read_audio(path), clip)  # lossless, 16-bit both ways


def test_path_with_spaces_and_non_ascii_letters(tmp_path, clip_path, clip):
    folder = tmp_path / "my recordings – été"
    folder.mkdir()
    path = folder / "Bartók tánc ÿ 01.flac"
    shutil.copyfile(clip_path, path)
    np.testing.assert_array_equal(read_audio(path), clip)
    assert load_audio(path).shape == (1, 1, len(clip))


def test_offset_and_duration(long_dir):
    path = long_dir / "vibe_ace.flac"
    full = read_audio(path)
    part = read_audio(path, offset_s=2.5, duration_s=1.25)
    np.testing.assert_array_equal(part, full[int(2.5 * SR) : int(2.5 * SR) + int(1.25 * SR)])
    tail = read_audio(path, offset_s=29.0)
    np.testing.assert_array_equal(tail, full[29 * SR :])
    x = load_audio(path, offset_s=2.5, duration_s=1.25)
    np.testing.assert_array_equal(x[0, 0].numpy(), part * np.float32(INPUT_SCALE))


def _libsndfile_float(path, offset_s: float = 0.0, duration_s: float | None = None) -> np.ndarray:
    """The reference front end: libsndfile's own float conversion, mono mix, soxr HQ."""
    with sf.SoundFile(str(path)) as f:
        start = int(round(offset_s * f.samplerate))
        if start:
            f.seek(start)
        count = -1 if duration_s is None else max(1, int(round(duration_s * f.samplerate)))
        data, rate = f.read(count, dtype="float32", always_2d=True), f.samplerate
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    return soxr.resample(mono, rate, SR, quality="HQ").astype(np.float32) if rate != SR else mono


def test_16_bit_pcm_read_through_scratch_buffers_is_bit_identical(tmp_path, clip, minibank_dir):
    """16-bit files are read as integers into per-thread scratch buffers: the same samples as
    libsndfile's float conversion, and no result is overwritten by later reads (also from
    another thread)."""
    import threading

    files = []
    for rate, channels, subtype, tiles in (
        (44100, 1, "PCM_16", 1),
        (22050, 1, "PCM_16", 1),
        (48000, 2, "PCM_16", 1),
        (44100, 1, "PCM_24", 1),
        (192000, 1, "PCM_16", 4),
    ):  # the last: too long for scratch
        y = np.tile(soxr.resample(clip, SR, rate), tiles)
        y = np.stack([y, 0.5 * y], axis=1) if channels == 2 else y
        files.append(tmp_path / f"{rate}_{channels}_{subtype}_{len(y)}.wav")
        sf.write(files[-1], y, rate, subtype=subtype)
    files += sorted((minibank_dir / "audio").rglob("*.flac"))[:6]  # 16-bit FLAC
    reads = [(f, {}) for f in files] + [(f, {"offset_s": 0.5, "duration_s": 1.0}) for f in files[:5]]
    got = [read_audio(f, **kw) for f, kw in reads]
    assert sf.info(str(files[4])).frames > 2**21  # more values than the scratch buffers hold
    for (f, kw), y in zip(reads, got):
        np.testing.assert_array_equal(y, _libsndfile_float(f, **kw), err_msg=f"{f.name} {kw}")
    other: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: other.extend(read_audio(f) for f in files))
    worker.start()
    again = [read_audio(f) for f in reversed(files)]
    worker.join()
    for (f, kw), y in zip(reads, got):  # the first results are intact after all these reads
        np.testing.assert_array_equal(y, _libsndfile_float(f, **kw))
    for y, z, w in zip(got, other, reversed(again)):
        np.testing.assert_array_equal(y if len(y) == len(z) else z, z)
        np.testing.assert_array_equal(z, w)


def test_offset_past_the_end_is_a_bad_range(clip_path):
    assert _error(clip_path, offset_s=10.0).reason == "bad range"
    with pytest.raises(ParameterError, match="'offset_s'"):
        read_audio(clip_path, offset_s=-1.0)
    with pytest.raises(ParameterError, match="'duration_s'"):
        read_audio(clip_path, duration_s=0.0)


def test_short_policies(clip_path, clip):
    n = HEADS_TILE_SAMPLES
    tiled = load_audio(clip_path, short="tile")[0, 0].numpy()
    padded = load_audio(clip_path, short="pad")[0, 0].numpy()
    plain = load_audio(clip_path, short="none")[0, 0].numpy()
    assert len(tiled) == len(padded) == n == 441_000 and len(plain) == len(clip)
    assert len(load_audio(clip_path, short="tile", min_length="conv8")[0, 0]) == min_samples("conv8") == 209_374
    scaled = clip * np.float32(INPUT_SCALE)
    np.testing.assert_array_equal(tiled[: len(clip)], scaled)
    np.testing.assert_array_equal(tiled[len(clip) : 2 * len(clip)], scaled)
    np.testing.assert_array_equal(padded[: len(clip)], scaled)
    assert not padded[len(clip) :].any()
    np.testing.assert_array_equal(plain, scaled)
    # a layer name or a sample count as the minimum; long clips are never cut
    assert load_audio(clip_path, short="tile", min_length="conv5").shape[-1] == len(clip)
    assert load_audio(clip_path, short="pad", min_length=100_000).shape[-1] == 100_000
    assert len(fit_length(np.ones(500_000, np.float32), min_samples=n, policy="tile")) == 500_000
    with pytest.raises(ParameterError, match="'short'"):
        load_audio(clip_path, short="loop")
    with pytest.raises(ParameterError, match="'min_length'"):
        load_audio(clip_path, short="pad", min_length=-5)


def test_to_model_input_shape_and_scale():
    x = to_model_input(np.array([0.5, -1.0], dtype=np.float32))
    assert x.shape == (1, 1, 2) and x.dtype == torch.float32
    assert x.flatten().tolist() == [128.0, -256.0]


# -- bad files ----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    assert _error(tmp_path / "nope.wav").reason == "missing"
    assert _error(tmp_path / "nope.wav" / "below.wav").reason == "missing"  # a parent that is not a folder
    with pytest.raises(AudioError) as info:  # (the message shows the NUL escaped)
        read_audio(str(tmp_path / "nul\x00byte.wav"))
    assert info.value.reason == "missing"


def test_a_folder_is_not_audio(tmp_path):
    assert _error(tmp_path).reason == "not audio"


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my field notes, not a recording\n" * 20)
    assert _error(path).reason == "not audio"
    with pytest.raises(AudioError, match="not audio"):
        audio_info(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.flac"
    path.touch()
    assert _error(path).reason == "empty"


def test_wav_with_zero_frames(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    assert path.stat().st_size > 0
    assert _error(path).reason == "empty"


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples(tmp_path, clip, bad):
    y = clip.copy()
    y[1234] = bad
    path = tmp_path / "nan.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    err = _error(path)
    assert err.reason == "non-finite samples" and "1 NaN or infinite" in err.detail
    with pytest.raises(AudioError, match="non-finite"):
        list(iter_audio_blocks(path))


def test_truncated_wav_is_corrupt(tmp_path, clip):
    """libsndfile quietly shortens a truncated WAV; the data chunk size in its header tells."""
    whole = tmp_path / "whole.wav"
    sf.write(whole, clip, SR, subtype="PCM_16")
    cut = _truncate(whole, tmp_path / "cut.wav", 0.6)
    err = _error(cut)
    assert err.reason == "corrupt" and "truncated" in err.detail and "WAV header declares" in err.detail
    with pytest.raises(AudioError, match="corrupt"):
        list(iter_audio_blocks(cut))
    with pytest.raises(AudioError, match="corrupt"):
        audio_info(cut)
    # only the header left
    assert _error(_truncate(whole, tmp_path / "header.wav", 0.0005)).reason == "corrupt"


def test_truncated_flac_is_corrupt(tmp_path, clip_path):
    cut = _truncate(clip_path, tmp_path / "cut.flac", 0.5)
    err = _error(cut)
    assert err.reason == "corrupt"
    with pytest.raises(AudioError, match="corrupt"):
        list(iter_audio_blocks(cut, block_s=0.5))


def test_flac_with_damaged_frames_is_corrupt(tmp_path, clip_path):
    data = bytearray(clip_path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4000] = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    path = tmp_path / "damaged.flac"
    path.write_bytes(bytes(data))
    assert _error(path).reason == "corrupt"


def test_truncated_mp3_is_corrupt(tmp_path, clip):
    whole = tmp_path / "whole.mp3"
    sf.write(whole, clip, SR, format="MP3")
    err = _error(_truncate(whole, tmp_path / "cut.mp3", 0.5))
    assert err.reason == "corrupt" and "truncated" in err.detail


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.8, 0.97])
def test_truncated_ogg_is_corrupt(tmp_path, clip, fraction):
    """libsndfile takes an Ogg's length from its last page: a cut file reads short but "fine"."""
    whole = tmp_path / "whole.ogg"
    sf.write(whole, np.tile(clip, 3), SR, format="OGG", subtype="VORBIS")
    read_audio(whole)  # the intact file is fine
    assert _error(_truncate(whole, tmp_path / "cut.ogg", fraction)).reason == "corrupt"


def test_audio_error_survives_pickling(tmp_path):
    err = _error(tmp_path / "gone.flac")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, SoundNetError)
    assert (back.path, back.reason, back.detail, str(back)) == (err.path, err.reason, err.detail, str(err))
