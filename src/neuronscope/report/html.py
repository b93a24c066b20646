"""Small HTML helpers shared by every report page: escaping, file names, the page shell.

Pages are self-contained: one inline stylesheet, no fonts, scripts or images from elsewhere,
so a report opens from disk (``file://``) on a machine without network.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from neuronscope.display import PARTS_CSS, esc, fmt, scoped_css, table

__all__ = [
    "CSS",
    "PARTS_CSS",
    "esc",
    "fmt",
    "link",
    "page",
    "scoped_css",
    "script_json",
    "slug",
    "table",
]

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
# Names Windows refuses for files whatever the extension; UPOS has AUX.
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
             *(f"LPT{i}" for i in range(10))}


def slug(name: str) -> str:
    """A file-name-safe version of ``name``, unique per name.

    Labels such as ``,`` or ``-LRB-`` (XPOS) or ``a/b`` would make bad or colliding file
    names, so unsafe characters are replaced and a short hash of the original keeps names
    apart that differ only in those characters; Windows' reserved names (``AUX``) get a
    trailing underscore.
    """
    safe = _SAFE.sub("_", name).strip(".") or "_"
    if safe != name:
        safe = f"{safe[:60]}-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}"
    if safe.split(".")[0].upper() in _RESERVED:
        safe += "_"  # a report unzipped on Windows must still open
    return safe


def script_json(data: Any) -> str:
    """JSON safe to place inside a ``<script>`` element (no ``</script>`` or ``<!--``)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def link(href: str, text: str, cls: str = "") -> str:
    """``<a>`` with escaped text and target."""
    attr = f' class="{esc(cls)}"' if cls else ""
    return f'<a href="{esc(href)}"{attr}>{esc(text)}</a>'


CSS = PARTS_CSS + """
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color:#1d2330; background:#fff; }
header.top { background:#1f2b44; color:#fff; padding:10px 24px; display:flex; gap:18px;
             align-items:baseline; flex-wrap:wrap; }
header.top a { color:#cfe0ff; }
header.top .title { font-weight:600; font-size:16px; }
main { padding:16px 24px 48px; max-width:1400px; }
h1 { font-size:22px; margin:8px 0 4px; }
h2 { font-size:18px; margin:28px 0 8px; border-bottom:1px solid #d9dde5; padding-bottom:4px; }
h3 { font-size:15px; margin:18px 0 6px; }
a { color:#2857a4; text-decoration:none; }
a:hover { text-decoration:underline; }
figure { margin:8px 0 16px; }
figcaption { color:#5b6475; font-size:13px; }
#search { width:min(520px, 100%); padding:7px 10px; font-size:15px; border:1px solid #9aa4b5;
  border-radius:5px; }
#search-results { list-style:none; padding:0; margin:6px 0 0; max-height:340px; overflow:auto; }
#search-results li { padding:2px 0; }
#search-results .kind { display:inline-block; min-width:64px; color:#5b6475; font-size:12px; }
details > summary { cursor:pointer; color:#2857a4; margin:6px 0; }
.warn { background:#fff4d6; border:1px solid #f0cf7a; padding:6px 10px; border-radius:5px; }
"""


def page(title: str, body: str, root: str = "", subtitle: str = "", script: str = "") -> str:
    """A complete HTML document with the shared header and stylesheet.

    Args:
        title: page title (escaped).
        body: the page's HTML.
        root: relative path from this page to the report root (``""`` or ``"../"``).
        subtitle: short text shown next to the title in the header (escaped).
        script: inline JavaScript appended at the end of the body (trusted, ours).
    """
    nav = (
        f'<span class="title">neuronscope report</span>'
        f'<a href="{esc(root)}index.html">index</a>'
        f"<span>{esc(subtitle)}</span>"
    )
    js = f"<script>{script}</script>" if script else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f'<body><header class="top">{nav}</header><main>{body}</main>{js}</body></html>\n'
    )
