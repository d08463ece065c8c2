"""URLconf of the test project: a path with a converter, an included URLconf, errors."""

from __future__ import annotations

from django.urls import include, path

from django_project import views

orders = [path("orders/<int:order_id>/", views.order)]

urlpatterns = [
    path("items/<int:item_id>/", views.item),
    path("api/v1/", include(orders)),
    path("unavailable/", views.unavailable),
    path("crash/", views.crash),
    path("health", views.health),
]
