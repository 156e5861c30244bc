"""The REST routers, one module per resource; `ROUTERS` is what the app includes."""

from fastapi import APIRouter

from rustok_ref.api.routes import admin, health, orders, products, tenants

ROUTERS: list[APIRouter] = [
    health.router,
    tenants.router,
    products.router,
    orders.router,
    admin.router,
]

__all__ = ["ROUTERS"]
