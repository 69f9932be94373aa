"""The views of the bridge test project: streams, a CSV export, ORM queries, echo."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any, Iterator

from django.db.models import Sum
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse, StreamingHttpResponse
from django.utils import translation

from .exports import records
from .exports.models import Row

#: Languages the streams may activate: Django ships a catalog for each.
LANGUAGES = (
    "de", "fr", "es", "it", "nl", "pt", "sv", "da", "fi", "pl", "cs", "hu",
    "ro", "tr", "el", "ja", "ko", "ru", "uk", "ca", "nb", "sk", "sl", "hr",
)


def _int(request: HttpRequest, name: str, default: int, top: int) -> int | None:
    try:
        value = int(request.GET.get(name, default))
    except ValueError:
        return None
    return value if 0 <= value <= top else None


def _pause(request: HttpRequest, default: float) -> float | None:
    try:
        value = float(request.GET.get("pause", default))
    except ValueError:
        return None
    return value if 0 <= value <= 1 else None


def stream(request: HttpRequest, lang: str) -> HttpResponse:
    """Stream ``chunks`` lines, ``pause`` s apart, each saying which language is
    active and which thread produced it."""
    rid = request.GET.get("rid", "")
    chunks = _int(request, "chunks", 5, 100)
    pause = _pause(request, 0.02)
    if lang not in LANGUAGES or not rid.isalnum() or chunks is None or pause is None:
        return HttpResponseBadRequest("bad stream parameters\n")
    translation.activate(lang)
    records.tag(rid)

    def lines() -> Iterator[str]:
        for index in range(chunks):
            if index:
                time.sleep(pause)
            yield json.dumps({
                "rid": rid,
                "i": index,
                "lang": translation.get_language(),
                "thread": threading.get_ident(),
                "pid": os.getpid(),
                "t": time.monotonic(),
            }) + "\n"

    return StreamingHttpResponse(lines(), content_type="application/x-ndjson")


def export_csv(request: HttpRequest) -> HttpResponse:
    """All rows as CSV, streamed from ``Row.objects.iterator(chunk_size=...)``."""
    chunk_size = _int(request, "chunk_size", 50, 1000)
    pause = _pause(request, 0.0)
    rid = request.GET.get("rid", "")
    if not chunk_size or pause is None or (rid and not rid.isalnum()):
        return HttpResponseBadRequest("bad export parameters\n")
    if rid:
        records.tag(rid)

    def lines() -> Iterator[str]:
        yield "id,name,value\r\n"
        for count, row in enumerate(Row.objects.order_by("pk").iterator(chunk_size=chunk_size), 1):
            yield f"{row.pk},{row.name},{row.value}\r\n"
            if pause and count % chunk_size == 0:
                time.sleep(pause)

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="rows.csv"'
    return response


def orm(request: HttpRequest) -> HttpResponse:
    """A few ORM queries, as any view alongside the export would make."""
    total = Row.objects.filter(value__gt=1000).aggregate(total=Sum("value"))["total"]
    last = list(Row.objects.order_by("-pk").values_list("name", flat=True)[:3])
    return JsonResponse({"count": Row.objects.count(), "total": total, "last": last})


def no_body(request: HttpRequest, status: int, kind: str) -> HttpResponse:
    """A response whose status (or method: HEAD) forbids a body, with a body anyway."""
    rid = request.GET.get("rid", "")
    if status not in (200, 204, 304) or kind not in ("generator", "list") or (rid and not rid.isalnum()):
        return HttpResponseBadRequest("bad no-body parameters\n")
    if rid:
        records.tag(rid)

    def chunks() -> Iterator[bytes]:
        for index in range(3):
            yield b"body bytes that must not reach the wire %d\n" % index

    response: HttpResponse
    if kind == "generator":
        response = StreamingHttpResponse(chunks(), status=status, content_type="text/plain")
    else:
        response = HttpResponse(b"".join(chunks()), status=status, content_type="text/plain")
    response["X-Kind"] = kind
    return response


#: ``X-Title`` values: PEP 3333 header values are latin-1 strings standing for bytes.
TITLES = {
    # A latin-1 character: gunicorn sends the byte 0xE9, which is not UTF-8.
    "latin1": "café",
    # UTF-8 bytes as latin-1 characters: on the wire, the UTF-8 of "café".
    "utf8": "café".encode().decode("latin-1"),
    "ascii": "cafe",
}


def title(request: HttpRequest, kind: str) -> HttpResponse:
    if kind not in TITLES:
        return HttpResponseBadRequest("bad title kind\n")
    response = HttpResponse(b"titled\n", content_type="text/plain")
    response["X-Title"] = TITLES[kind]
    return response


def echo(request: HttpRequest, exception: Any = None) -> HttpResponse:
    """The environ's string values and the request body's bytes, as JSON.

    Also the project's ``handler404``, so that targets Django cannot resolve
    (``*``) are echoed too (``"resolved": false``).  Reads ``wsgi.input``
    directly: Django's ``request.body`` would read nothing of a chunked
    request under gunicorn, which gives no ``CONTENT_LENGTH``.
    """
    environ = request.META
    seen = {key: value for key, value in environ.items() if isinstance(value, str)}
    data = environ["wsgi.input"].read()
    seen["input"] = data.decode("latin-1")
    seen["resolved"] = exception is None
    records.append("BRIDGE_CALLS", {"event": "echo", "environ": seen})
    return HttpResponse(json.dumps(seen, sort_keys=True), content_type="application/json")
