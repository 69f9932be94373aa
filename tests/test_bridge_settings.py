"""The bridge's ``AIODJANGO_*`` settings: defaults, overrides and system checks."""

from __future__ import annotations

import pytest
from django.test import override_settings

from aiodjango.wsgi import bridge
from aiodjango.checks import check_bridge_settings
from aiodjango.conf import conf


def test_defaults():
    assert conf.AIODJANGO_MAX_REQUEST_BODY_SIZE == bridge.DEFAULT_MAX_REQUEST_BODY_SIZE == 100 * 2**20
    assert conf.AIODJANGO_SPOOL_THRESHOLD == bridge.DEFAULT_SPOOL_THRESHOLD == 2**20
    assert conf.AIODJANGO_SHUTDOWN_TIMEOUT == bridge.DEFAULT_SHUTDOWN_TIMEOUT == 10.0
    assert check_bridge_settings() == []


@override_settings(AIODJANGO_MAX_REQUEST_BODY_SIZE=None, AIODJANGO_SPOOL_THRESHOLD=0,
                   AIODJANGO_SHUTDOWN_TIMEOUT=2.5, AIODJANGO_THREADS=3)
def test_overrides():
    assert conf.AIODJANGO_MAX_REQUEST_BODY_SIZE is None
    assert conf.AIODJANGO_SPOOL_THRESHOLD == 0
    assert conf.AIODJANGO_SHUTDOWN_TIMEOUT == 2.5
    assert check_bridge_settings() == []


@pytest.mark.parametrize(
    "name, value, error_id",
    [
        ("AIODJANGO_THREADS", 0, "aiodjango.E020"),
        ("AIODJANGO_THREADS", "8", "aiodjango.E020"),
        ("AIODJANGO_MAX_REQUEST_BODY_SIZE", -1, "aiodjango.E021"),
        ("AIODJANGO_MAX_REQUEST_BODY_SIZE", "10MB", "aiodjango.E021"),
        ("AIODJANGO_SPOOL_THRESHOLD", None, "aiodjango.E022"),
        ("AIODJANGO_SPOOL_THRESHOLD", 1.5, "aiodjango.E022"),
        ("AIODJANGO_SHUTDOWN_TIMEOUT", -1, "aiodjango.E023"),
        ("AIODJANGO_SHUTDOWN_TIMEOUT", True, "aiodjango.E023"),
        ("AIODJANGO_REQUEST_BODY_TIMEOUT", 0, "aiodjango.E026"),
        ("AIODJANGO_REQUEST_BODY_TIMEOUT", "300", "aiodjango.E026"),
    ],
)
def test_bad_values_are_reported(name, value, error_id):
    with override_settings(**{name: value}):
        (error,) = check_bridge_settings()
    assert error.id == error_id
    assert name in error.msg and repr(value) in error.msg
    assert name in error.hint
