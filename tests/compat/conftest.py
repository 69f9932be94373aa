"""Which half of the suite runs here: the compatibility tests, or the runner that starts them.

Under ``tests.compat.settings`` the compatibility tests are collected; under
any other settings (the outer run) only ``test_compat_suite.py``, which runs
this package in a pytest subprocess with ``--ds=tests.compat.settings``.
"""

from pathlib import Path

from django.conf import settings

RUNNER = "test_compat_suite.py"
IN_COMPAT = settings.SETTINGS_MODULE == "tests.compat.settings"


def pytest_ignore_collect(collection_path: Path, config):
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    if collection_path.name == RUNNER:
        return True if IN_COMPAT else None
    return None if IN_COMPAT else True
