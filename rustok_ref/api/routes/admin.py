"""REST: the admin's controls over their tenant, and the lab's levers.

Flags (`flags:manage`), the tenant's outbox and its dead letters (`events:manage`), and the
controls a scenario pulls (`lab:control`): flush this process's caches, load its in-process
dispatcher with a burst, and inject faults into the tenant's stand-in providers. Every
route needs an admin key; the tenant is always the request's.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, StrictBool

from rustok_ref.api import outbox_admin
from rustok_ref.api.auth import Permission
from rustok_ref.api.burst import BurstResult, burst
from rustok_ref.api.context import RequestContext, require
from rustok_ref.api.schemas import PROBLEM_RESPONSES
from rustok_ref.commerce.providers.standin import Operation
from rustok_ref.errors import NotFoundError
from rustok_ref.events.outbox import OutboxStatus, replay_dead
from rustok_ref.features.model import BUCKETS, Feature, FlagState

router = APIRouter(prefix="/admin", tags=["admin"], responses=PROBLEM_RESPONSES)

FlagsAdmin = Annotated[RequestContext, Depends(require(Permission.FLAGS_MANAGE))]
EventsAdmin = Annotated[RequestContext, Depends(require(Permission.EVENTS_MANAGE))]
LabControl = Annotated[RequestContext, Depends(require(Permission.LAB_CONTROL))]

MAX_BURST: Final = 100_000
ProviderName = Literal["payment", "shipping"]
# Only the forward calls fail: the compensations (void, refund, cancel) must still undo
# what a failed checkout did, or a fault would park sagas instead of cancelling orders.
PROVIDER_OPERATIONS: Final[dict[str, tuple[Operation, ...]]] = {
    "payment": (Operation.AUTHORISE, Operation.CAPTURE),
    "shipping": (Operation.CREATE_SHIPMENT,),
}


class Flag(BaseModel):
    """A feature's flag for the tenant; version 0: never set, so the default (off)."""

    feature: Feature
    enabled: bool
    rollout: int
    version: int

    @classmethod
    def of(cls, feature: Feature, state: FlagState | None) -> Flag:
        if state is None:
            return cls(feature=feature, enabled=False, rollout=BUCKETS, version=0)
        return cls(
            feature=feature, enabled=state.enabled, rollout=state.rollout, version=state.version
        )


class FlagUpdate(BaseModel):
    enabled: StrictBool
    rollout: int = Field(default=BUCKETS, ge=0, le=BUCKETS, description="Percent of tenants.")


class Replayed(BaseModel):
    id: UUID
    status: OutboxStatus


class Flushed(BaseModel):
    flushed: list[str]


class BurstRequest(BaseModel):
    count: int = Field(ge=1, le=MAX_BURST, description="Events to submit at once.")


class FaultIn(BaseModel):
    failure_rate: float = Field(ge=0.0, le=1.0, description="Probability a call fails.")
    latency_ms: int = Field(ge=0, description="Delay before each call.")


class FaultOut(BaseModel):
    provider: ProviderName
    failure_rate: float
    latency_ms: int
    operations: list[Operation]


@router.get("/flags", summary="Every feature's flag for the tenant (stored or default).")
async def list_flags(context: FlagsAdmin) -> list[Flag]:
    stored = await context.services.flag_store.load(context.tenant.id)
    return [Flag.of(feature, stored.get(feature)) for feature in Feature]


@router.put("/flags/{feature}", summary="Switch a feature for the tenant (caches follow).")
async def set_flag(feature: Feature, update: FlagUpdate, context: FlagsAdmin) -> Flag:
    """An unknown feature is a 400 naming the known ones (the path's enum)."""
    state = await context.services.flag_store.set(
        context.tenant.id, feature, enabled=update.enabled, rollout=update.rollout
    )
    return Flag.of(feature, state)


@router.get("/events/outbox", summary="The tenant's outbox rows by status.")
async def outbox_summary(context: EventsAdmin) -> outbox_admin.TenantBacklog:
    async with context.uow() as uow:
        return await outbox_admin.tenant_backlog(uow)


@router.get("/events/dead-letters", summary="The tenant's dead outbox rows, oldest first.")
async def list_dead_letters(
    context: EventsAdmin, limit: Annotated[int, Query(ge=1, le=1_000)] = 50
) -> list[outbox_admin.DeadLetter]:
    async with context.uow() as uow:
        return await outbox_admin.dead_letters(uow, limit)


@router.post(
    "/events/dead-letters/{event_id}/replay",
    summary="Make a dead event due again; the relay publishes it and unblocks its aggregate.",
)
async def replay_dead_letter(event_id: UUID, context: EventsAdmin) -> Replayed:
    async with context.uow() as uow:
        if not await replay_dead(uow, event_id):
            raise NotFoundError(f"no dead event {event_id} in this tenant's outbox")
        await uow.commit()
    return Replayed(id=event_id, status=OutboxStatus.PENDING)


@router.post("/caches/flush", summary="Empty this process's tenant, flag and product caches.")
async def flush_caches(context: LabControl) -> Flushed:
    services = context.services
    services.tenant_cache.invalidate_all()
    services.flag_cache.invalidate_all()
    services.product_cache.invalidate_all()
    return Flushed(flushed=["tenant", "flags", "products"])


@router.post("/events/burst", summary="Submit `count` events to the in-process dispatcher.")
async def event_burst(request: BurstRequest, context: LabControl) -> BurstResult:
    return await burst(context.api.dispatcher, request.count)


@router.put("/providers/{provider}", summary="Inject a fault into a stand-in provider.")
async def set_provider_fault(
    provider: ProviderName, fault: FaultIn, context: LabControl
) -> FaultOut:
    operations = PROVIDER_OPERATIONS[provider]
    for operation in operations:
        await context.services.provider_faults.set(
            context.tenant.id,
            operation,
            failure_rate=fault.failure_rate,
            latency_ms=fault.latency_ms,
        )
    return FaultOut(
        provider=provider,
        failure_rate=fault.failure_rate,
        latency_ms=fault.latency_ms,
        operations=list(operations),
    )
