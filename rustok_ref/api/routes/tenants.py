"""REST: the calling tenant itself (`/tenant`): read it, rename it (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from rustok_ref.api.auth import Permission
from rustok_ref.api.context import RequestContext, require
from rustok_ref.api.schemas import PROBLEM_RESPONSES, Tenant, TenantPatch
from rustok_ref.commerce.products import check_text

router = APIRouter(tags=["tenants"], responses=PROBLEM_RESPONSES)

MAX_NAME_BYTES = 255


@router.get("/tenant", response_model=Tenant, summary="The tenant the request names.")
async def get_tenant(
    context: Annotated[RequestContext, Depends(require(Permission.TENANT_READ))],
) -> Tenant:
    return Tenant.of(context.tenant)


@router.patch("/tenant", response_model=Tenant, summary="Rename the tenant (admin).")
async def rename_tenant(
    body: TenantPatch,
    context: Annotated[RequestContext, Depends(require(Permission.TENANT_MANAGE))],
) -> Tenant:
    name = check_text(body.name, field="name", max_bytes=MAX_NAME_BYTES)
    tenant = context.tenant
    renamed = await context.services.tenants.rename(
        tenant.id, tenant.slug, name=name, expected_version=body.expected_version
    )
    return Tenant.of(renamed)
