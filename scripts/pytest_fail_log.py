"""pytest plugin: write each failure's test id and last error line as it happens.

A device call that reaches its time limit loses pytest's end-of-run summary; this file
(`$OUT/fails.txt`, or `$FAIL_LOG`) keeps what had failed by then. Use with
`PYTHONPATH=scripts pytest -p pytest_fail_log ...`.
"""

import os

_PATH = os.environ.get("FAIL_LOG") or os.path.join(os.environ.get("OUT", "/tmp"), "fails.txt")


def pytest_runtest_logreport(report):
    if not report.failed:
        return
    text = report.longreprtext or ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("E ")]
    reason = lines[-1] if lines else (text.strip().splitlines() or [""])[-1]
    with open(_PATH, "a", encoding="utf-8") as f:
        f.write(f"{report.nodeid} [{report.when}] {reason[:300]}\n")
