"""Self-contained HTML reports (jinja2 + matplotlib, images inline as base64 PNG); the run
folder's report is :func:`write_run_report`."""

from .html import Figure, metrics_table, render_report
from .run_report import write_run_report

__all__ = ["Figure", "metrics_table", "render_report", "write_run_report"]
