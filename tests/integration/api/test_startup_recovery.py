"""Issue 6's start-up recovery: a checkout whose process died mid-saga is finished by the
next API process before it serves, with no operator command. The crash is real (a
subprocess kills itself at a crash point of the checkout's definition); the recovery is the
real `rustok-ref serve` starting over the same database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from api_support import run_server, settings_env
from fixtures.checkout_books import Ledger, read_ledger, stock_product

from rustok_ref.commerce import OrderLineRequest, OrderStatus, Step, create_order, submit_order
from rustok_ref.config import Settings
from rustok_ref.saga import CRASH_EXIT_CODE, Action, CrashPoint, When
from rustok_ref.storage import UnitOfWork, create_engine, create_sessionmaker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RUNNER = Path(__file__).resolve().parents[2] / "fixtures" / "checkout_runner.py"
STOCK, QUANTITY = 5, 2


async def _placed_order(settings: Settings, tenant: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    engine = create_engine(settings)
    try:
        sessions = create_sessionmaker(engine)
        product = await stock_product(sessions, tenant, stock=STOCK)
        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            order = await create_order(
                uow, currency="EUR", lines=[OrderLineRequest(product.sku, QUANTITY)]
            )
            await submit_order(uow, order.id)
            await uow.commit()
        return order.id, product.id
    finally:
        await engine.dispose()


async def _ledger_of(settings: Settings, tenant: uuid.UUID) -> Ledger:
    engine = create_engine(settings)
    try:
        return await read_ledger(create_sessionmaker(engine), tenant)
    finally:
        await engine.dispose()


def test_a_crashed_checkout_is_finished_when_the_api_starts(
    app_settings: Settings, tmp_path: Path
) -> None:
    tenant = uuid.uuid4()
    order_id, product_id = asyncio.run(_placed_order(app_settings, tenant))
    point = CrashPoint("checkout", Step.AUTHORISE_PAYMENT, When.AFTER, Action.EXECUTE)
    crashed = subprocess.run(
        [sys.executable, str(RUNNER), "persisted", str(tenant), str(order_id)],
        env={
            **os.environ,
            **settings_env(app_settings),
            "RUSTOK_TEST_HOOKS": "1",
            "RUSTOK_CRASH_AT": str(point),
        },
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stdout + crashed.stderr
    before = asyncio.run(_ledger_of(app_settings, tenant))
    assert before.orders[order_id].status == OrderStatus.PENDING_PAYMENT

    # workers off: only the start-up recovery may finish it
    with run_server(app_settings, tmp_path, env={"RUSTOK_API_RUN_WORKERS": "false"}):
        after = asyncio.run(_ledger_of(app_settings, tenant))

    books = after.orders[order_id]
    assert (books.status, books.saga_state) == (OrderStatus.PAID, "completed")
    assert books.fully_paid
    assert after.violations({product_id: STOCK}, settled=True) == []
