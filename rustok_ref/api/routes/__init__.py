"""The REST routers, one module per resource; `ROUTERS` is what the app includes."""

from fastapi import APIRouter

from rustok_ref.api.routes import health

ROUTERS: list[APIRouter] = [health.router]

__all__ = ["ROUTERS"]
