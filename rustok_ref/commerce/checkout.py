"""The checkout saga (A1) and the service that pays an order with it.

Steps, each compensated in reverse when a later one fails for good:

| step | execute | compensate |
|---|---|---|
| reserve_inventory | hold every line's stock | give it back, cancel the order |
| authorise_payment | provider authorises the total | provider voids it |
| create_shipment | carrier books the shipment | carrier cancels the booking |
| capture_payment | provider captures; the order is Paid | provider refunds the capture |

Every step calls its provider with the step's idempotency key and then records the answer
in our books in a transaction of its own, so a re-run after a crash (recovery) makes no
second effect and finishes the recording. A compensation undoes what the execute's key did,
and nothing when it did nothing. The first step's compensation, the last to run, also
cancels the order (unless its customer did already) and announces `saga.compensated`; the
capture's recording makes the order Paid and announces `saga.completed`, in one
transaction with the payment's capture, so no order is Paid without a captured payment and
no payment captured in our books without a Paid order.

`CheckoutService.pay` starts the saga in the transaction that marks the order as being
paid (so paying twice is refused), then waits for it up to the sync wait (the
`RUSTOK_SAGA_SYNC_WAIT` the settings will carry, 2 s) and otherwise answers that it is in
progress, with the saga's id; the saga runs on, and recovery takes it up after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol
from uuid import UUID, uuid4

from opentelemetry import trace
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.commerce.events import SagaCompensated, SagaCompleted, SagaStarted
from rustok_ref.commerce.inventory import release_stock, reserve_stock
from rustok_ref.commerce.money import Money
from rustok_ref.commerce.orders import (
    MAX_REASON_BYTES,
    cancel_order,
    get_order,
    mark_paid,
    start_checkout,
)
from rustok_ref.commerce.payments import record_authorisation, record_capture, record_refund
from rustok_ref.commerce.payments import record_void as record_payment_void
from rustok_ref.commerce.providers.port import (
    PaymentProvider,
    ProviderRejectedError,
    ShippingProvider,
)
from rustok_ref.commerce.providers.registry import payment_provider, shipping_provider
from rustok_ref.commerce.recording import claim_effect, publish
from rustok_ref.commerce.shipments import record_booking, record_cancellation
from rustok_ref.commerce.states import OrderEvent, OrderStatus, allowed_events
from rustok_ref.config import Settings
from rustok_ref.errors import (
    ConflictError,
    InvalidTransitionError,
    NotFoundError,
    ValidationError,
)
from rustok_ref.events.relay import truncate_utf8
from rustok_ref.saga.definition import RetryPolicy, SagaDefinition, SagaStep, StepContext
from rustok_ref.saga.log import SagaInstance, SagaLog, SagaState
from rustok_ref.saga.orchestrator import SagaOrchestrator
from rustok_ref.storage.unit_of_work import UnitOfWork

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

SAGA_NAME: Final = "checkout"
DEFAULT_SYNC_WAIT_S: Final = 2.0
PERMANENT_ERRORS: Final = (ValidationError, NotFoundError, ConflictError, InvalidTransitionError)
"""Failures a retry cannot mend (a provider's refusal is a ConflictError): the step
compensates at once."""
DEFAULT_RETRY: Final = RetryPolicy(
    attempts=3, initial_interval_s=0.2, max_interval_s=2.0, non_retryable=PERMANENT_ERRORS
)
_PAID_OR_LATER: Final = (OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED)


class Step(StrEnum):
    RESERVE_INVENTORY = "reserve_inventory"
    AUTHORISE_PAYMENT = "authorise_payment"
    CREATE_SHIPMENT = "create_shipment"
    CAPTURE_PAYMENT = "capture_payment"


class CheckoutLine(BaseModel):
    product_id: UUID
    quantity: int


class CheckoutData(BaseModel):
    """The saga's data: the order as paying it needs, then what each step obtained."""

    order_id: UUID
    payment_id: UUID
    shipment_id: UUID
    amount: int
    currency: str
    lines: list[CheckoutLine]
    reserved: bool = False
    authorisation_id: str | None = None
    booking_id: str | None = None
    capture_id: str | None = None

    @property
    def total(self) -> Money:
        return Money(self.amount, self.currency)


def checkout_saga(
    sessions: async_sessionmaker[AsyncSession],
    payments: PaymentProvider,
    shipping: ShippingProvider,
    *,
    name: str = SAGA_NAME,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> SagaDefinition[CheckoutData]:
    """The checkout's definition (another `name` keeps a test's sagas apart from others')."""
    log = SagaLog(sessions)

    def books(ctx: StepContext) -> UnitOfWork:
        return UnitOfWork(sessions, tenant_id=ctx.tenant_id)

    async def reserve(ctx: StepContext, data: CheckoutData) -> CheckoutData:
        lines = [(line.product_id, line.quantity) for line in data.lines]
        async with books(ctx) as uow:
            await reserve_stock(uow, key=ctx.idempotency_key, order_id=data.order_id, lines=lines)
            await uow.commit()
        return data.model_copy(update={"reserved": True})

    async def failure(ctx: StepContext) -> str:
        try:
            saga = await log.get(ctx.saga_id, tenant_id=ctx.tenant_id)
        except NotFoundError:  # steps driven without a saga log (the review's sketch)
            return "no saga log"
        return saga.failure_reason or "compensated"

    async def release_and_cancel(ctx: StepContext, data: CheckoutData) -> CheckoutData:
        reason = truncate_utf8(f"checkout failed: {await failure(ctx)}", MAX_REASON_BYTES)
        async with books(ctx) as uow:
            if await claim_effect(uow, ctx.idempotency_key):
                await release_stock(uow, reserve_key=ctx.execute_key)
                order = await get_order(uow, data.order_id)
                if OrderEvent.CANCEL in allowed_events(order.status):
                    await cancel_order(uow, data.order_id, reason=reason)
                compensated = SagaCompensated(
                    saga_id=ctx.saga_id,
                    saga_type=ctx.saga_type,
                    subject_id=data.order_id,
                    reason=reason,
                )
                await publish(uow, ctx.tenant_id, [compensated])
            await uow.commit()
        return data.model_copy(update={"reserved": False})

    async def authorise(ctx: StepContext, data: CheckoutData) -> CheckoutData:
        held = await payments.authorise(
            key=ctx.idempotency_key,
            tenant_id=ctx.tenant_id,
            order_id=data.order_id,
            amount=data.total,
        )
        async with books(ctx) as uow:
            await record_authorisation(
                uow,
                data.payment_id,
                order_id=data.order_id,
                amount=held.amount,
                authorisation_id=held.id,
            )
            await uow.commit()
        return data.model_copy(update={"authorisation_id": held.id})

    async def void(ctx: StepContext, data: CheckoutData) -> CheckoutData:
        voided = await payments.void(
            key=ctx.idempotency_key, tenant_id=ctx.tenant_id, authorise_key=ctx.execute_key
        )
        if voided is not None:
            async with books(ctx) as uow:
                await record_payment_void(uow, data.payment_id)
                await uow.commit()
        return data

    async def book(ctx: StepContext, data: CheckoutData) -> CheckoutData:
        booking = await shipping.create_shipment(
            key=ctx.idempotency_key,
            tenant_id=ctx.tenant_id,
            order_id=data.order_id,
            parcels=sum(line.quantity for line in data.lines),
        )
        async with books(ctx) as uow:
            await record_booking(uow, data.shipment_id, order_id=data.order_id, booking=booking)
            await uow.commit()
        return data.model_copy(update={"booking_id": booking.id})

    async def cancel_booking(ctx: StepContext, data: CheckoutData) -> CheckoutData:
        cancelled = await shipping.cancel_shipment(
            key=ctx.idempotency_key, tenant_id=ctx.tenant_id, create_key=ctx.execute_key
        )
        if cancelled is not None:
            async with books(ctx) as uow:
                await record_cancellation(uow, data.order_id)
                await uow.commit()
        return data

    async def capture(ctx: StepContext, data: CheckoutData) -> CheckoutData:
        if data.authorisation_id is None:
            raise ProviderRejectedError("nothing to capture: no authorisation reached this step")
        taken = await payments.capture(
            key=ctx.idempotency_key,
            tenant_id=ctx.tenant_id,
            authorisation_id=data.authorisation_id,
            amount=data.total,
        )
        async with books(ctx) as uow:
            if await record_capture(uow, data.payment_id, capture_id=taken.id):
                await mark_paid(uow, data.order_id, payment_id=data.payment_id, amount=taken.amount)
                completed = SagaCompleted(
                    saga_id=ctx.saga_id, saga_type=ctx.saga_type, subject_id=data.order_id
                )
                await publish(uow, ctx.tenant_id, [completed])
            await uow.commit()
        return data.model_copy(update={"capture_id": taken.id})

    async def refund(ctx: StepContext, data: CheckoutData) -> CheckoutData:
        async with books(ctx) as uow:
            order = await get_order(uow, data.order_id)
        if order.status in _PAID_OR_LATER:
            # the capture was recorded (its commit's answer was lost): it stands, and the
            # saga parks for a person to look at rather than refund a paid order
            raise ConflictError(f"order {data.order_id} is {order.status}; not refunding it")
        returned = await payments.refund(
            key=ctx.idempotency_key, tenant_id=ctx.tenant_id, capture_key=ctx.execute_key
        )
        if returned is not None:
            async with books(ctx) as uow:
                await record_refund(
                    uow, data.payment_id, refund_id=returned.id, capture_id=returned.capture_id
                )
                await uow.commit()
        return data

    return SagaDefinition(
        name,
        CheckoutData,
        (
            SagaStep(Step.RESERVE_INVENTORY, reserve, release_and_cancel, retry),
            SagaStep(Step.AUTHORISE_PAYMENT, authorise, void, retry),
            SagaStep(Step.CREATE_SHIPMENT, book, cancel_booking, retry),
            SagaStep(Step.CAPTURE_PAYMENT, capture, refund, retry),
        ),
    )


class Wired(Protocol):
    """What the saga factory needs of the composition root's container."""

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...

    @property
    def settings(self) -> Settings: ...


def definitions(container: Wired) -> list[SagaDefinition[Any]]:
    """The factory `rustok-ref saga recover` loads by default: the checkout on the providers
    the settings name (RUSTOK_PAYMENT_PROVIDER, RUSTOK_SHIPPING_PROVIDER)."""
    sessions, settings = container.sessions, container.settings
    return [
        checkout_saga(
            sessions,
            payment_provider(settings.payment_provider, sessions),
            shipping_provider(settings.shipping_provider, sessions),
        )
    ]


class CheckoutStatus(StrEnum):
    PAID = "paid"
    CANCELLED = "cancelled"
    FAILED = "failed"
    """Parked: a compensation kept failing; `SagaOrchestrator.retry` resumes it."""
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True, slots=True)
class CheckoutOutcome:
    """Where an order's payment stands: its checkout saga's id and how it ended, if it did."""

    status: CheckoutStatus
    order_id: UUID
    saga_id: UUID
    reason: str | None = None

    @classmethod
    def of(cls, saga: SagaInstance) -> CheckoutOutcome:
        status = {
            SagaState.COMPLETED: CheckoutStatus.PAID,
            SagaState.COMPENSATED: CheckoutStatus.CANCELLED,
            SagaState.FAILED: CheckoutStatus.FAILED,
        }.get(saga.state, CheckoutStatus.IN_PROGRESS)
        reason = None if status is CheckoutStatus.PAID else saga.failure_reason
        return cls(status, UUID(saga.data["order_id"]), saga.id, reason)


class CheckoutService:
    """Pays orders with the checkout saga; one per process (it owns the runs it started)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        orchestrator: SagaOrchestrator,
        definition: SagaDefinition[CheckoutData],
        *,
        sync_wait_s: float = DEFAULT_SYNC_WAIT_S,
    ) -> None:
        if sync_wait_s < 0:
            raise ValueError("sync_wait_s must not be negative")
        self._sessions = sessions
        self._orchestrator = orchestrator
        self._definition = definition
        self._sync_wait_s = sync_wait_s
        self._running: set[asyncio.Task[SagaInstance]] = set()

    async def pay(
        self, tenant_id: UUID, order_id: UUID, *, expected_version: int | None = None
    ) -> CheckoutOutcome:
        """Start paying a PendingPayment order and wait for the outcome up to the sync
        wait. InvalidTransitionError for an order in any other state (paid already),
        ConflictError while a checkout of it runs (paying twice) or for a stale version."""
        saga_id = uuid4()
        ids = {"tenant_id": str(tenant_id), "order_id": str(order_id), "saga_id": str(saga_id)}
        with tracer.start_as_current_span("checkout.pay", attributes=ids) as span:
            async with UnitOfWork(self._sessions, tenant_id=tenant_id) as uow:
                order = await start_checkout(
                    uow,
                    order_id,
                    saga_id=saga_id,
                    payment_id=uuid4(),
                    expected_version=expected_version,
                )
                assert order.payment_id is not None  # start_checkout recorded it
                data = CheckoutData(
                    order_id=order_id,
                    payment_id=order.payment_id,
                    shipment_id=uuid4(),
                    amount=order.total.amount,
                    currency=order.total.currency,
                    lines=[
                        CheckoutLine(product_id=line.product_id, quantity=line.quantity)
                        for line in order.lines
                    ],
                )
                started = SagaStarted(
                    saga_id=saga_id, saga_type=self._definition.name, subject_id=order_id
                )
                await publish(uow, tenant_id, [started])
                saga = await self._orchestrator.begin(
                    self._definition, data, tenant_id=tenant_id, saga_id=saga_id, uow=uow
                )
                await uow.commit()
            run = asyncio.create_task(self._orchestrator.run(saga), name=f"checkout-{saga_id}")
            self._running.add(run)
            run.add_done_callback(self._finished)
            done, _ = await asyncio.wait({run}, timeout=self._sync_wait_s)
            outcome = CheckoutOutcome.of(saga)
            if done:
                with contextlib.suppress(ConflictError):  # another runner (recovery) has it
                    outcome = CheckoutOutcome.of(run.result())
            span.set_attribute("checkout.status", outcome.status.value)
            return outcome

    async def outcome(self, tenant_id: UUID, saga_id: UUID) -> CheckoutOutcome:
        """The checkout's outcome now (NotFoundError for an unknown saga)."""
        return CheckoutOutcome.of(await self._orchestrator.log.get(saga_id, tenant_id=tenant_id))

    async def drain(self) -> None:
        """Wait for every checkout this service started (at shutdown; in tests)."""
        while self._running:
            await asyncio.wait(set(self._running))

    def _finished(self, run: asyncio.Task[SagaInstance]) -> None:
        self._running.discard(run)
        if not run.cancelled() and run.exception() is not None:
            logger.error(
                "%s stopped: %r (recovery will take it up)", run.get_name(), run.exception()
            )
