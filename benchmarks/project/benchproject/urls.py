"""The 10-pattern URLconf.  ``lifted/hello/`` is defined last, as in urls_large."""

from django.urls import path, re_path

from . import views

urlpatterns = [
    path("sync/hello/", views.sync_hello),
    path("async/hello/", views.django_async_hello),
    path("file/", views.file_download),
    path("sync/stream/", views.sync_stream),
    path("sync/sleep/", views.sleep),
    path("ws/echo/", views.ws_echo),
    path("articles/<int:year>/", views.sync_hello),
    path("articles/<int:year>/<slug:slug>/", views.sync_hello),
    re_path(r"^archive/(?P<year>[0-9]{4})/(?P<month>[0-9]{2})/$", views.sync_hello),
    path("sync/last/", views.sync_hello),
    path("sync/upload/", views.sync_upload),  # after sync/last/: its lookup is unchanged
    path("lifted/hello/", views.lifted_hello),
]
