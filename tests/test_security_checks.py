"""System checks: aiodjango.W010 (a Django-decorated coroutine view lifted) and W011 (ALLOWED_HOSTS)."""

import django
import pytest
from django.core.checks import Warning, run_checks

from aiodjango.checks import check_allowed_hosts, check_django_decorated_coroutines
from tests import citizens_urls


def ids(messages):
    return [message.id for message in messages]


@pytest.mark.skipif(
    django.VERSION < (5, 0), reason="Django's decorators keep views coroutines since 5.0"
)
def test_django_decorated_coroutine_view_is_reported(settings):
    settings.ROOT_URLCONF = citizens_urls.Misdecorated
    (warning,) = check_django_decorated_coroutines()
    assert isinstance(warning, Warning)
    assert warning.id == "aiodjango.W010"
    assert "tests.citizens_views.mistaken (URL pattern 'mistake/')" in warning.msg
    assert "django.contrib.auth.decorators" in warning.msg
    assert "@aiodjango.keep_in_django" in warning.hint
    assert "aiodjango.auth.login_required" in warning.hint
    assert "aiodjango.W010" in ids(run_checks())  # registered with Django


def test_project_urlconfs_pass(settings):
    for urlconf in ("tests.urls", "tests.citizens_urls", citizens_urls.KeptInDjango):
        settings.ROOT_URLCONF = urlconf
        assert check_django_decorated_coroutines() == []


def test_broken_urlconf_is_left_to_django(settings):
    settings.ROOT_URLCONF = "tests.no_such_urlconf"
    assert check_django_decorated_coroutines() == []


def test_empty_allowed_hosts_without_debug(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = []
    (warning,) = check_allowed_hosts()
    assert warning.id == "aiodjango.W011"
    assert "ALLOWED_HOSTS" in warning.hint
    assert "aiodjango.W011" in ids(run_checks())
    settings.DEBUG = True
    assert check_allowed_hosts() == []
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["example.com"]
    assert check_allowed_hosts() == []


