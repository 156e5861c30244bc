"""`orderStatusChanged` over a real WebSocket (graphql-transport-ws) against two worker
processes: the changes come from the Redis stream whichever worker made them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from api_support import LIVENESS_S, ApiServer, TenantKeys, eventually, make_tenant, run_server
from test_graphql import CREATE_ORDER, data, new_product
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from rustok_ref.config import Settings

IDLE_S = 6.0  # longer than redis-py's default socket timeout (5 s)
SUBSCRIBE = """
subscription ($id: UUID!) { orderStatusChanged(orderId: $id) { orderId status previousStatus } }
"""


@pytest.fixture(scope="module")
def two_workers(
    app_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    with run_server(app_settings, tmp_path_factory.mktemp("graphql-ws"), workers=2) as server:
        yield server


@pytest.fixture(scope="module")
def shop(app_settings: Settings) -> TenantKeys:
    return make_tenant(app_settings, "Subscribed shop")


@asynccontextmanager
async def graphql_socket(
    server: ApiServer, init: dict[str, str]
) -> AsyncIterator[ClientConnection]:
    """A graphql-transport-ws connection, `init` sent as the connection_init payload."""
    url = server.base_url.replace("http://", "ws://") + "/graphql"
    async with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": init}))
        yield socket


async def receive(socket: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), LIVENESS_S))
    return message


async def subscribe(socket: ClientConnection, order_id: str) -> None:
    assert (await receive(socket))["type"] == "connection_ack"
    payload = {"query": SUBSCRIBE, "variables": {"id": order_id}}
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))


def placed_order(server: ApiServer, shop: TenantKeys) -> str:
    """A new order of `shop`, once the read index has it: its id."""
    with (
        server.client(shop.slug, shop.staff) as staff,
        server.client(shop.slug, shop.customer) as customer,
    ):
        product = new_product(staff)
        lines = [{"sku": product["sku"], "quantity": 1}]
        order_id: str = data(customer, CREATE_ORDER, input={"lines": lines})["createOrder"]["id"]
        read = "query ($id: UUID!) { order(id: $id) { id } }"
        eventually(lambda: data(customer, read, id=order_id)["order"], "the order in the index")
    return order_id


def submit_and_pay(client: httpx.Client, order_id: str) -> None:
    data(client, "mutation ($id: UUID!) { submitOrder(id: $id) { id } }", id=order_id)
    data(client, "mutation ($id: UUID!) { payOrder(id: $id) { status } }", id=order_id)


async def test_a_subscriber_sees_pending_payment_then_paid(
    two_workers: ApiServer, shop: TenantKeys
) -> None:
    order_id = await asyncio.to_thread(placed_order, two_workers, shop)
    init = {"X-Tenant-ID": shop.slug, "X-API-Key": shop.customer}
    async with graphql_socket(two_workers, init) as socket:
        await subscribe(socket, order_id)
        first = await receive(socket)
        assert first["payload"]["data"]["orderStatusChanged"] == {
            "orderId": order_id,
            "status": "DRAFT",
            "previousStatus": None,
        }
        with two_workers.client(shop.slug, shop.customer) as customer:
            await asyncio.to_thread(submit_and_pay, customer, order_id)
        changes = [(await receive(socket))["payload"]["data"]["orderStatusChanged"] for _ in "ab"]
    assert [(change["previousStatus"], change["status"]) for change in changes] == [
        ("DRAFT", "PENDING_PAYMENT"),
        ("PENDING_PAYMENT", "PAID"),
    ]


async def test_another_tenants_order_cannot_be_followed(
    two_workers: ApiServer, shop: TenantKeys, app_settings: Settings
) -> None:
    order_id = await asyncio.to_thread(placed_order, two_workers, shop)
    other = await asyncio.to_thread(make_tenant, app_settings, "Other shop")
    init = {"X-Tenant-ID": other.slug, "X-API-Key": other.customer}
    async with graphql_socket(two_workers, init) as socket:
        await subscribe(socket, order_id)
        refused = await receive(socket)
    assert (refused["type"], refused["payload"]["data"]) == ("next", None)
    assert [error["extensions"] for error in refused["payload"]["errors"]] == [
        {"code": "NOT_FOUND", "kind": "not_found"}
    ]


async def test_a_connection_with_a_bad_key_is_closed_before_any_subscription(
    two_workers: ApiServer, shop: TenantKeys
) -> None:
    init = {"X-Tenant-ID": shop.slug, "X-API-Key": "rk_000000000000_nope"}
    async with graphql_socket(two_workers, init) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            await receive(socket)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_an_idle_stream_lives_on_and_completes_when_the_order_is_cancelled(
    two_workers: ApiServer, shop: TenantKeys
) -> None:
    order_id = await asyncio.to_thread(placed_order, two_workers, shop)
    init = {"X-Tenant-ID": shop.slug, "X-API-Key": shop.customer}
    async with graphql_socket(two_workers, init) as socket:
        await subscribe(socket, order_id)
        assert (await receive(socket))["payload"]["data"]["orderStatusChanged"]["status"] == "DRAFT"
        await asyncio.sleep(IDLE_S)  # no XREAD may outlast the Redis client's socket timeout
        cancel = "mutation ($id: UUID!) { cancelOrder(id: $id) { status } }"
        with two_workers.client(shop.slug, shop.customer) as customer:
            await asyncio.to_thread(data, customer, cancel, id=order_id)
        cancelled = await receive(socket)
        completed = await receive(socket)
    assert cancelled["payload"]["data"]["orderStatusChanged"]["status"] == "CANCELLED"
    assert completed == {"id": "1", "type": "complete"}
