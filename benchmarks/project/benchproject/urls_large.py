"""The 1,000-pattern URLconf, of which 100 are lifted, generated at import.

Its first pattern is ``sync/hello/``; then 997 generated patterns of the
shapes real projects have (literal prefixes with converters, regexes, a few
patterns with no literal prefix at all); then ``sync/last/`` and, last of
all, ``lifted/hello/``.  Django's ``resolve()`` walks the patterns in order,
so the last two cost it the most.
"""

from django.urls import path, re_path

from . import views

GENERATED = 997
LIFTED = 99  # generated lifted patterns; with lifted/hello/, 100 of the 1,000


def _generated():
    for i in range(GENERATED):
        view = views.lifted_hello if i % 10 == 5 and i < 10 * LIFTED else views.sync_hello
        shape = i % 4
        if i % 200 == 7:
            # No literal prefix: such a pattern can match any first segment.
            yield path(f"<slug:page>/section{i}/", views.sync_hello)
        elif shape == 0:
            yield path(f"app{i}/", view)
        elif shape == 1:
            yield path(f"app{i}/<int:pk>/", view)
        elif shape == 2:
            yield path(f"app{i}/<slug:slug>/edit/", view)
        else:
            yield re_path(rf"^legacy{i}/(?P<year>[0-9]{{4}})/(?P<month>[0-9]{{2}})/$", view)


urlpatterns = [
    path("sync/hello/", views.sync_hello),
    *_generated(),
    path("sync/last/", views.sync_hello),
    path("lifted/hello/", views.lifted_hello),
]
