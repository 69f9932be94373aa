"""Django's ``MIDDLEWARE`` on lifted views: the site's policies, with Django's own code.

A lifted view is an aiohttp handler, so Django's middleware chain never sees
its requests.  aiodjango applies each ``MIDDLEWARE`` entry to lifted views
itself, only when the entry is listed, by calling that middleware's own
methods on a Django stand-in of the request and a mirror of the response:

====================================  =============================================
Middleware                            On lifted views
====================================  =============================================
``SecurityMiddleware``                its headers; ``SECURE_SSL_REDIRECT``
``XFrameOptionsMiddleware``           ``X-Frame-Options`` (Django's decorators too)
``ContentSecurityPolicyMiddleware``   its headers; :func:`csp_nonce` (Django 6.0+)
``CsrfViewMiddleware``                unsafe methods checked; ``csrf_exempt``
``LoginRequiredMiddleware``           anonymous: redirect (websocket: 403)
``LocaleMiddleware``                  the request's language, active in the view
``CommonMiddleware``                  ``DISALLOWED_USER_AGENTS``, ``PREPEND_WWW``
``GZipMiddleware``                    ``web.Response`` bodies compressed
``ConditionalGetMiddleware``          ``ETag``, 304
sessions, auth, messages              on first use (:mod:`aiodjango.auth`)
anything else                         ``AIODJANGO_MIDDLEWARE``; else ``aiodjango.W030``
====================================  =============================================

``SECURE_PROXY_SSL_HEADER`` is honoured too: behind the proxy, a lifted
view's ``request.scheme`` and ``request.secure`` say ``https``.
``AIODJANGO_MIDDLEWARE`` maps other entries to ``"run"`` (:data:`RUN`),
``"skip"`` (:data:`SKIP`) or an aiohttp middleware.  See ``docs/middleware.rst``.
"""

from .headers import csp_nonce
from .plan import PLAN_ATTR, Policies, ViewPlan
from .registry import RUN as _RUN, SKIP as _SKIP

#: ``AIODJANGO_MIDDLEWARE`` value: run that middleware around lifted views, on a stand-in.
RUN = _RUN
#: ``AIODJANGO_MIDDLEWARE`` value: lifted views don't need that middleware (silences W030).
SKIP = _SKIP

# The public API; Policies, ViewPlan, and PLAN_ATTR are aiodjango's own.
__all__ = ["csp_nonce", "RUN", "SKIP"]
