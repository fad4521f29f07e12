"""``python -m soundnet.predict PATH [PATH ...]``: object and place predictions for audio files.

Folders are searched for audio files. Clips shorter than 9.5 s are tiled, as the original did.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from soundnet.audio import load_audio
from soundnet.errors import SoundNetError
from soundnet.labels import decode
from soundnet.model import load_soundnet

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".au", ".aiff", ".aif", ".m4a", ".opus")


def predict_file(model, path: str | Path, *, k: int = 3) -> tuple[list, list]:
    """Top-``k`` clip-level objects and places of one file, as ``[(label, probability), ...]``."""
    x = load_audio(path, short="tile")
    with torch.inference_mode():
        objects, places = model(x)
    n = x.shape[-1]
    return (decode(objects, head="objects", k=k, n_samples=n)[0], decode(places, head="places", k=k, n_samples=n)[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m soundnet.predict", description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", help="audio files or folders")
    ap.add_argument("-k", type=int, default=3, help="labels to show per head")
    args = ap.parse_args(argv)
    files: list[Path] = []
    for p in map(Path, args.paths):
        files += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES) if p.is_dir() else [p]
    model = load_soundnet()
    status = 0
    for f in files:
        try:
            objs, places = predict_file(model, f, k=args.k)
        except SoundNetError as exc:
            print(f"{f.name}: error: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{f.name}")
        print("  objects: " + ", ".join(f"{n} ({p:.1%})" for n, p in objs))
        print("  places:  " + ", ".join(f"{n} ({p:.1%})" for n, p in places))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
