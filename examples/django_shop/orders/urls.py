from django.urls import path

from orders import views

urlpatterns = [
    path("", views.home, name="home"),
    path("orders", views.place_order, name="place-order"),
    path("orders/<int:order_id>", views.order_detail, name="order"),
    path("exports", views.start_export, name="start-export"),
    path("exports/<uuid:export_id>", views.export_detail, name="export"),
    path("exports/<uuid:export_id>.json", views.export_json, name="export-json"),
    path("exports/<uuid:export_id>/download", views.export_download, name="export-download"),
    path("summaries", views.start_summary, name="start-summary"),
    path("summaries/<str:result_id>", views.summary_detail, name="summary"),
]
