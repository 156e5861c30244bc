"""Count database and Redis round trips made by one piece of code.

Counted on the client side (SQLAlchemy's `before_cursor_execute`, and each packed send of a
redis-py connection: one per command, one per pipeline), never from the server's shared
pg_stat views, which other runs on the same server would pollute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis import Redis as SyncRedis
from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass
class RoundTrips:
    """`trips.watch_engine(engine); trips.watch_redis(client); ...; trips.database`"""

    database: int = 0
    redis: int = 0
    redis_connects: int = 0
    _detach: list[Any] = field(default_factory=list, repr=False)

    def reset(self) -> None:
        self.database = 0
        self.redis = 0
        self.redis_connects = 0

    def watch_engine(self, engine: Engine | AsyncEngine) -> None:
        sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

        def on_execute(*_: object) -> None:
            self.database += 1

        event.listen(sync_engine, "before_cursor_execute", on_execute)
        self._detach.append(lambda: event.remove(sync_engine, "before_cursor_execute", on_execute))

    def watch_redis(self, client: SyncRedis | aioredis.Redis) -> None:
        """Count this client's sends. Call it before the client opens its first connection:
        connections already in the pool keep their class. A new connection's handshake
        (HELLO, CLIENT SETINFO) counts once in `redis_connects`, not in `redis`."""
        pool = client.connection_pool
        base = pool.connection_class
        counter = self

        def sent(conn: Any) -> None:
            if not getattr(conn, "_rt_connecting", False):
                counter.redis += 1

        if isinstance(client, aioredis.Redis):

            async def send_async(conn: Any, *args: Any, **kwargs: Any) -> None:
                sent(conn)
                await base.send_packed_command(conn, *args, **kwargs)

            async def connect_async(conn: Any, *args: Any, **kwargs: Any) -> None:
                if conn.is_connected:
                    return
                counter.redis_connects += 1
                conn._rt_connecting = True
                try:
                    await base.connect_check_health(conn, *args, **kwargs)
                finally:
                    conn._rt_connecting = False

            methods: dict[str, Any] = {
                "send_packed_command": send_async,
                "connect_check_health": connect_async,
            }
        else:

            def send_sync(conn: Any, *args: Any, **kwargs: Any) -> None:
                sent(conn)
                base.send_packed_command(conn, *args, **kwargs)

            def connect_sync(conn: Any, *args: Any, **kwargs: Any) -> None:
                if conn._sock is not None:
                    return
                counter.redis_connects += 1
                conn._rt_connecting = True
                try:
                    base.connect_check_health(conn, *args, **kwargs)
                finally:
                    conn._rt_connecting = False

            methods = {"send_packed_command": send_sync, "connect_check_health": connect_sync}
        pool.connection_class = type(f"Counted{base.__name__}", (base,), methods)
        self._detach.append(lambda: setattr(pool, "connection_class", base))

    def close(self) -> None:
        """Stop counting (listeners removed, connection classes restored for new connections)."""
        while self._detach:
            self._detach.pop()()
