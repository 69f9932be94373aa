"""Runs the compatibility suite (this package) in a pytest subprocess with its own settings.

Django's settings are one per process: the admin, DRF, the debug toolbar and
django-cors-headers are installed in ``tests.compat.settings``, not in the
main suite's.  The subprocess gets this process's warning filters (``-W``),
so tox's ``-W error::...`` hold there too.  Under ``CI=true`` nothing may be
skipped.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 900

pytestmark = pytest.mark.slow


def test_compatibility_suite_passes():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable]
    for option in sys.warnoptions:
        command += ["-W", option]
    command += [
        "-m", "pytest", "tests/compat", "--ds=tests.compat.settings",
        "-q", "-rfEs", "-p", "no:cacheprovider", "--junitxml", os.devnull,
    ]
    try:
        result = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode("utf-8", "replace") if isinstance(e.stdout, bytes) else e.stdout or ""
        pytest.fail(f"The compatibility suite did not finish within {TIMEOUT} s:\n{output[-20000:]}")
    output = result.stdout + result.stderr
    print(output)  # shown with -s, or on failure
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    assert result.returncode == 0, f"The compatibility suite failed ({summary}):\n{output[-20000:]}"
    assert re.search(r"\b\d+ passed\b", summary), summary
    if os.environ.get("CI") == "true":
        assert "skipped" not in summary, f"CI=true runs every compatibility test: {summary}"
