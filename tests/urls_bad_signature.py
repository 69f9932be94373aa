from django.urls import path

from . import views

urlpatterns = [
    path("bad/<int:pk>/", views.bad_signature),
]
