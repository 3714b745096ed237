"""Reports of a recorded run: HTML (one offline file), JUnit XML, Markdown, JSON, and the
comparison of two runs. ``write_reports(store, run_id)`` writes them all."""

from harness.report.write import FILE_NAMES, FORMATS, find_database, parse_formats, write_reports

__all__ = ["FILE_NAMES", "FORMATS", "find_database", "parse_formats", "write_reports"]
