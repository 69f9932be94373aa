from django.urls import include, path, re_path

from . import views

items = [
    path("<int:pk>/", views.lifted_view, name="item"),
    path("<int:pk>/edit/", views.sync_view, name="item-edit"),
]

urlpatterns = [
    path("sync/", views.sync_view, name="sync"),
    path("hello/", views.hello, name="hello"),
    path("async-hello/", views.hello, name="async-hello"),
    path("items/", include((items, "items"), namespace="items")),
    re_path(r"^archive/(\d{4})/(\d{2})/$", views.lifted_view, name="archive"),
    path("partial/", views.partial_view, name="partial"),
    path("callable/", views.callable_view, name="callable"),
    path("marked/", views.marked_view, name="marked"),
    path("itemview/", views.ItemView, name="itemview"),
    path("django-cbv/", views.DjangoAsyncView.as_view(), name="django-cbv"),
    path("django-async/", views.django_async_view, name="django-async"),
    path("ws/", views.websocket_echo, name="ws"),
    path("errors/django-response/", views.returns_django_response),
    path("errors/none/", views.returns_none),
    path("errors/raises/", views.raises),
    path("extra/", views.lifted_view, {"flavour": "vanilla"}, name="extra"),
]
