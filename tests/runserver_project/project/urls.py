from django.urls import path

from demo import views

urlpatterns = [
    path("hello/", views.hello),
    path("django/", views.django_view),
    path("ws/", views.echo),
]
