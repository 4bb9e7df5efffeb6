"""Document model of a report and its two renderings: self-contained HTML and Markdown.

A report is a list of blocks (:class:`Heading`, :class:`Para`, :class:`Table`, :class:`Figure`,
:class:`Details`, :class:`Note`). Tables are pandas DataFrames whose cells are already formatted
strings (see :func:`fmt`); figures are PNG images embedded as base64 ``data:`` URIs, so the HTML
file opens offline with nothing beside it. Markdown (for pull requests and CI logs) renders the
headings, notes and summary tables and leaves out figures and blocks marked ``md=False``.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd


# ------------------------------------------------------------------------------ blocks
@dataclass
class Heading:
    level: int
    text: str
    anchor: str = ""
    md: bool = True


@dataclass
class Para:
    text: str
    md: bool = True


@dataclass
class Note:
    """A highlighted remark: ``kind`` is "warn", "error" or "info"."""

    text: str
    kind: str = "warn"
    md: bool = True


@dataclass
class Table:
    df: pd.DataFrame
    caption: str = ""
    md: bool = True
    cell_class: Callable[[str, str], str] | None = None  # (column, cell text) -> CSS class
    max_md_rows: int = 60


@dataclass
class Figure:
    png_b64: str
    caption: str = ""
    alt: str = ""
    width: int = 0


@dataclass
class Details:
    summary: str
    blocks: list = field(default_factory=list)
    md: bool = False


# ------------------------------------------------------------------------------ formatting
def fmt(x, digits: int = 4, pct: bool = False, suffix: str = "") -> str:
    """A number as text with ``digits`` significant digits ('' for NaN/None)."""
    if x is None:
        return ""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return ""
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if pct:
        v *= 100
    s = f"{v:.{digits}g}"
    if "e" in s and 1 <= abs(v) < 1e12:
        s = f"{v:.0f}"
    return s + suffix


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ------------------------------------------------------------------------------ HTML
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em auto;max-width:1400px;
     padding:0 1em;color:#1d2125;line-height:1.4}
h1{font-size:1.6em;border-bottom:2px solid #345;padding-bottom:.2em}
h2{font-size:1.3em;margin-top:1.8em;border-bottom:1px solid #ccd}
h3{font-size:1.08em;margin-top:1.3em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.86em}
caption{caption-side:top;text-align:left;font-weight:600;padding:.2em 0;color:#334}
th,td{border:1px solid #d4d8dd;padding:.22em .5em;vertical-align:top}
th{background:#eef1f5;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr:nth-child(even) td{background:#fafbfc}
td.good{background:#dff3e2!important;color:#145a22}
td.bad{background:#fbe0e0!important;color:#8a1c1c;font-weight:600}
td.muted{color:#889}
figure{margin:.6em 0 1.4em}
figure img{max-width:100%;height:auto;border:1px solid #e2e5e9}
figcaption{font-size:.85em;color:#556}
.note{padding:.45em .8em;border-left:4px solid;margin:.5em 0}
.note.warn{background:#fff6e0;border-color:#e0a800}
.note.error{background:#fde8e8;border-color:#c62828}
.note.info{background:#e8f1fd;border-color:#2f6fca}
details{margin:.4em 0 1em}
summary{cursor:pointer;color:#234}
nav.toc{font-size:.9em;background:#f5f7f9;padding:.5em 1em;border:1px solid #e0e4e8}
nav.toc a{text-decoration:none}
code{background:#f1f3f5;padding:0 .2em}
"""

_NUMERIC = re.compile(r"^[-+]?(\d[\d,]*\.?\d*|\.\d+)([eE][-+]?\d+)?\s*(%|x|×|s|ms)?$|^(inf|-inf)$")


