"""The composition root wires a working graph against the real services."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from rustok_ref.bootstrap import wire
from rustok_ref.config import Settings
from rustok_ref.telemetry import in_memory_tracing

pytestmark = pytest.mark.integration


async def test_wire_builds_a_graph_that_reaches_both_services(app_settings: Settings) -> None:
    provider, exporter = in_memory_tracing()
    async with wire(app_settings, tracer_provider=provider) as container:
        async with container.sessions() as session:
            assert (await session.execute(text("SELECT current_database()"))).scalar_one() == (
                app_settings.database_url or ""
            ).rsplit("/", 1)[1]
        key = container.key("bootstrap", "probe")
        assert key.startswith(app_settings.redis_prefix)
        await container.redis.set(key, "1", ex=60)
        assert await container.redis.get(key) == b"1"
        with container.tracer_provider.get_tracer("t").start_as_current_span("probe"):
            pass
    assert [span.name for span in exporter.get_finished_spans()] == ["probe"]


async def test_wire_refuses_settings_without_urls() -> None:
    with pytest.raises(ValueError, match="RUSTOK_REDIS_URL"):
        async with wire(Settings(database_url=None, redis_url=None, _env_file=None)):
            pass
