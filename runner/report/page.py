"""The report as one self-contained HTML file: the template, its style, plotly's JavaScript
(embedded, so the file needs no network), the data as JSON and the page's own script."""

from __future__ import annotations

import html
import json
import os
import re
from typing import Any, Dict

from runner.errors import MissingDependencyError

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE, STYLE, SCRIPT = "page.html", "page.css", "page.js"


def load_plotly_js() -> str:
    """plotly.js as plotly.py ships it (`pip install '.[report]'`)."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise MissingDependencyError("plotly", "report", "Writing a report") from None
    return get_plotlyjs()


def _read(name: str) -> str:
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


def encode_data(data: Dict[str, Any]) -> str:
    """JSON that is safe inside a <script> element: no `<` (so no `</script>`), no NaN."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029"))


def _script_text(code: str) -> str:
    return re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE)


def make_html(data: Dict[str, Any]) -> str:
    """The whole page; the template's `<!--NAME-->` markers are filled in one pass."""
    parts = {
        "TITLE": html.escape(f"run report: {data['title']}"),
        "STYLE": _read(STYLE),
        "PLOTLY": _script_text(load_plotly_js()),
        "DATA": encode_data(data),
        "SCRIPT": _script_text(_read(SCRIPT)),
    }
    return re.sub(r"<!--([A-Z]+)-->", lambda m: parts[m.group(1)], _read(TEMPLATE))
