"""A runserver override from another app (as daphne or channels ship one)."""

from django.core.management.commands.runserver import Command as RunserverCommand


class Command(RunserverCommand):
    pass
