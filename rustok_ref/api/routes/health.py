"""Liveness, readiness and the metrics endpoint."""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from rustok_ref.api.context import api_state
from rustok_ref.api.metrics import CONTENT_TYPE_LATEST
from rustok_ref.api.readiness import check_readiness

router = APIRouter(tags=["health"])

READYZ_RETRY_AFTER_S: Final = 5


@router.get("/healthz", summary="The process is up (nothing else is checked).")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Whether this instance should get traffic; 503 names the failing checks.",
    response_class=JSONResponse,
)
async def readyz(request: Request) -> JSONResponse:
    readiness = await check_readiness(api_state(request))
    checks = {name: check.as_json() for name, check in readiness.checks.items()}
    if readiness.ready:
        return JSONResponse({"status": "ready", "checks": checks})
    return JSONResponse(
        {"status": "not_ready", "failing": readiness.failing, "checks": checks},
        status_code=503,
        headers={"Retry-After": str(READYZ_RETRY_AFTER_S)},
    )


@router.get("/metrics", summary="Prometheus metrics.", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(api_state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
