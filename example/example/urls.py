"""
URL configuration for example project.

Django views and ``async def`` aiohttp views live side by side here:
aiodjango's ``get_aio_application`` lifts the coroutine views into native
aiohttp routes and sends everything else to Django.
"""

from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("chat.urls")),
]

# Serves static files through Django while DEBUG is on, under any server
# (runserver or gunicorn). In production, run collectstatic and let the
# front-end server (nginx) serve STATIC_ROOT: see docs/deployment.rst.
urlpatterns += staticfiles_urlpatterns()
