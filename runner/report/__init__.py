"""`run report`: one self-contained HTML file that shows a sweep or a launch directory.

`collect_report` (data.py) gathers what the page shows from the project's readers;
`make_html` (page.py) puts plotly's JavaScript, that data as JSON and the page's own script
(page.js) into one file that needs no server and no network. Needs plotly:
`pip install '.[report]'`.
"""

from __future__ import annotations

import os
from typing import List, Optional

from runner.report.data import collect_report
from runner.report.page import load_plotly_js, make_html
from runner.store.files import write_atomic

REPORT_FILE = "report.html"

__all__ = ["REPORT_FILE", "collect_report", "make_html", "write_report"]


def write_report(output: str, html: Optional[str] = None, metric: Optional[str] = None,
                 warnings: Optional[List[str]] = None) -> str:
    """Write the report of `output` to `html` (default `<output>/report.html`); its path.
    What could not be read of single tasks is appended to `warnings`."""
    load_plotly_js()  # a missing plotly is said before any work
    path = html or os.path.join(output, REPORT_FILE)
    page = make_html(collect_report(output, metric, warnings=warnings)).encode("utf-8")
    write_atomic(path, page)
    return path
