from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "tests.bridge_project.exports"
    label = "bridge_exports"

    def ready(self) -> None:
        from django.core.signals import request_finished, request_started

        from . import records

        request_started.connect(records.on_request_started, dispatch_uid="bridge-started")
        request_finished.connect(records.on_request_finished, dispatch_uid="bridge-finished")
