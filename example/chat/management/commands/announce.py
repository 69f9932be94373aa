"""``manage.py announce ROOM TEXT``: tell everyone in a chat room, from the command line.

A management command runs in a process of its own, with no event loop:
``publish_sync()`` opens a short-lived connection to Redis, and every server
process delivers the announcement to its sockets in that room. With the
in-memory backend (no ``REDIS_URL``) nothing outside the server's own process
can reach its sockets, and the command says so.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_slug

from aiodjango.broadcast import BroadcastError, publish_sync

from ...views import MAX_MESSAGE, room_group


class Command(BaseCommand):
    help = "Send an announcement to everyone in a chat room (set REDIS_URL, as the server does)."

    def add_arguments(self, parser):
        parser.add_argument("room", help="The room's name, as in /chat/<room>/.")
        parser.add_argument("text", help=f"What to say (at most {MAX_MESSAGE} characters).")

    def handle(self, room, text, **options):
        try:
            validate_slug(room)
        except ValidationError:
            raise CommandError(f"{room!r} is not a room name: use letters, digits, '-' and '_'.")
        text = text.strip()[:MAX_MESSAGE]
        if not text:
            raise CommandError("Nothing to announce: the text is empty.")
        try:
            publish_sync(room_group(room), {"type": "message", "user": "announcement", "text": text})
        except BroadcastError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Announced in #{room}.")
