"""Views of the test project."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse


def item(request: HttpRequest, item_id: int) -> HttpResponse:
    return JsonResponse({"id": item_id, "traceparent": request.headers.get("traceparent")})


def order(request: HttpRequest, order_id: int) -> HttpResponse:
    return JsonResponse({"order": order_id})


def unavailable(request: HttpRequest) -> HttpResponse:
    return HttpResponse("unavailable", status=503)


def crash(request: HttpRequest) -> HttpResponse:
    raise ZeroDivisionError("crash")


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")
