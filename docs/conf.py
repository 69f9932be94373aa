"""Sphinx configuration of aiodjango's documentation.

Build (as tests/test_docs_build.py does, warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import importlib.util
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

# autodoc imports aiodjango's modules, which import Django's: give them a
# minimal configured project (nothing connects to a database).
import django  # noqa: E402
from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        SECRET_KEY="docs",
        INSTALLED_APPS=[
            "aiodjango",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.staticfiles",
        ],
        DATABASES={},
        USE_TZ=True,
    )
    django.setup()

import aiodjango  # noqa: E402

project = "aiodjango"
author = "aiodjango contributors"
copyright = "aiodjango contributors"
release = aiodjango.__version__
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc"]
root_doc = master_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []

autodoc_member_order = "bysource"
# Signatures without types: a type hint naming an undocumented (private)
# class would be a broken reference; the docstrings say what is expected.
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}

# Every cross-reference must resolve (-W makes a broken one fail the build);
# only names of the libraries aiodjango builds on, documented elsewhere, may not.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(aiohttp|asyncio|concurrent|django|asgiref|multidict|yarl|typing|collections|socket|threading|unittest|pytest|_pytest)(\..*)?"),
    (r"py:.*", r"(web|Any|Callable|Coroutine|Optional|Union|Executor|Future|CIMultiDictProxy|URL)(\..*)?"),
    # Private names (in type hints), which the reference leaves out.
    (r"py:.*", r"aiodjango(\.\w+)*\._\w+"),
    # Type variables of the decorators' signatures.
    (r"py:.*", r"(aiodjango\.\w+\.)?[TV]"),
]

# Modules other engineers are adding: in the API reference once they exist.
OPTIONAL_MODULES = [
    name for name in ("aiodjango.policies", "aiodjango.middleware", "aiodjango.broadcast")
    if importlib.util.find_spec(name) is not None
]


def _optional_modules(app, docname, source):
    if docname == "api" and OPTIONAL_MODULES:
        source[0] += "".join(
            f"\n{name}\n{'-' * len(name)}\n\n.. automodule:: {name}\n" for name in OPTIONAL_MODULES
        )


def setup(app):
    app.connect("source-read", _optional_modules)
