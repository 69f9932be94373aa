"""The compatibility suite: real packages of the Django ecosystem behind a real aiodjango server.

The admin (in headless Chromium), Django REST framework, whitenoise,
django-debug-toolbar and django-cors-headers, each next to lifted views, in a
project of their own (``tests.compat.settings``: an in-memory SQLite test
database, as most projects have).  Django's settings are one per process, so
the outer test run runs this package in a pytest subprocess
(``test_compat_suite.py``); to run it directly::

    .venv/bin/python -m pytest tests/compat --ds=tests.compat.settings
"""
