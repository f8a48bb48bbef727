"""A client that stops reading is closed with 4008 while a reading client of the same session
gets everything; the stalled socket's buffer never grows past its bound; the closed client
resumes from its ``lastEventId`` without a gap or a duplicate."""

from __future__ import annotations

import json
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gateway.component import GatewayOptions
from gateway.protocol import CLOSE_SLOW_CONSUMER
from gateway.sockets import SocketPolicy
from tests.gateway.harness import gateway_thread
from tests.gateway.test_stream import event_ids, frames_until

BUFFER = 64
PER_BATCH, TEXT = 100, "x" * 4096
MIN_BATCHES, MAX_BATCHES = 10, 300  # at least 4 MiB: more than the socket buffers hold


def test_a_stalled_reader_is_closed_with_4008_and_others_are_unaffected(database_url: str) -> None:
    options = GatewayOptions(
        socket=SocketPolicy(buffer_size=BUFFER, stall_s=0.5, close_timeout_s=60)
    )
    with gateway_thread(database_url, options=options) as gw:
        stalled_sock = socket.create_connection(("127.0.0.1", gw.port))
        stalled_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with (
            # max_queue: the client library stops reading the socket after 4 unread frames.
            connect(
                f"{gw.ws_url}/ws/s", sock=stalled_sock, max_queue=4, ping_interval=None
            ) as stalled,
            connect(f"{gw.ws_url}/ws/s", max_queue=None) as reader,
        ):
            frames_until(stalled, lambda f: len(f) == 1)
            frames_until(reader, lambda f: len(f) == 1)
            appended: list[int] = []
            most_buffered = 0
            for batch in range(MAX_BATCHES):
                appended += [e.event_id for e in gw.append("default", "s", [TEXT] * PER_BATCH)]
                feeds = gw.run(_buffered(gw))
                most_buffered = max([most_buffered, *feeds])
                if batch >= MIN_BATCHES and len(feeds) == 1:
                    break  # the stalled socket is gone
                time.sleep(0.02)
            # The stalled socket was dropped while events kept coming, not buffered forever.
            assert len(feeds) == 1, f"still {len(feeds)} sockets after {len(appended)} events"
            assert most_buffered <= BUFFER
            # The reader gets every event once, in order, though its neighbour stalled.
            received = event_ids(frames_until(reader, lambda f: len(f) == len(appended), 120))
            assert received == appended
            # Once it reads again it finds what was in flight, then the 4008 close.
            # A tiny window drains slowly (delayed ACKs): open it up to read what is in flight.
            stalled_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            got: list[int] = []
            try:
                while True:
                    frame = json.loads(stalled.recv(timeout=30))
                    if frame["type"] == "event":
                        got.append(frame["event"]["eventId"])
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == CLOSE_SLOW_CONSUMER
            assert got == appended[: len(got)] and len(got) < len(appended)
        # It resumes from the last event it saw: the rest, exactly once.
        with connect(f"{gw.ws_url}/ws/s?lastEventId={got[-1]}", max_queue=None) as resumed:
            frames = frames_until(resumed, lambda f: f and f[-1]["type"] == "ready", 60)
            assert got + event_ids(frames) == appended


async def _buffered(gw: object) -> list[int]:
    """Buffered events of each socket still streaming (a closing one may wait for its close)."""
    connections = gw.gateway.connections  # type: ignore[attr-defined]
    return [c.feed.buffered for c in connections if not c.feed.overflowed]


def _closes(gw: object, code: int) -> float:
    return gw.gateway.metrics.closes.labels(str(code))._value.get()  # type: ignore[attr-defined]


def _wait_for_close(gw: object, code: int, timeout_s: float) -> float:
    """Seconds until the gateway has closed a socket with ``code``."""
    started = time.monotonic()
    while _closes(gw, code) == 0:
        assert time.monotonic() - started < timeout_s, f"no {code} close in {timeout_s} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_send_stuck_after_a_burst_is_closed_with_4008_without_more_events(
    database_url: str,
) -> None:
    """One burst fills the client's buffers, then the session goes quiet: nothing offers the
    socket another event, so only the ticker can see its send stuck (issue 21: such a reader was
    left to the pong timeout, 1011)."""
    options = GatewayOptions(
        socket=SocketPolicy(buffer_size=BUFFER, stall_s=0.5, ping_interval_s=600,
                            close_timeout_s=60),
        tick_s=0.1,
    )
    with gateway_thread(database_url, options=options) as gw:
        stalled_sock = socket.create_connection(("127.0.0.1", gw.port))
        stalled_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with connect(
            f"{gw.ws_url}/ws/s", sock=stalled_sock, max_queue=4, ping_interval=None
        ) as stalled:
            frames_until(stalled, lambda f: len(f) == 1)
            for _ in range(MIN_BATCHES):  # 4 MiB: more than the socket buffers hold
                gw.append("default", "s", [TEXT] * PER_BATCH)
            assert _wait_for_close(gw, CLOSE_SLOW_CONSUMER, 10) < 10
            assert _closes(gw, 1011) == 0


def test_a_reader_that_stops_on_a_slow_stream_is_closed_4008_at_the_pong_deadline(
    database_url: str,
) -> None:
    """At a few small events a second the kernel buffers take minutes to fill, so no send ever
    blocks; the unanswered ping with events sent after it is what shows the reader stopped: 4008
    (reconnect with lastEventId), where an idle socket that misses a pong gets 1011."""
    options = GatewayOptions(
        socket=SocketPolicy(ping_interval_s=0.5, pong_timeout_s=1.0, close_timeout_s=5),
        tick_s=0.1,
    )
    with gateway_thread(database_url, options=options) as gw:
        with connect(f"{gw.ws_url}/ws/s", max_queue=4, ping_interval=None) as stalled:
            assert json.loads(stalled.recv(timeout=10))["type"] == "ready"
            sent: list[int] = []
            started = time.monotonic()
            while _closes(gw, CLOSE_SLOW_CONSUMER) == 0:
                assert time.monotonic() - started < 10, "the stopped reader is still open"
                sent += [e.event_id for e in gw.append("default", "s", ["small"])]
                time.sleep(0.1)
            assert _closes(gw, 1011) == 0
            # Reading again, it finds the events sent before the close, then the 4008.
            got: list[int] = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    frame = json.loads(stalled.recv(timeout=10))
                    if frame["type"] == "event":
                        got.append(frame["event"]["eventId"])
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == CLOSE_SLOW_CONSUMER
            assert got == sent[: len(got)]
        with connect(f"{gw.ws_url}/ws/quiet", ping_interval=None) as idle:
            assert json.loads(idle.recv(timeout=10))["type"] == "ready"
            _wait_for_close(gw, 1011, 10)  # it never answers the ping; nothing else was sent
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    idle.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
