from django.db import migrations

#: Rows the CSV export streams.
ROWS = 500


def add_rows(apps, schema_editor):
    Row = apps.get_model("bridge_exports", "Row")
    Row.objects.bulk_create(Row(name=f"row-{i:04d}", value=i * i) for i in range(1, ROWS + 1))


class Migration(migrations.Migration):
    dependencies = [("bridge_exports", "0001_initial")]

    operations = [migrations.RunPython(add_rows, migrations.RunPython.noop)]
