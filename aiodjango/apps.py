from django.apps import AppConfig


class AioDjangoConfig(AppConfig):
    name = "aiodjango"
    verbose_name = "aiodjango"

    def ready(self) -> None:
        # Registers the system checks (aiodjango.E0xx / W0xx).
        from . import checks  # noqa: F401
