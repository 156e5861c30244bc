"""Liveness and the metrics endpoint (readiness joins them)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from rustok_ref.api.context import api_state
from rustok_ref.api.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up (nothing else is checked).")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", summary="Prometheus metrics.", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(api_state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
