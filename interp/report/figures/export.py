"""Export of any figure to HTML, PNG, SVG and PDF.

Static formats are rendered by kaleido driving a Chromium-family browser (Debian's
``/usr/bin/chromium``); kaleido is imported only when a static format is asked for.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import plotly.graph_objects as go

from interp.report.figures.style import EXPORT_FORMATS, ExportFormat
from soundnet.errors import ParameterError
from soundnet.options import check_option

__all__ = ["find_browser", "figure_bytes", "export_figure"]

# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------
_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_browser(browser_path: str | os.PathLike | None = None) -> str | None:
    """The Chromium-family executable kaleido should drive.

    Order: ``browser_path``; the ``BROWSER_PATH`` environment variable (kaleido's and
    choreographer's own override); the first of ``chromium``, ``chromium-browser``,
    ``google-chrome``, ``chrome`` on ``PATH``. ``None`` lets kaleido search (and fail with its
    own message).
    """
    if browser_path is not None:
        p = Path(browser_path)
        if not p.is_file():
            raise ParameterError(
                f"The 'browser_path' parameter of find_browser must be an executable file. "
                f"Got {str(browser_path)!r} instead."
            )
        return str(p)
    env = os.environ.get("BROWSER_PATH")
    if env and Path(env).is_file():
        return env
    for name in _BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _render_static(
    fig: go.Figure,
    formats: Sequence[str],
    *,
    width: int | None,
    height: int | None,
    scale: float,
    browser_path: str | None,
    timeout_s: float,
) -> dict[str, bytes]:
    """Render ``fig`` once per static format in a single kaleido browser session."""
    import kaleido

    spec = fig.to_dict()
    w = width or fig.layout.width or 900
    h = height or fig.layout.height or 500
    kopts: dict[str, Any] = {"mathjax": False, "timeout": timeout_s}
    if browser_path:
        kopts["path"] = browser_path

    async def run() -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        async with kaleido.Kaleido(**kopts) as k:
            for fmt in formats:
                out[fmt] = await k.calc_fig(spec, opts={"format": fmt, "width": w, "height": h, "scale": scale})
        return out

    # run in a private thread so that a caller with a running event loop (Jupyter, async servers)
    # is not disturbed
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(run())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    th = threading.Thread(target=target, name="figure-export", daemon=True)
    th.start()
    th.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def _check_formats(formats: ExportFormat | Sequence[ExportFormat], func: str) -> tuple[ExportFormat, ...]:
    """The formats, lower-cased and without repeats; each one checked with :func:`check_option`."""
    if isinstance(formats, str):
        formats = (formats,)
    if not formats:
        raise ParameterError(f"The 'formats' parameter of {func} must name at least one of {EXPORT_FORMATS}.")
    fmts = [cast(ExportFormat, check_option("formats", str(f).lower(), ExportFormat, where=func)) for f in formats]
    return tuple(dict.fromkeys(fmts))


def figure_bytes(
    fig: go.Figure,
    formats: ExportFormat | Sequence[ExportFormat] = EXPORT_FORMATS,
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float = 2.0,
    browser_path: str | os.PathLike | None = None,
    timeout_s: float = 90.0,
) -> dict[str, bytes]:
    """Render a figure in memory, one ``bytes`` per format.

    Parameters
    ----------
    fig : go.Figure
    formats : sequence of {"html", "png", "svg", "pdf"}
    width, height : int (in pixels), optional
        Default: the figure's own size, else 900 x 500.
    scale : float
        Pixel density of PNG output.
    browser_path : str or path, optional
        Chromium-family executable (see :func:`find_browser`).
    timeout_s : float (in seconds)
        Per-image rendering timeout.

    Returns
    -------
    dict of str to bytes
        ``{format: content}``; HTML is self-contained (plotly.js inlined, works offline).
    """
    fmts = _check_formats(formats, "figure_bytes")
    out: dict[str, bytes] = {}
    if "html" in fmts:
        out["html"] = fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False}).encode("utf-8")
    static = [f for f in fmts if f != "html"]
    if static:
        out.update(
            _render_static(
                fig,
                static,
                width=width,
                height=height,
                scale=scale,
                browser_path=find_browser(browser_path),
                timeout_s=timeout_s,
            )
        )
    return {f: out[f] for f in fmts}


def export_figure(
    fig: go.Figure,
    path_stem: str | os.PathLike,
    formats: ExportFormat | Sequence[ExportFormat] = EXPORT_FORMATS,
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float = 2.0,
    browser_path: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Write ``fig`` to ``<path_stem>.<format>`` for each format, atomically.

    Parameters
    ----------
    fig : go.Figure
    path_stem : str or path
        Output path without extension (its folder is created).
    formats : sequence of {"html", "png", "svg", "pdf"}
    width, height : int (in pixels), optional
    scale : float
        Pixel density of PNG output.
    browser_path : str or path, optional
        Chromium-family executable for the static formats (see :func:`find_browser`).

    Returns
    -------
    dict of str to Path
        ``{format: written file}``.
    """
    fmts = _check_formats(formats, "export_figure")
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    blobs = figure_bytes(fig, fmts, width=width, height=height, scale=scale, browser_path=browser_path)
    written: dict[str, Path] = {}
    for fmt, blob in blobs.items():
        target = stem.with_name(f"{stem.name}.{fmt}")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written[fmt] = target
    return written
