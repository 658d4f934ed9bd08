"""The ingest gateway served by granian instead of uvicorn (a bench probe, no change to it).

    uv run --group bench python -m bench.granian_gateway

The same app (``darkroom.ingest.app.create_runtime``), its lifespan and settings, served by
granian's embedded server in this one process: ASGI on uvloop, HTTP/1, one Rust runtime
thread, no access log. (Granian calls the embedded mode experimental; its multi-process mode
would add a supervising process to the RSS the memory target counts.)
``bench.ingest_throughput --server granian`` starts the gateway this way.
"""

from __future__ import annotations

import asyncio
import signal

import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.server.embed import Server

from darkroom.ingest.app import create_runtime


async def serve() -> None:
    runtime = create_runtime()
    server = Server(
        runtime.app,
        address=runtime.settings.http_host,
        port=runtime.settings.http_port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,
        runtime_threads=1,
        websockets=False,
        log_access=False,
    )
    loop = asyncio.get_running_loop()
    for stop in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stop, server.stop)
    await server.serve()


if __name__ == "__main__":
    uvloop.run(serve())
