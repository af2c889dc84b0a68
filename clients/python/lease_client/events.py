"""The service's lifecycle events (GET /v1/events, Server-Sent Events) as a generator.

Mirrors src/client/events.ts: like a browser's EventSource, once connected it reconnects
when the stream ends or breaks, sending Last-Event-ID so that no event the service still
keeps is missed or repeated. Unlike EventSource it raises a refusal (a 4xx), and a first
connection that fails: a wrong URL is an error to report, not something to wait for.
Every connection goes through ``LeaseClient._request``, so it is made in the client's
namespace and carries its token, reconnections included.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

from .errors import BackendUnavailableError

if TYPE_CHECKING:  # pragma: no cover
    from .client import LeaseClient

RECONNECT_MAX_S = 5.0


def parse_frames(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parses text/event-stream lines into frames ``{"id", "event", "data"}`` (one per blank
    line that ends a frame with data; comments and ``retry:`` are skipped)."""
    frame_id: Optional[str] = None
    event: Optional[str] = None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line == "":
            if data:
                yield {"id": frame_id, "event": event or "message", "data": "\n".join(data)}
            frame_id, event, data = None, None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "id":
            frame_id = value
        elif field == "event":
            event = value
        elif field == "data":
            data.append(value)


def stream_events(
    client: "LeaseClient",
    *,
    prefix: Optional[str] = None,
    types: Optional[Sequence[str]] = None,
    last_event_id: Optional[str] = None,
    reconnect: bool = True,
    on_open: Optional[Callable[[], None]] = None,
    on_reconnect: Optional[Callable[[str], None]] = None,
    read_timeout: float = 45.0,
) -> Iterator[dict[str, Any]]:
    """See :meth:`LeaseClient.events`. ``read_timeout``: seconds without a byte (the service
    sends a keepalive every 15 s) after which the stream counts as broken."""
    from .client import _query

    path = "/v1/events" + _query({"prefix": prefix, "types": ",".join(types) if types else None})
    failures = 0
    opened = False
    while True:
        headers = {"accept": "text/event-stream"}
        if last_event_id:
            headers["last-event-id"] = last_event_id
        try:
            response = client._open(client._request("GET", path, headers=headers), read_timeout)
        except BackendUnavailableError as error:
            if not reconnect or not opened:
                raise
            if on_reconnect:
                on_reconnect(error.message)
            _pause(failures, error.retry_after_ms)
            failures += 1
            continue
        failures = 0
        opened = True
        try:
            if on_open:
                on_open()
            lines = (raw.decode("utf-8") for raw in iter(response.readline, b""))
            for frame in parse_frames(lines):
                event = json.loads(frame["data"])
                if isinstance(event, dict):
                    event.setdefault("id", frame["id"])
                    event.setdefault("type", frame["event"])
                if frame["id"]:
                    last_event_id = frame["id"]
                elif isinstance(event, dict) and isinstance(event.get("id"), str):
                    last_event_id = event["id"]
                yield event
            if not reconnect:
                return
            if on_reconnect:
                on_reconnect("the service ended the stream")
        except (OSError, http.client.HTTPException, socket.timeout, ValueError) as error:
            if not reconnect:
                raise BackendUnavailableError(0, f"The event stream broke: {error}") from error
            if on_reconnect:
                on_reconnect(f"the stream broke: {error}")
        finally:
            response.close()


def _pause(failures: int, retry_after_ms: Optional[float]) -> None:
    """Full jitter, capped: a service that is down is not hammered by its watchers."""
    if retry_after_ms is not None:
        time.sleep(retry_after_ms / 1000)
    else:
        time.sleep(random.random() * min(RECONNECT_MAX_S, 0.1 * 2**failures))
