"""Replica health events: what one gateway process learns about an upstream, the others
apply to their own state.

When this process opens a deployment's circuit (or cools it on a 429), or cools, blocks
or revokes one of an endpoint's API keys, :class:`ReplicaSync` publishes an event through
the state backend; every other replica applies it to its own
:class:`~coop._health.DeploymentState` / :class:`~coop._health.KeyPool`. Events carry
*durations* ("cool deployment D for 5 s"), never timestamps, so replicas whose clocks
disagree agree on what to do; and a key's *index* on its endpoint, never the key.
Applying is idempotent (a deadline is only ever extended) and a replica ignores its own
events (each carries the sender's random ``origin``).

The request path pays nothing: the hooks run only on failures, and then only put the
event on a bounded in-memory queue (dropped when full, counted); a background task
started in the server's lifespan publishes from there, and another applies what arrives.
"""

from __future__ import annotations

import logging
import math
import secrets
from typing import Any

import anyio

from ._state import StateBackend

__all__ = ["ReplicaSync"]

log = logging.getLogger("coop.state")

#: Event types this module sends and applies.
COOL = "health.cool"
KEY = "health.key"


class ReplicaSync:
    """Publishes this process's health changes and applies the other replicas'."""

    def __init__(self, engine: Any, state: StateBackend, *, queue: int = 1000) -> None:
        self.engine = engine
        self.state = state
        #: This process, as event senders go (its own events come back from pub/sub).
        self.origin = secrets.token_hex(8)
        self.published = 0
        self.applied = 0
        self.dropped = 0
        self._send, self._receive = anyio.create_memory_object_stream[dict[str, Any]](queue)
        self._deployments: dict[str, list[Any]] = {}
        self._pools: dict[str, Any] = {}
        #: Set at shutdown: the backend is closing, its errors are expected.
        self.closing = False

    def attach(self) -> None:
        """Hook into the engine's deployments and key pools (after it is initialized)."""
        for model in self.engine.models.values():
            for deployment in model.deployments:
                deployment.on_cool = self._on_cool
                self._deployments.setdefault(deployment.id, []).append(deployment)
        for endpoint, pool in getattr(self.engine, "_pools", {}).items():
            pool.on_change = self._key_hook(endpoint)
            self._pools[endpoint] = pool

    # -- this process's changes: onto the queue, never awaited on the request path --------

    def _on_cool(self, deployment: Any, seconds: float) -> None:
        # the same upstream serves other logical models here too: they avoid it as well
        for sibling in self._deployments.get(deployment.id, ()):
            if sibling is not deployment:
                sibling.cool(seconds)
        self._queue({"type": COOL, "deployment": deployment.id, "for": _seconds(seconds)})

    def _key_hook(self, endpoint: str) -> Any:
        def on_change(key: Any, kind: str, seconds: float, model: str | None) -> None:
            event = {
                "type": KEY,
                "endpoint": endpoint,
                "key": key.index,
                "kind": kind,
                "for": _seconds(seconds),
            }
            if model is not None:
                event["model"] = model
            self._queue(event)

        return on_change

    def _queue(self, event: dict[str, Any]) -> None:
        event["origin"] = self.origin
        try:
            self._send.send_nowait(event)
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.dropped += 1

    # -- the other replicas' changes ---------------------------------------------------

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply another replica's event; ``False`` for our own, unknown or malformed ones."""
        if event.get("origin") == self.origin:
            return False
        try:
            seconds = float(event["for"])
        except (KeyError, TypeError, ValueError):
            return False
        if not math.isfinite(seconds) or seconds <= 0:
            return False
        seconds = min(seconds, 3600.0)  # a bad sender cannot shelve a deployment for good
        kind = event.get("type")
        changed = False
        if kind == COOL:
            for deployment in self._deployments.get(str(event.get("deployment")), ()):
                changed = deployment.cool(seconds) or changed
        elif kind == KEY:
            pool = self._pools.get(str(event.get("endpoint")))
            index = event.get("key")
            if pool is not None and isinstance(index, int):
                model = event.get("model")
                changed = pool.apply(
                    index,
                    str(event.get("kind")),
                    seconds,
                    model if isinstance(model, str) else None,
                )
        if changed:
            self.applied += 1
        return changed

    # -- the background tasks -----------------------------------------------------------

    async def run(self) -> None:
        """Publish the queue and apply incoming events until cancelled (the lifespan)."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._publish_loop)
            tasks.start_soon(self._listen_loop)

    async def _publish_loop(self) -> None:
        async with self._receive:
            async for event in self._receive:
                try:
                    await self.state.publish(event)
                    self.published += 1
                except Exception as exc:  # a lost event only costs another replica a retry
                    self.dropped += 1
                    log.debug("state: could not publish %s: %s", event.get("type"), exc)

    async def _listen_loop(self) -> None:
        while True:
            try:
                async for event in self.state.events():
                    if isinstance(event, dict):
                        self.apply(event)
            except Exception as exc:
                if self.closing:
                    return
                log.warning("state: the event stream failed (%s); listening again", exc)
            await anyio.sleep(1.0)

    def describe(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "events_published": self.published,
            "events_applied": self.applied,
            "events_dropped": self.dropped,
        }


def _seconds(value: float) -> float:
    return round(max(value, 0.0), 3)
