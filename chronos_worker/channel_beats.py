"""Heartbeats over the worker channel (lease extension, extension): a `lease.Beat` that sends
`{"type": "heartbeat", "execution_ids": [...], "extend_seconds"?}` and waits for its
`heartbeat_acks` item.

Heartbeats that come due together leave in one message (up to 100 ids, one message per
`extend_seconds` value). A heartbeat not acknowledged within `BEAT_ACK_SECONDS` (the channel is
down, or is being reopened) fails as a transient error, and the lease keeper tries again; an ack
refusing it becomes a `ChronosRequestError` with the ack's code (404 for
`execution_not_found`, 422 for `validation_error`, else 409), as `POST .../heartbeat` would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio
from trio_websocket import WebSocketConnection

from .channel import send_json
from .errors import ChronosRequestError

BEAT_ACK_SECONDS = 10.0
MAX_IDS_PER_MESSAGE = 100


@dataclass(eq=False)
class _Beat:
    """A heartbeat waiting for its ack."""

    execution_id: str
    seconds: int | None
    done: trio.Event = field(default_factory=trio.Event)
    sent: bool = False
    lease_expires_at: str | None = None
    refusal: ChronosRequestError | None = None


class ChannelBeats:
    """The heartbeats of one run waiting for their acks, by execution id (one each)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake  # nudges the channel's sender
        self._beats: dict[str, _Beat] = {}

    async def beat(self, execution_id: str, seconds: int | None) -> str:
        """A `lease.Beat` over the channel: the lease's new end, or `ChronosRequestError` (a
        refusal with its code, or no ack in time: the channel is down or slow)."""
        beat = self._beats.get(execution_id)
        if beat is None or beat.seconds != seconds:
            beat = self._beats[execution_id] = _Beat(execution_id, seconds)
            self._wake()
        with trio.move_on_after(BEAT_ACK_SECONDS):
            await beat.done.wait()
        if self._beats.get(execution_id) is beat:
            del self._beats[execution_id]
        if beat.refusal is not None:
            raise beat.refusal
        if beat.lease_expires_at is None:
            raise ChronosRequestError("worker channel: no heartbeat ack in time")
        return beat.lease_expires_at

    async def send(self, ws: WebSocketConnection) -> bool:
        """Send the heartbeats not sent yet (grouped by `extend_seconds`); whether any was."""
        todo = [beat for beat in self._beats.values() if not beat.sent]
        groups: dict[int | None, list[_Beat]] = {}
        for beat in todo:
            groups.setdefault(beat.seconds, []).append(beat)
        for seconds, beats in groups.items():
            for start in range(0, len(beats), MAX_IDS_PER_MESSAGE):
                chunk = beats[start : start + MAX_IDS_PER_MESSAGE]
                message: dict[str, Any] = {
                    "type": "heartbeat",
                    "execution_ids": [beat.execution_id for beat in chunk],
                }
                if seconds is not None:
                    message["extend_seconds"] = seconds
                await send_json(ws, message)
                for beat in chunk:
                    beat.sent = True
        return bool(todo)

    def settle(self, acks: object) -> None:
        """A `heartbeat_acks` message: each ack ends the wait of its heartbeat."""
        for ack in acks if isinstance(acks, list) else []:
            if not isinstance(ack, dict):
                continue
            beat = self._beats.get(str(ack.get("execution_id")))
            if beat is None or not beat.sent:
                continue
            if ack.get("success") is True and isinstance(ack.get("lease_expires_at"), str):
                beat.lease_expires_at = ack["lease_expires_at"]
            else:
                code = ack.get("code") if isinstance(ack.get("code"), str) else None
                status = (
                    404
                    if code == "execution_not_found"
                    else 422
                    if code == "validation_error"
                    else 409
                )
                beat.refusal = ChronosRequestError(
                    f"heartbeat refused: {code}: {ack.get('message')}", status, None, code
                )
            beat.done.set()
