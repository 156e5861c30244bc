"""`orderStatusChanged`: an order's status changes, read from the order events' Redis stream.

The relay publishes every order event to `<prefix>events:order` (`relay.stream_name`) with
the tenant, aggregate id, type and version beside the envelope, so a subscriber XREADs the
stream from its end and keeps its tenant's `order.status_changed` entries for its order.
Plain XREAD, not a consumer group: every subscriber, on whichever worker process, sees
every entry, so a change made through another worker reaches it.

Without a first message a client cannot know when its subscription is live, so a change
made right after subscribing could race the first XREAD. The feed therefore notes the
stream's end, then reads the order from the read index and sends that status first, then
every change after the noted end whose version is newer than the index's. A change the
index had not yet applied when the stream's end was noted is not sent again (the first
message may lag by it; the read index is eventually consistent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final
from uuid import UUID

import redis.asyncio as aioredis

from rustok_ref.api.context import RequestContext
from rustok_ref.api.graphql.lookups import indexed_order
from rustok_ref.api.graphql.types import OrderStatusChange
from rustok_ref.commerce.orders import ORDER_AGGREGATE
from rustok_ref.commerce.states import ORDER_TABLE, OrderStatus
from rustok_ref.errors import NotFoundError
from rustok_ref.events.envelope import OrderStatusChanged, decode_envelope
from rustok_ref.events.relay import stream_name

__all__ = ["order_status_changes"]

STATUS_CHANGED: Final = b"order.status_changed"
BLOCK_MS: Final = 1_000
"""How long one XREAD waits before the loop reads again: well under the client's socket
timeout (redis-py's default is 5 s), which would otherwise end an idle subscription."""
BATCH: Final = 100


async def _stream_end(redis: aioredis.Redis, stream: str) -> bytes:
    """The id of the stream's last entry (`0-0` while it is empty): XREAD's `$`, noted."""
    last: Any = await redis.xrevrange(stream, count=1)
    return bytes(last[0][0]) if last else b"0-0"


def _entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """XREAD's reply for one stream as (entry id, fields) pairs."""
    return [(entry_id, fields) for _, entries in reply or () for entry_id, fields in entries]


async def order_status_changes(
    caller: RequestContext, order_id: UUID
) -> AsyncIterator[OrderStatusChange]:
    """The order's status now (from the read index), then each change as it is published,
    until a terminal status (delivered, cancelled) ends the stream."""
    container = caller.services.container
    stream = stream_name(container.settings.redis_prefix, ORDER_AGGREGATE.name)
    position = await _stream_end(container.redis, stream)
    row = await indexed_order(caller, order_id)
    if row is None:
        raise NotFoundError(f"order {order_id} not found")
    version, status = row["version"] or 0, OrderStatus(row["status"])
    yield OrderStatusChange(order_id=order_id, status=status, previous_status=None, version=version)
    tenant, aggregate = str(caller.tenant.id).encode(), str(order_id).encode()
    while status not in ORDER_TABLE.terminal:
        reply: Any = await container.redis.xread({stream: position}, count=BATCH, block=BLOCK_MS)
        for entry_id, fields in _entries(reply):
            position = entry_id
            if (
                fields.get(b"type") != STATUS_CHANGED
                or fields.get(b"tenant") != tenant
                or fields.get(b"aggregateid") != aggregate
                or int(fields.get(b"version") or 0) <= version
            ):
                continue
            envelope = decode_envelope(fields[b"envelope"])
            assert isinstance(envelope.payload, OrderStatusChanged)
            version = envelope.aggregate_version or version
            status = OrderStatus(envelope.payload.new_status)
            yield OrderStatusChange(
                order_id=order_id,
                status=status,
                previous_status=OrderStatus(envelope.payload.old_status),
                version=version,
            )
            if status in ORDER_TABLE.terminal:
                break
