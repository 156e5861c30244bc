"""`python -m rustok_ref.lab.load_workers`: the product's background half (outbox relay and
read views, `bootstrap.run_workers`) as a process of its own until SIGTERM or SIGINT.

A load run starts the API with RUSTOK_API_RUN_WORKERS=false and this beside it, so that the
`relay` fault target can kill it mid-run and start it again.
"""

from __future__ import annotations

import asyncio
import signal

from rustok_ref.bootstrap import run_workers, wire
from rustok_ref.config import Settings


async def _run() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with wire(Settings()) as container:
        await run_workers(container, stop)


if __name__ == "__main__":
    asyncio.run(_run())