def _inline(text: str) -> str:
    """Escape, then turn `code` spans into <code>."""
    out = html.escape(str(text))
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def html_table(t: Table) -> str:
    df = t.df
    parts = ["<table>"]
    if t.caption:
        parts.append(f"<caption>{_inline(t.caption)}</caption>")
    parts.append(
        "<thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns) + "</tr></thead>"
    )
    parts.append("<tbody>")
    for row in df.itertuples(index=False):
        cells = []
        for col, v in zip(df.columns, row):
            s = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
            cls = []
            if s and _NUMERIC.match(s):
                cls.append("num")
            if t.cell_class is not None:
                extra = t.cell_class(str(col), s)
                if extra:
                    cls.append(extra)
            attr = f' class="{" ".join(cls)}"' if cls else ""
            cells.append(f"<td{attr}>{html.escape(s)}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


def render_html(blocks: list, title: str) -> str:
    heads = [b for b in blocks if isinstance(b, Heading) and b.level == 2]
    body = [_html_block(b) for b in blocks]
    toc = ""
    if len(heads) > 2:
        toc = (
            '<nav class="toc"><b>Contents</b>: '
            + " · ".join(f'<a href="#{h.anchor or slug(h.text)}">{html.escape(h.text)}</a>' for h in heads)
            + "</nav>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{toc}\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _html_block(b) -> str:
    if isinstance(b, Heading):
        return f'<h{b.level} id="{b.anchor or slug(b.text)}">{_inline(b.text)}</h{b.level}>'
    if isinstance(b, Para):
        return f"<p>{_inline(b.text)}</p>"
    if isinstance(b, Note):
        return f'<div class="note {b.kind}">{_inline(b.text)}</div>'
    if isinstance(b, Table):
        return html_table(b)
    if isinstance(b, Figure):
        w = f' width="{b.width}"' if b.width else ""
        cap = f"<figcaption>{_inline(b.caption)}</figcaption>" if b.caption else ""
        return (
            f'<figure class="dlbench-figure"><img class="dlbench-fig" alt="{html.escape(b.alt or b.caption)}"'
            f'{w} src="data:image/png;base64,{b.png_b64}">{cap}</figure>'
        )
    if isinstance(b, Details):
        inner = "\n".join(_html_block(x) for x in b.blocks)
        return f"<details><summary>{_inline(b.summary)}</summary>\n{inner}\n</details>"
    raise TypeError(f"unknown block {type(b).__name__}")


# ------------------------------------------------------------------------------ Markdown
def md_table(t: Table) -> str:
    df = t.df
    if df.empty:
        return ""

    def cell(v) -> str:
        s = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
        return s.replace("|", "\\|").replace("\n", " ")

    lines = []
    if t.caption:
        lines.append(f"**{t.caption}**\n")
    cols = [cell(c) for c in df.columns]
    lines.append("| " + " | ".join(cols) + " |")
    aligns = []
    for c in df.columns:
        vals = [str(v) for v in df[c].tolist() if str(v)]
        aligns.append("---:" if vals and all(_NUMERIC.match(v) for v in vals) else "---")
    lines.append("| " + " | ".join(aligns) + " |")
    for row in df.head(t.max_md_rows).itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    if len(df) > t.max_md_rows:
        lines.append(f"\n_{len(df) - t.max_md_rows} more rows in the HTML report_")
    return "\n".join(lines)


def render_md(blocks: list, title: str) -> str:
    out = [f"# {title}", ""]
    for b in blocks:
        s = _md_block(b)
        if s:
            out += [s, ""]
    return "\n".join(out).rstrip() + "\n"


def _md_block(b) -> str:
    if getattr(b, "md", True) is False:
        return ""
    if isinstance(b, Heading):
        return "#" * b.level + " " + b.text
    if isinstance(b, Para):
        return b.text
    if isinstance(b, Note):
        tag = {"warn": "Warning", "error": "Error", "info": "Note"}.get(b.kind, "Note")
        return f"> **{tag}:** {b.text}"
    if isinstance(b, Table):
        return md_table(b)
    if isinstance(b, Figure):
        return ""
    if isinstance(b, Details):
        return "\n\n".join(s for s in (_md_block(x) for x in b.blocks) if s)
    return ""
