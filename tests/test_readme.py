"""The README says what works: its commands and its usage example, run for real."""

import re
import textwrap
import urllib.request
from pathlib import Path

from tests.support.servers import gunicorn

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.rst").read_text(encoding="utf-8")


def code_blocks():
    """Every ``.. code-block::`` body of the README, dedented."""
    blocks = []
    for match in re.finditer(r"\.\. code-block:: \w+\n\n((?:    .*\n|\n)+)", README):
        blocks.append(textwrap.dedent(match.group(1)).strip() + "\n")
    return blocks


def test_ci_runs_exactly_the_readme_test_command():
    shell = [b for b in code_blocks() if b.startswith("python3 -m venv")]
    assert len(shell) == 2, shell
    run_example, run_tests = shell
    assert "pytest" in run_tests and "runserver" in run_example
    ci = (ROOT / ".ci" / "run").read_text()
    assert run_tests.strip() in ci.splitlines()


def test_usage_example_works_as_written(tmp_path):
    blocks = {b.split("\n", 1)[0]: b for b in code_blocks() if b.startswith("#")}
    project = tmp_path / "project"
    project.mkdir()
    (project / "__init__.py").write_text("")
    (project / "views.py").write_text(blocks["# views.py"])
    (project / "urls.py").write_text(blocks["# urls.py"].replace("from . import views", "from project import views"))
    wsgi = [b for b in code_blocks() if "get_aio_application(application)" in b][0]
    (project / "wsgi.py").write_text(wsgi)
    (project / "settings.py").write_text(
        "SECRET_KEY = 'readme'\nALLOWED_HOSTS = ['127.0.0.1']\nROOT_URLCONF = 'project.urls'\n"
        "INSTALLED_APPS = ['aiodjango']\nDATABASES = {}\n"
    )
    with gunicorn("project.wsgi:app", "--workers", "1", cwd=str(tmp_path)) as (base, _):
        assert urllib.request.urlopen(base + "/").read() == b"Hello from Django"
        assert urllib.request.urlopen(base + "/hello/aiodjango/").read() == b"Hello, aiodjango!"
