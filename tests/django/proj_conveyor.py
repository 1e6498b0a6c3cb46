"""The test project's App, as users write ``proj/conveyor.py``."""

from conveyor.contrib.django import DjangoApp

app = DjangoApp("testproj")
