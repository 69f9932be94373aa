from django.db import models


class Row(models.Model):
    """One line of the CSV export (500 of them, from migration 0002)."""

    name = models.CharField(max_length=40)
    value = models.IntegerField()

    class Meta:
        app_label = "bridge_exports"
