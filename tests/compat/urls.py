from django.contrib import admin
from django.urls import include, path
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("books", views.BookViewSet)
router.register("authors", views.AuthorViewSet)
router.register("stats", views.StatsViewSet, basename="stats")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/ping/", views.api_ping, name="api-ping"),
    path("api/lifted/ping/", views.lifted_ping, name="lifted-ping"),
    path("api/", include(router.urls)),
    path("api-auth/", include("rest_framework.urls")),
    path("api-token-auth/", obtain_auth_token, name="api-token-auth"),
    path("books/", views.books_page, name="books-page"),
    path("lifted/books/", views.lifted_books, name="lifted-books"),
    path("ws/books/", views.books_ws, name="books-ws"),
    path("connection/django/", views.django_connection),
    path("connection/lifted/", views.lifted_connection),
    path("connection/ws/", views.connection_ws),
    path("__debug__/", include("debug_toolbar.urls")),
]
