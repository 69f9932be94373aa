from django.urls import path, re_path

from . import views

urlpatterns = [
    path("__bridge__/stream/<str:lang>/", views.stream),
    path("__bridge__/export.csv", views.export_csv),
    path("__bridge__/orm/", views.orm),
    path("__bridge__/no-body/<int:status>/<str:kind>/", views.no_body),
    path("__bridge__/title/<str:kind>/", views.title),
    re_path(r"", views.echo),
]

handler404 = "tests.bridge_project.views.echo"
