"""HTML fragments shared by the notebook displays of result types and by the report.

Only escaping, number formatting, a plain table and the stylesheet of table/badge parts live
here, so that a result type (:class:`~neuronscope.methods.ranking.Ranking`) can render itself in
Jupyter without importing the report package (which depends on the result types).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["PARTS_CSS", "esc", "fmt", "scoped_css", "table"]


def esc(value: Any) -> str:
    """Text escaped for HTML content and double-quoted attribute values."""
    return html.escape(str(value), quote=True)


def fmt(value: float, digits: int = 3) -> str:
    """A compact number: ``0.123``, ``-12.3``, ``1.2e-05``."""
    return f"{value:.{digits}g}"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    cls: str = "",
    raw_headers: bool = False,
) -> str:
    """An HTML table; cells are already-rendered HTML, headers are escaped unless raw."""
    head = "".join(f"<th>{h if raw_headers else esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# Rules shared by full pages and notebook previews (heatmaps, tables, cards).
PARTS_CSS = """
table { border-collapse:collapse; margin:6px 0 12px; }
th, td { border:1px solid #d9dde5; padding:3px 7px; text-align:left; vertical-align:top; }
th { background:#f4f6f9; font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
.muted, .note { color:#5b6475; }
.note { font-size:13px; margin:4px 0 10px; }
.grid { display:flex; flex-wrap:wrap; gap:18px; align-items:flex-start; }
.box { border:1px solid #d9dde5; border-radius:6px; padding:8px 12px; background:#fff; }
.plot { max-width:100%; height:auto; display:block; }
.hm { line-height:2.0; }
.hm span.w { padding:2px 3px; margin:0 1px; border-radius:3px; white-space:pre; }
.hm span.c { outline:2px solid #222; }
.hm span.u { text-decoration:underline; text-decoration-thickness:2px; }
.legend { display:inline-flex; align-items:center; gap:6px; font-size:12px; color:#5b6475; }
.legend .bar { width:160px; height:10px; border:1px solid #d9dde5;
  background:linear-gradient(to right, rgb(33,102,172), #fff, rgb(178,24,43)); }
ol.snips { padding-left:22px; }
ol.snips li { margin:2px 0; }
.val { color:#5b6475; font-size:12px; font-variant-numeric:tabular-nums; margin-left:6px; }
.badge { display:inline-block; padding:0 6px; border-radius:8px; background:#f4f6f9;
  border:1px solid #d9dde5; font-size:12px; margin:1px 2px; }
"""

def scoped_css(prefix: str) -> str:
    """``PARTS_CSS`` with every selector prefixed, for fragments shown inside other pages
    (a notebook): the rules then cannot restyle the rest of the notebook."""
    out = []
    for selectors, rule in re.findall(r"([^{}]+)\{([^}]*)\}", PARTS_CSS):
        scoped = ", ".join(f"{prefix} {sel.strip()}" for sel in selectors.split(","))
        out.append(f"{scoped} {{{rule.strip()}}}")
    return "\n".join(out)
