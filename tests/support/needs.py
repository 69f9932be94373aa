"""What a test needs from the machine: skip without it, but fail under ``CI=true``.

CI (``.ci/run``) installs every test extra and system package, so there a
missing one is a broken setup, never a reason to skip.
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest

TEST_EXTRA = "pip install -e '.[test]'"
SYSTEM_DEPS = "bash .ci/system-deps installs it"


def unavailable(reason: str) -> NoReturn:
    """Skip the test for ``reason``; fail instead under ``CI=true``."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true needs it.")
    pytest.skip(reason)


def needs_module(name: str, how: str = TEST_EXTRA) -> ModuleType:
    """The module ``name``, imported (see :func:`unavailable`)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        unavailable(f"{name.partition('.')[0]} is not installed ({how})")


def needs_program(name: str, how: str = SYSTEM_DEPS) -> str:
    """The path of the program ``name`` (see :func:`unavailable`)."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed ({how})")
    return path
