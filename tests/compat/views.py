"""Views of the compatibility project: DRF viewsets, Django views and lifted views side by side."""

from aiohttp import web
from asgiref.sync import sync_to_async
from django.db import connections
from django.http import HttpResponse, JsonResponse
from django.utils.html import escape
from rest_framework import serializers, viewsets
from rest_framework.response import Response

from .models import Author, Book

# -- Django REST framework (Django views, through the bridge) ----------------


class AuthorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Author
        fields = ["id", "name"]


class BookSerializer(serializers.ModelSerializer):
    class Meta:
        model = Book
        fields = ["id", "title", "author"]


class AuthorViewSet(viewsets.ModelViewSet):
    queryset = Author.objects.all()
    serializer_class = AuthorSerializer


class BookViewSet(viewsets.ModelViewSet):
    queryset = Book.objects.all()
    serializer_class = BookSerializer


class StatsViewSet(viewsets.ViewSet):
    """A plain ViewSet (no model): counts."""

    def list(self, request):
        return Response({"books": Book.objects.count(), "authors": Author.objects.count()})


# -- Django views ---------------------------------------------------------------


def books_page(request):
    """An HTML page (the debug toolbar goes before its ``</body>``), with a query."""
    items = "".join(f"<li>{escape(book.title)}</li>" for book in Book.objects.all())
    return HttpResponse(f"<!DOCTYPE html><html><head><title>Books</title></head><body><ul>{items}</ul></body></html>")


def api_ping(request):
    """A Django view under ``/api/``: django-cors-headers answers for it."""
    return JsonResponse({"pong": True, "view": "django"})


def django_connection(request):
    """Which database connection object a Django view uses (for the live-server tests)."""
    return JsonResponse({"connection": id(connections["default"])})


# -- lifted views (served by aiohttp) --------------------------------------------


async def lifted_connection(request):
    """Which database connection object a lifted view's ORM thread uses."""
    return web.json_response({"connection": await sync_to_async(lambda: id(connections["default"]))()})



async def _titles():
    return [book.title async for book in Book.objects.order_by("id")]


async def lifted_books(request):
    return web.json_response({"books": await _titles(), "view": "lifted"})


async def lifted_ping(request):
    """A lifted view under ``/api/`` (TODO: its CORS headers, see test_cors.py)."""
    return web.json_response({"pong": True, "view": "lifted"})


async def connection_ws(request):
    """Which connection object a websocket's ORM calls use, after the handshake."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        if message.type == web.WSMsgType.TEXT and message.data == "which":
            await ws.send_json({"connection": await sync_to_async(lambda: id(connections["default"]))()})
    return ws


async def books_ws(request):
    """The titles on connect, and again on each "refresh"."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json({"books": await _titles()})
    async for message in ws:
        if message.type == web.WSMsgType.TEXT and message.data == "refresh":
            await ws.send_json({"books": await _titles()})
    return ws
