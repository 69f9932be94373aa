from django.urls import path

from . import views

app_name = "chat"

urlpatterns = [
    # Django views: templates, sessions, the ORM, middleware.
    path("", views.index, name="index"),
    path("chat/<slug:room>/", views.room, name="room"),
    path("slow/", views.slow, name="slow"),
    # async def views: lifted into aiohttp routes by aiodjango.
    path("api/hello/<str:name>/", views.hello, name="hello"),
    path("chat/<slug:room>/ws/", views.chat_socket, name="socket"),
    path("chat/<slug:room>/events/", views.room_events, name="events"),
]
