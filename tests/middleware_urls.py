"""URLconf of the MIDDLEWARE tests: lifted handlers and the Django views beside them."""

from django.urls import path

from . import middleware_views as views
from .citizens_views import LoginView  # Django's, its template inline

urlpatterns = [
    path("accounts/login/", LoginView.as_view(), name="login"),
    # Django, the control
    path("django/page/", views.django_page),
    path("django/fails/", views.django_fails),
    path("django/form/", views.django_form),
    path("django/exempt/", views.django_exempt),
    path("django/big/", views.django_big),
    path("django/language/", views.django_language),
    path("django/scheme/", views.django_scheme),
    path("django/sameorigin/", views.django_sameorigin),
    path("django/frameable/", views.django_frameable),
    path("django/public/", views.django_public),
    path("django/csp/nonce/", views.django_nonce),
    path("django/csp/override/", views.django_csp_overridden),
    path("api/django/", views.django_json),
    # lifted
    path("lifted/page/", views.page),
    path("lifted/form/", views.form),
    path("lifted/exempt/", views.exempt),
    path("lifted/exempt-attribute/", views.exempt_by_attribute),
    path("lifted/csrf-protect/", views.protected_form),
    path("lifted/upload/", views.upload),
    path("lifted/big/", views.big),
    path("lifted/stream/", views.stream),
    path("lifted/ws/", views.websocket),
    path("lifted/answers/", views.answers),
    path("lifted/fails/", views.fails),
    path("lifted/scheme/", views.scheme),
    path("lifted/language/", views.language),
    path("lifted/sameorigin/", views.sameorigin),
    path("lifted/frameable/", views.frameable),
    path("lifted/deny-set-by-view/", views.deny_set_by_view),
    path("lifted/private/", views.private),
    path("lifted/private/ws/", views.private_ws),
    path("lifted/public/", views.public),
    path("lifted/own-check/", views.own_check),
    path("lifted/open-view/", views.OpenView),
    path("lifted/csp/nonce/", views.nonce),
    path("lifted/csp/none/", views.no_nonce),
    path("lifted/csp/override/", views.csp_overridden),
    path("api/lifted/", views.json_api),
]
