"""``python manage.py conveyor ...``: Django's entry to the ``conveyor`` command line."""

from __future__ import annotations

import argparse
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from conveyor.contrib.django.cli import conveyor_cli


class Command(BaseCommand):
    help = ("Conveyor workers, beat and inspection: worker, beat, status, result, revoke, "
            "purge, dead, pause, resume (each takes --help).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("args", nargs=argparse.REMAINDER)

    def run_from_argv(self, argv: list[str]) -> None:
        """Hand everything after ``conveyor`` to click, whose options these are."""
        program = f"{os.path.basename(argv[0])} {argv[1]}"
        conveyor_cli.main(args=argv[2:], prog_name=program)

    def handle(self, *args: Any, **options: Any) -> None:
        """``call_command("conveyor", "status")`` from code or tests."""
        conveyor_cli.main(args=list(args), prog_name="conveyor", standalone_mode=False)
