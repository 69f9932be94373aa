"""The project's own and third-party middleware on lifted views (``AIODJANGO_MIDDLEWARE``).

``"run"``: the middleware itself runs around the lifted view, as Django's
ASGI handler runs it, in async mode: an instance made once (per view) with
an async ``get_response``; per request it is called with the request's
Django stand-in, and its ``get_response`` awaits the lifted view and hands
back a mirror of the aiohttp response (status, headers, the body of a
``web.Response``).  What the middleware changes on the mirror is copied to
the aiohttp response; a response of its own (a CORS preflight answer, a
cached page) is sent instead of calling the view.  Its ``process_view``
runs just before the view, in ``MIDDLEWARE`` order, and its
``process_exception`` when the view raises, in reverse order, as in Django
(an aiohttp ``HTTPException`` is a response, not an error: it is not
passed).  ``MiddlewareMixin`` subclasses run their halves in the request's
database thread (Django's async mode); ``process_template_response`` doesn't
apply (a lifted view returns no template response).

An aiohttp middleware (``async def middleware(request, handler)``) maps a
Django one to its aiohttp equivalent: it is called around each lifted view.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from aiohttp import web
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.utils.module_loading import import_string

from ..django_request import _no_response, django_request
from ..wsgi.environ import AIOHTTP_REQUEST_KEY
from .plan import Call, Policies, Policy, ViewInfo, cut_at
from .standin import copy_back, empty_response, from_django, has_bytes_body, mirror

# Where the stand-in keeps, per middleware layer, the aiohttp response the
# view answered (aiodjango's own attribute of its own stand-in).
_RESPONSES_ATTR = "_aiodjango_responses"


def run_problem(path: str) -> Optional[str]:
    """Why the middleware ``path`` can't be run around lifted views, if it can't."""
    try:
        middleware = import_string(path)
    except ImportError as exc:
        return f"it can't be imported ({exc})"
    if not getattr(middleware, "async_capable", False):
        return (
            "it is synchronous only (its async_capable is False): lifted views are served "
            "on the event loop"
        )
    return None


class RunPolicy(Policy):
    """A Django middleware run around lifted views on a stand-in (``"run"``)."""

    starts_runs = True

    def __init__(self, index: int, path: str, policies: Policies) -> None:
        super().__init__(index, path, policies)
        problem = run_problem(path)
        if problem is not None:
            raise ImproperlyConfigured(
                f"AIODJANGO_MIDDLEWARE[{path!r}] is 'run', but {problem}. Map it to 'skip', "
                f"or to an aiohttp middleware doing the same job."
            )
        self.factory = import_string(path)
        self.where = f"the middleware {path!r}"
        self._layers: dict[int, Any] = {}
        # Django calls these on the instance in its chain; they are called
        # on one instance here (the chain's instances are per view).
        probe = self._instance(_no_response)
        self.process_view: Optional[Callable[..., Any]] = getattr(probe, "process_view", None)
        self.process_exception: Optional[Callable[..., Any]] = getattr(
            probe, "process_exception", None
        )

    def _instance(self, get_response: Callable[..., Any]) -> Any:
        try:
            return self.factory(get_response)
        except MiddlewareNotUsed:
            return None

    def wrap(self, view: ViewInfo, inner: Call, safe: bool) -> Call:
        layer = self._layers.get(id(inner))
        if layer is not None and layer[0] is inner:
            return layer[1]  # the safe and unsafe chains share what is inside
        key = id(inner)

        async def get_response(dj: Any) -> Any:
            request = dj.environ[AIOHTTP_REQUEST_KEY]
            response = await inner(request)
            getattr(dj, _RESPONSES_ATTR)[key] = response
            if not isinstance(response, web.StreamResponse):
                return empty_response()  # the handler reports what the view returned
            stand_in, snapshot = mirror(response, body=has_bytes_body(response))
            stand_in._aiodjango_snapshot = snapshot  # type: ignore[attr-defined]
            return stand_in

        middleware = self._instance(get_response)
        if middleware is None:  # MiddlewareNotUsed, as Django skips it
            return inner
        where = self.where
        index = self.index

        async def run_middleware(request: web.Request) -> Any:
            dj = django_request(request)
            responses = getattr(dj, _RESPONSES_ATTR, None)
            if responses is None:
                responses = {}
                setattr(dj, _RESPONSES_ATTR, responses)
            result = await middleware(dj)
            response = responses.pop(key, None)
            snapshot = getattr(result, "_aiodjango_snapshot", None)
            if response is not None and snapshot is not None:
                if not response.prepared:
                    copy_back(result, snapshot, response, body=has_bytes_body(response))
                return response
            if response is not None and not isinstance(response, web.StreamResponse):
                return response
            if response is not None and response.prepared:
                return response  # already sent: the middleware's answer comes too late
            # Its own answer: the middleware listed after it never see it.
            cut_at(request, index + 1)
            return from_django(result, where)

        self._layers[key] = (inner, run_middleware)
        return run_middleware



def _awaitable(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method``, or a synchronous one run in the request's thread (Django's async mode)."""
    if iscoroutinefunction(method):
        return method
    return sync_to_async(method, thread_sensitive=True)


class ViewMiddleware:
    """What the middleware run around lifted views do next to the view itself:
    ``process_view`` just before it, ``process_exception`` when it raises."""

    def __init__(self, policies: list[RunPolicy]) -> None:
        self.calls = [
            (_awaitable(policy.process_view), policy.where)
            for policy in policies
            if policy.process_view is not None
        ]
        # Django calls these in reverse MIDDLEWARE order.
        self.exception_calls = [
            (_awaitable(policy.process_exception), policy.where)
            for policy in reversed(policies)
            if policy.process_exception is not None
        ]

    def wrap(self, view: ViewInfo, inner: Call) -> Call:
        calls = self.calls
        if self.exception_calls:
            inner = self._exceptions(inner)
        if not calls:
            return inner
        callback = view.callback

        async def process_view(request: web.Request) -> Any:
            dj = django_request(request)
            for call, where in calls:
                answer = await call(dj, callback, (), {})
                if answer is not None:
                    return from_django(answer, where)
            return await inner(request)

        return process_view

    def _exceptions(self, inner: Call) -> Call:
        calls = self.exception_calls

        async def process_exception(request: web.Request) -> Any:
            try:
                return await inner(request)
            except web.HTTPException:
                raise  # aiohttp's way of answering, not an error of the view
            except Exception as exc:
                dj = django_request(request)
                for call, where in calls:
                    answer = await call(dj, exc)
                    if answer:
                        return from_django(answer, where)
                raise

        return process_exception


class AiohttpPolicy(Policy):
    """An aiohttp middleware standing for a Django one: ``middleware(request, handler)``."""

    def __init__(self, index: int, path: str, policies: Policies, middleware: Callable[..., Any]) -> None:
        super().__init__(index, path, policies)
        self.middleware = middleware

    def wrap(self, view: ViewInfo, inner: Call, safe: bool) -> Call:
        middleware = self.middleware

        async def aiohttp_middleware(request: web.Request) -> Any:
            return await middleware(request, inner)

        return aiohttp_middleware
