"""Option strings: their ``Literal`` types and the one validator every function uses.

Each option that takes one of a few strings has a ``Literal`` alias here (so type checkers and the
API reference show the allowed values) and is checked at the top of the function that receives
it with :func:`check_option`, which raises the house's message::

    The 'short' parameter of load_audio must be one of ('none', 'pad', 'tile'). Got 'loop' instead.

Examples
--------
>>> from soundnet.options import Short, check_option
>>> def f(short: Short = "none") -> None:
...     check_option("short", short, Short, where="f")
>>> f("loop")
Traceback (most recent call last):
...
soundnet.errors.ParameterError: The 'short' parameter of f must be one of ('none', 'pad', 'tile'). Got 'loop' instead.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal, TypeVar, get_args

from soundnet.errors import ParameterError

__all__ = [
    "Short",
    "HeadsShort",
    "Edge",
    "Decoder",
    "Engine",
    "Stat",
    "HeadStat",
    "Head",
    "ClipStat",
    "HeadOutput",
    "FastMethod",
    "Alternative",
    "Metric",
    "MetricAlias",
    "Readout",
    "Family",
    "ProbeKind",
    "choices",
    "check_option",
]

# how a clip shorter than a layer needs is handled (soundnet.audio, interp.recording)
Short = Literal["none", "pad", "tile"]
# the same for the object and place heads, which need 9.5 s for one frame
HeadsShort = Literal["tile", "pad", "none"]
# whether conv7's padded last frame (and the head frames reading it) count in statistics
Edge = Literal["drop", "keep"]
# where clips are decoded while recording
Decoder = Literal["thread", "process"]
# which recording engine
Engine = Literal["local", "ray"]
# per-clip summaries over time stored in a run directory
Stat = Literal["mean", "max", "peak_s", "vmean"]
HeadStat = Literal["mean", "max", "peak_s", "vmean", "prob"]
# the two output heads
Head = Literal["objects", "places"]
# a per-clip summary over time that analyses read (the default and the alternative)
ClipStat = Literal["vmean", "max", "mean"]
# what a head's clip-level output is read as
HeadOutput = Literal["logprob", "prob"]
# how FastSoundNet computes the convolutions (soundnet.fast)
FastMethod = Literal["auto", "gemm", "conv"]
# the alternative hypothesis of the rank tests (interp.analysis.stats, selectivity)
Alternative = Literal["greater", "less", "two-sided"]
# a selectivity ranking metric (interp.analysis.selectivity.METRICS: the columns it ranks by)
Metric = Literal["auroc", "csi", "dprime", "mi_bits", "iou", "z", "mean_pos", "p", "q", "p_mwu"]
# other spellings the rankings accept for some of them (mi = mi_bits, d' = d_prime = dprime, csi_index = csi)
MetricAlias = Literal["mi", "d'", "d_prime", "csi_index"]
# the features a category readout reads (interp.analysis.ablation.CategoryReadout)
Readout = Literal["conv7", "heads"]
# a perturbation family (interp.analysis.robustness)
Family = Literal["level", "noise", "shift", "resample"]
# a synthetic probe's kind (interp.corpus.stimuli, interp.analysis.tuning)
ProbeKind = Literal["tone", "noise_band", "am_noise", "chirp", "click_train", "harmonic", "silence"]

T = TypeVar("T")


def choices(options: Any) -> tuple[Any, ...]:
    """The allowed values of a ``Literal`` alias (or of any collection), in their declared order."""
    args = get_args(options)
    if args:
        return tuple(args)
    if isinstance(options, Collection) and not isinstance(options, str):
        return tuple(options)
    raise TypeError(f"check_option needs a Literal alias or a collection of values, not {options!r}")


def check_option(name: str, value: T, options: Any, *, where: str) -> T:
    """Return ``value`` when it is one of ``options``, else raise :class:`ParameterError`.

    Parameters
    ----------
    name : str
        The parameter's name, as the caller spells it.
    value : object
        The value given.
    options : Literal alias or collection
        The allowed values (a ``Literal[...]`` alias from this module, or a tuple).
    where : str
        The function or class that received it (for the message).

    Returns
    -------
    The value, unchanged.
    """
    allowed = choices(options)
    if value not in allowed:
        raise ParameterError(f"The {name!r} parameter of {where} must be one of {allowed!r}. Got {value!r} instead.")
    return value
