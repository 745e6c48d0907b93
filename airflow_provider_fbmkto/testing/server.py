"""Serve an ASGI app on 127.0.0.1 in a background thread: the emulators' real HTTP server."""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType
from typing import Any

import uvicorn


class ThreadedServer:
    """Run ``app`` with uvicorn in a daemon thread on ``host:port`` (port 0 = a free port).

    Usable as a context manager; ``url`` is known once started. Startup waits on uvicorn's own
    ``started`` flag (no busy polling of the socket), bounded by ``startup_timeout``.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 15.0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ThreadedServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._sock = sock
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            limit_concurrency=1000,
            backlog=2048,
        )
        self._server = uvicorn.Server(config)
        started = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            assert self._server is not None
            task = loop.create_task(self._server.serve(sockets=[sock]))

            async def watch() -> None:
                while not self._server.started and not task.done():  # type: ignore[union-attr]
                    await asyncio.sleep(0.01)
                started.set()

            watcher = loop.create_task(watch())
            loop.run_until_complete(task)
            watcher.cancel()
            started.set()
            loop.close()

        self._thread = threading.Thread(target=serve, name=f"emulator-{self.port}", daemon=True)
        self._thread.start()
        if not started.wait(self.startup_timeout) or not self._server.started:
            raise RuntimeError(f"emulator on {self.url} did not start within {self.startup_timeout}s")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
