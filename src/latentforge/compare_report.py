"""Deprecated: ``latentforge.compare_report`` moved to ``latentforge.report.run_report``; this path is kept for one release."""

from latentforge._deprecation import warn_moved

from latentforge.report.run_report import write_run_report  # noqa: E402

warn_moved(__name__, "latentforge.report.run_report")

__all__ = ['write_run_report']
