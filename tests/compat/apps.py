from django.apps import AppConfig


class CompatConfig(AppConfig):
    name = "tests.compat"
    label = "compat"
    default_auto_field = "django.db.models.AutoField"
