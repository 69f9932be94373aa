"""URLconf shapes for the parity suite: sync (s_*) and lifted (a_*) views interleaved."""

from django.conf.urls.i18n import i18n_patterns
from django.urls import include, path, re_path, register_converter

from .parity_views import FourDigitYear, make_lifted, make_sync

register_converter(FourDigitYear, "yyyy")

S = {n: make_sync(f"s_{n}") for n in range(30)}
A = {n: make_lifted(f"a_{n}") for n in range(30)}

deep = [
    path("<slug:slug>/", A[1], name="deep-slug"),
    re_path(r"^(?P<code>[a-z]{2})/(?P<n>\d+)/$", A[2], name="deep-code"),
    path("leaf/", S[1], name="deep-leaf"),
]

middle = [
    path("deep/", include(deep)),
    path("deep/<int:level>/", include((deep, "deepapp"), namespace="deeper")),
    path("x/", A[3], name="middle-x"),
]

blog = [
    path("", A[4], name="index"),
    path("<yyyy:year>/", A[5], name="year"),
    path("<yyyy:year>/<int:month>/", S[2], name="month"),
    path("<yyyy:year>/<int:month>/<slug:slug>/", A[6], name="post"),
    re_path(r"^tag/([\w-]+)/$", A[7], name="tag"),
    re_path(r"^feed(?:/(?P<fmt>rss|atom))?/$", A[8], name="feed"),
]

urlpatterns = [
    # A sync view listed first shadows a lifted one on the same path.
    path("shadow/", S[3], name="shadow-sync"),
    path("shadow/", A[9], name="shadow-lifted"),
    # ...and a lifted view first shadows a sync one.
    path("first/", A[10], name="first-lifted"),
    path("first/", S[4], name="first-sync"),
    # A broad regex before narrower lifted views.
    re_path(r"^catch/(?P<rest>.*)special/$", S[5], name="catch"),
    path("catch/<path:rest>/", A[11], name="catch-lifted"),
    # Positional groups, both sides.
    re_path(r"^pos/(\d+)/(\d+)/$", A[12], name="pos-lifted"),
    re_path(r"^pos/(\d+)/$", S[6], name="pos-sync"),
    # Converters, built-in and custom.
    path("int/<int:n>/", A[13], name="int"),
    path("int/<str:s>/", S[7], name="int-str"),
    path("uuid/<uuid:u>/", A[14], name="uuid"),
    path("path/<path:p>", A[15], name="pathconv"),
    # Includes with prefixes, namespaces (app and instance), nested.
    path("blog/", include((blog, "blog"), namespace="blog")),
    path("other-blog/", include((blog, "blog"), namespace="other-blog")),
    path("m/<str:section>/", include(middle)),
    # Extra kwargs on a path and on an include.
    path("extra/", A[16], {"mode": "extra"}, name="extra"),
    path("inc-extra/", include([path("<int:n>/", A[17], name="inc-extra")]), {"from": "include"}),
    # Unanchored regexes: Django searches, so these match anywhere.
    re_path(r"tail/$", S[8], name="tail-sync"),
    re_path(r"end/(?P<n>\d+)$", A[18], name="end-lifted"),
    # Non-ASCII literal.
    path("café/", A[20], name="cafe"),
    # Names aiohttp itself would refuse.
    path("async-def/", A[21], name="async-def"),
    path("with space/", A[22], name="with space"),
    # Sync catch-all near the end, one lifted view after it.
    re_path(r"^zz/.*$", S[9], name="zz"),
    path("zz/after/", A[23], name="zz-after"),
]

urlpatterns += i18n_patterns(
    path("about/", S[10], name="about"),
    path("live/", A[24], name="live"),
    prefix_default_language=False,
)


# Django can't reverse "(?i)" patterns (the whole URLconf's reverse() fails),
# so case-insensitive regexes get a URLconf of their own.
case_insensitive = [
    re_path(r"^CaSe/(?P<n>\d+)/$", S[11]),
    re_path(r"(?i)^CaSe/$", A[19]),
    re_path(r"^(?i:MiXeD)/$", A[25]),
    path("case/", S[12]),
    path("mixed/", S[13]),
]
