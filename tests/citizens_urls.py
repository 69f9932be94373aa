"""URLconf of the Django-citizenship tests: Django's login view next to lifted handlers."""

from django.urls import path

from . import citizens_views as views

urlpatterns = [
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("django/hello/", views.django_hello, name="django-hello"),
    path("django/protected/", views.django_protected, name="django-protected"),
    path("citizens/hello/", views.hello, name="hello"),
    path("citizens/any-host/", views.any_host, name="any-host"),
    path("citizens/whoami/", views.whoami, name="whoami"),
    path("citizens/whoami/ws/", views.whoami_ws, name="whoami-ws"),
    path("citizens/protected/", views.protected, name="protected"),
    path("citizens/protected/api/", views.protected_api, name="protected-api"),
    path("citizens/protected/ws/", views.protected_ws, name="protected-ws"),
    path("citizens/protected/view/", views.ProtectedView, name="protected-view"),
    path("citizens/login/", views.aio_login, name="aio-login"),
    path("citizens/logout/", views.aio_logout, name="aio-logout"),
    path("citizens/raise-after-login/", views.raise_after_login, name="raise-after-login"),
    path("citizens/csrf/", views.csrf_form, name="csrf"),
    path("citizens/csrf/view/", views.CsrfView, name="csrf-view"),
    path("citizens/users/", views.count_users, name="count-users"),
    path("citizens/db/threads/", views.db_threads, name="db-threads"),
    path("citizens/db/barrier/", views.db_barrier, name="db-barrier"),
    path("citizens/db/raise/", views.db_then_raise, name="db-raise"),
    path("citizens/ws/echo/", views.echo_ws, name="echo-ws"),
    path("citizens/ws/public/", views.public_ws, name="public-ws"),
]


class Misdecorated:
    """A URLconf (any object with ``urlpatterns``) for the aiodjango.W010 check."""

    urlpatterns = [
        path("mistake/", views.mistaken, name="mistake"),
        path("fine/", views.django_protected, name="fine"),
        path("kept/", views.kept, name="kept"),
        path("lifted/", views.protected, name="lifted"),
        path("hello/", views.hello, name="hello"),
    ]


class KeptInDjango:
    """The same views, fixed: no aiodjango.W010."""

    urlpatterns = [path("kept/", views.kept), path("lifted/", views.protected)]
