"""Integrations with web frameworks: `conveyor.contrib.flask` and `conveyor.contrib.django`.

Each one only translates its framework's configuration into `App` arguments and runs
tasks inside the framework's context; the core knows nothing about them.
"""
