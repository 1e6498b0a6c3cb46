from django.db import migrations, models


class Migration(migrations.Migration):
    """An unmanaged model (no table): the admin page and permissions of runtime schedules."""

    dependencies = [
        ("conveyor", "0002_progress_meta"),
    ]

    operations = [
        migrations.CreateModel(
            name="RuntimeSchedule",
            fields=[
                ("name", models.CharField(max_length=200, primary_key=True, serialize=False)),
            ],
            options={
                "verbose_name": "periodic schedule",
                "managed": False,
                "default_permissions": ("add", "change", "delete", "view"),
            },
        ),
    ]
