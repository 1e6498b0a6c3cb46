"""The shop's data: orders, and the CSV exports made of them."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse

ITEMS = [
    ("mug", "Conveyor mug"),
    ("tote", "Tote bag"),
    ("stickers", "Sticker pack"),
]


class Order(models.Model):
    email = models.EmailField()
    item = models.CharField(max_length=20, choices=ITEMS)
    quantity = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(99)])
    created = models.DateTimeField(auto_now_add=True)
    # Set by the send_confirmation task once the e-mail is sent.
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Order #{self.pk}: {self.quantity} × {self.get_item_display()}"

    def get_absolute_url(self) -> str:
        return reverse("order", args=[self.pk])


class Export(models.Model):
    """A CSV export of the orders. Its id is also the id of the Conveyor task writing it,
    which holds the progress while it runs; ``finished_at`` is the lasting record."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"Export {self.pk}"

    @property
    def task_id(self) -> str:
        return self.pk.hex

    @property
    def path(self) -> Path:
        return Path(settings.EXPORT_DIR) / f"{self.pk}.csv"

    def get_absolute_url(self) -> str:
        return reverse("export", args=[self.pk])
