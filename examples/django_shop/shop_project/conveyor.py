"""The project's Conveyor App. It reads ``settings.CONVEYOR`` when first used, so
importing this module (from ``orders/tasks.py``) reads no settings; the installed app
``conveyor.contrib.django`` configures it at start-up and imports every ``tasks.py``."""

from conveyor.contrib.django import DjangoApp

app = DjangoApp("shop")
