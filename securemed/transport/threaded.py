"""A :class:`FederationServer` on its own asyncio loop in a background thread.

For callers that are not async themselves: benchmarks, tests, and a command-line aggregator.
Inside Ray the async actor hosts the server on its own loop instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from securemed.federation.coordinator import FederationCoordinator
from securemed.pki import FederationIdentity
from securemed.transport.server import FederationServer
from securemed.transport.tls import RevocationList

T = TypeVar("T")


class ThreadedFederationServer:
    """Starts serving on ``host`` at a free port on construction; ``close`` stops it.

    ``revocations`` is passed to :class:`FederationServer`: callers on it are refused.
    """

    def __init__(
        self,
        coordinator: FederationCoordinator,
        *,
        identity: FederationIdentity,
        max_message_bytes: int,
        host: str = "127.0.0.1",
        revocations: RevocationList | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.server = FederationServer(
            coordinator,
            identity=identity,
            max_message_bytes=max_message_bytes,
            revocations=revocations,
        )
        try:
            self.port = self.call(self.server.start(host=host, port=0))
        except BaseException:
            self._stop_loop()
            raise
        self.target = f"{host}:{self.port}"

    def __enter__(self) -> ThreadedFederationServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spawn(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Run a coroutine on the server's loop; returns a future to wait on."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        return self.spawn(coroutine).result(timeout_s)

    def close(self) -> None:
        if self._thread.is_alive():
            self.call(self.server.stop(grace_s=0.1))
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
