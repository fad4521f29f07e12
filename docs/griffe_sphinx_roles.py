"""A griffe extension for the API reference: reStructuredText habits in docstrings made Markdown.

The docstrings are numpy style and refer to other objects with Sphinx roles
(``:func:`record_corpus```, ``:class:`~soundnet.model.SoundNet8```, ``:data:`KINDS```).
mkdocstrings renders Markdown, where a role would show as raw text; this extension rewrites each
role into an *optional* autorefs cross-reference: a link when the target is documented on the
site, plain code when it is not (numpy, scipy, ...), and never a warning. A name without a dot
is resolved in the scope of the object whose docstring holds it, as Sphinx does. ``~`` shows the
last component only. reST simple tables (columns framed by lines of ``=``) become Markdown tables,
and a paragraph's closing ``::`` (a literal block follows) becomes ``:``.

Loaded by mkdocs.yml (``extensions: [docs/griffe_sphinx_roles.py]``); it is not part of the
package.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_BORDER = re.compile(r"^(?P<indent> *)=+(?: +=+)+ *$")
_LITERAL = re.compile(r"(?<=\S)::$", flags=re.MULTILINE)
_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|mod|data|attr|exc|obj|const|term):`(?P<target>[^`]+)`")


def _resolve(obj: griffe.Object | griffe.Alias, target: str) -> str:
    head, _, rest = target.partition(".")
    try:
        full = obj.resolve(head)
    except Exception:  # a name griffe cannot see (numpy, scipy, a typo): keep it as written
        return target
    return f"{full}.{rest}" if rest else full


def _rewrite(obj: griffe.Object | griffe.Alias, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        target = match["target"].strip()
        if "<" in target and target.endswith(">"):  # :func:`title <target>`
            title, target = target[:-1].split("<", 1)
            title, target = title.strip(), target.strip()
        else:
            short = target.startswith("~")
            target = target.lstrip("~")
            title = target.rsplit(".", 1)[-1] if short else target
        if target.endswith("()"):
            target = target[:-2]
        identifier = _resolve(obj, target)
        return f'<autoref identifier="{html.escape(identifier)}" optional><code>{html.escape(title)}</code></autoref>'

    return _ROLE.sub(replace, text)


def _cells(line: str, starts: list[int]) -> list[str]:
    bounds = [*starts[1:], None]
    return [line[a:b].strip() if b is not None else line[a:].strip() for a, b in zip(starts, bounds)]


def _tables(text: str) -> str:
    """reST simple tables -> Markdown tables (a table without a header gets an empty one)."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _BORDER.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        border = lines[i]
        starts = [k for k, c in enumerate(border) if c == "=" and (k == 0 or border[k - 1] == " ")]
        j, borders = i + 1, [i]
        while j < len(lines) and len(borders) < 3:
            if _BORDER.match(lines[j]):
                borders.append(j)
                if j + 1 >= len(lines) or not lines[j + 1].strip():
                    break
            j += 1
        if len(borders) < 2:
            out.append(lines[i])
            i += 1
            continue
        end = borders[-1]
        header: list[str] | None = None
        body = lines[borders[0] + 1 : end]
        if len(borders) == 3:
            header = _cells(" ".join(lines[borders[0] + 1 : borders[1]]), starts)
            body = lines[borders[1] + 1 : end]
        rows: list[list[str]] = []
        for line in body:
            if not line.strip():
                continue
            cells = _cells(line.ljust(len(border)), starts)
            if rows and not cells[0]:  # a continuation line of the row above
                rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
            else:
                rows.append(cells)

        def row(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        out += ["", row(header or [""] * len(starts)), "|" + "---|" * len(starts)]
        out += [row(r) for r in rows]
        out.append("")
        i = end + 1
    return "\n".join(out)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles and reST simple tables in every docstring of a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            value = obj.docstring.value
            if "==" in value:
                value = _tables(value)
            if ":`" in value:
                value = _rewrite(obj, value)
            value = _LITERAL.sub(":", value)
            obj.docstring.value = value
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)  # type: ignore[arg-type]
