"""Views for the parity URLconfs: each answers with which view and route it is."""

from aiohttp import web
from django.http import HttpResponse


def make_sync(label):
    def view(request, *args, **kwargs):
        response = HttpResponse(label)
        response["X-View"] = label
        response["X-Route"] = request.resolver_match.route
        return response

    view.__name__ = view.__qualname__ = label
    return view


def make_lifted(label):
    async def view(request):
        return web.Response(
            text=label,
            headers={"X-View": label, "X-Route": request.match_info.resolver_match.route},
        )

    view.__name__ = view.__qualname__ = label
    return view


class FourDigitYear:
    """A custom converter (the one from Django's docs)."""

    regex = "[0-9]{4}"

    def to_python(self, value):
        value = int(value)
        if value < 1900:  # refuses some values its regex accepts
            raise ValueError(value)
        return value

    def to_url(self, value):
        return "%04d" % int(value)
