"""gunicorn's HTTP request corpus (``tests/requests/{valid,invalid}``, MIT).

Not part of this repository: fetched at test time from the sdist of the
installed gunicorn on PyPI (``pip download --no-binary :all:``) and cached in
``$XDG_CACHE_HOME/aiodjango-tests/`` (``~/.cache/aiodjango-tests/``), reused
across runs.  :func:`load_cases` raises :class:`CorpusUnavailable` when it
cannot be had; the tests fail on that under ``CI=true`` and skip elsewhere.

A ``.http`` file is turned into bytes as gunicorn's ``tests/treq.py`` does
(newlines dropped, then the literal escapes ``\\r\\n``, ``\\0``, ``\\n``,
``\\t`` and ``\\xHH`` decoded).  Its ``.py`` sibling is run as ``treq.load_py``
runs it, with ``uri`` and a fresh gunicorn ``cfg`` in its namespace: it gives
the expected requests (valid) or the parser error (invalid), and the gunicorn
settings the case needs (``cfg.set(...)``).
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOWNLOAD_TIMEOUT = 300.0


class CorpusUnavailable(Exception):
    """The corpus could not be downloaded or read (the message says why)."""


@dataclass(frozen=True)
class Case:
    kind: str  # "valid" or "invalid"
    name: str  # the file name without .http
    http: Path
    py: Path

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.name}"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "aiodjango-tests"


def gunicorn_version() -> str:
    try:
        return importlib.metadata.version("gunicorn")
    except importlib.metadata.PackageNotFoundError:
        raise CorpusUnavailable("gunicorn is not installed (pip install -e '.[test]')") from None


def _wanted(name: str, top: str) -> str | None:
    """The path below ``tests/requests/`` of a member we extract, else ``None``."""
    prefix = f"{top}/tests/requests/"
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix):]
    parts = rest.split("/")
    if (len(parts) != 2 or parts[0] not in ("valid", "invalid")
            or not parts[1].endswith((".http", ".py")) or parts[1].startswith(".")):
        return None
    return rest


def _download(version: str, into: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
               "--disable-pip-version-check", f"gunicorn=={version}", "-d", str(into)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise CorpusUnavailable(f"pip download of gunicorn=={version} took over {DOWNLOAD_TIMEOUT} s") from None
    sdists = sorted(into.glob(f"gunicorn-{version}.tar.gz"))
    if done.returncode or not sdists:
        raise CorpusUnavailable(
            f"pip download of the gunicorn=={version} sdist failed ({done.returncode}): "
            f"{(done.stderr or done.stdout).strip()[-600:]}"
        )
    return sdists[0]


def corpus_dir() -> Path:
    """``.../gunicorn-<version>/requests`` with ``valid/`` and ``invalid/``, downloaded once."""
    version = gunicorn_version()
    final = cache_root() / f"gunicorn-{version}" / "requests"
    if (final / "valid").is_dir() and (final / "invalid").is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="download-", dir=final.parent))
    try:
        sdist = _download(version, scratch)
        staged = scratch / "requests"
        top = f"gunicorn-{version}"
        count = 0
        with tarfile.open(sdist, "r:gz") as tar:
            for member in tar:
                rest = _wanted(member.name, top)
                if rest is None or not member.isfile():
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                target = staged / rest
                target.parent.mkdir(parents=True, exist_ok=True)
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                count += 1
        if not (staged / "valid").is_dir() or not (staged / "invalid").is_dir():
            raise CorpusUnavailable(f"{sdist.name} holds no tests/requests/valid and invalid ({count} files)")
        try:
            os.replace(staged, final)
        except OSError:
            if not (final / "valid").is_dir():  # not another run that got there first
                raise
    except (OSError, tarfile.TarError) as exc:
        raise CorpusUnavailable(f"gunicorn's corpus could not be stored in {final}: {exc}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def load_cases() -> list[Case]:
    root = corpus_dir()
    cases = []
    for kind in ("valid", "invalid"):
        for http in sorted((root / kind).glob("*.http")):
            py = http.with_suffix(".py")
            if py.exists():
                cases.append(Case(kind, http.stem, http, py))
    if not cases:
        raise CorpusUnavailable(f"no .http/.py pairs in {root}")
    return cases


def _decode_hex_escapes(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        if i + 3 < len(data) and data[i:i + 2] == b"\\x":
            try:
                out.append(int(data[i + 2:i + 4], 16))
                i += 4
                continue
            except ValueError:
                pass
        out.append(data[i])
        i += 1
    return bytes(out)


def load_http(path: Path) -> bytes:
    """The bytes a ``.http`` file stands for, decoded as gunicorn's treq.py does."""
    data = path.read_bytes()
    data = data.replace(b"\n", b"").replace(b"\\r\\n", b"\r\n")
    data = data.replace(b"\\0", b"\000").replace(b"\\n", b"\n").replace(b"\\t", b"\t")
    data = _decode_hex_escapes(data)
    if b"\\" in data:
        raise ValueError(f"{path.name}: unexpected backslash (treq.py handles HTAB, NUL, CRLF and \\xHH only)")
    return data


def _uri(data: str) -> dict[str, Any]:
    from gunicorn.util import split_request_uri

    parts = split_request_uri(data)
    return {
        "raw": data,
        "scheme": parts.scheme or "",
        "host": parts.netloc.rsplit(":", 1)[0] or None,
        "port": parts.port or 80,
        "path": parts.path or "",
        "query": parts.query or "",
        "fragment": parts.fragment or "",
    }


def load_expectation(path: Path) -> tuple[Any, dict[str, Any]]:
    """``(request, settings)``: the ``.py``'s ``request`` (a list of dicts for a
    valid case, an exception class for an invalid one) and the gunicorn settings
    it changes from their defaults (name -> value)."""
    from gunicorn.config import Config

    module = types.ModuleType("__corpus_case__")
    module.uri = _uri  # type: ignore[attr-defined]
    module.cfg = Config()  # type: ignore[attr-defined]
    importlib.machinery.SourceFileLoader("__corpus_case__", str(path)).exec_module(module)
    namespace = vars(module)
    request = namespace["request"]
    if isinstance(request, dict):
        request = [request]
    defaults = Config()
    settings = {
        name: setting.get()
        for name, setting in namespace["cfg"].settings.items()
        if setting.get() != defaults.settings[name].get()
    }
    return request, settings


def gunicorn_config(settings: dict[str, Any], path: Path) -> Path:
    """Write a gunicorn config file (``-c``) setting ``settings``.

    List settings (``forwarded_allow_ips``) are read back as the
    comma-separated strings their validators take.
    """
    lines = [
        f"{name} = {(','.join(map(str, value)) if isinstance(value, list) else value)!r}"
        for name, value in sorted(settings.items())
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
