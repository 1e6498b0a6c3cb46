from django.contrib import admin

from orders.models import Export, Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "email", "item", "quantity", "created", "confirmed_at"]
    list_filter = ["item", "confirmed_at"]


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ["id", "created", "finished_at", "rows"]
