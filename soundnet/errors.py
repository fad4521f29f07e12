"""The toolkit's exception tree.

``SoundNetError`` is the root; catch it to catch anything the toolkit raises on purpose.
"""

from __future__ import annotations

import os

__all__ = ["SoundNetError", "ParameterError", "WeightsError", "AudioError", "InputTooShortError"]


class SoundNetError(Exception):
    """Root of every error the toolkit raises on purpose."""


class ParameterError(SoundNetError, ValueError):
    """A function was called with an invalid parameter value."""


class WeightsError(SoundNetError):
    """The pretrained weights cannot be found, downloaded, verified or read."""


class InputTooShortError(ParameterError):
    """An input is too short for the requested layer to produce a single frame."""


class AudioError(SoundNetError):
    """An audio file cannot be used; carries the file and the reason.

    Attributes
    ----------
    path : str
        The file.
    reason : str
        Short machine-friendly reason: ``missing``, ``not audio``, ``corrupt``, ``empty``,
        ``non-finite samples``, ``no channels``, ``silent``, ``too short``, ``bad range``.
    detail : str
        Human explanation.
    sample_rate_hz : int or None
        The file's sampling rate when its header could be read before the failure, else None.
    """

    def __init__(
        self, path: str | os.PathLike, reason: str, detail: str = "", sample_rate_hz: int | None = None
    ) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        self.detail = detail
        self.sample_rate_hz = sample_rate_hz
        msg = f"{self.path!r}: {reason}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)

    def __reduce__(self):  # picklable across worker processes
        return (type(self), (self.path, self.reason, self.detail, self.sample_rate_hz))
