"""A loopback OpenAI-compatible chat-completions server for the dev-stack end-to-end test.

It answers ``echo: <last user message>`` as a stream (or one JSON body), records every request so a
test can see the history a run sent, and can hold the first request whose last user message
contains a marker until the test releases it: that is a run caught mid-step, for killing its runner.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ModelServer:
    """Serves on 127.0.0.1 in a daemon thread; ``base_url`` is what ``OPENAI_BASE_URL`` takes."""

    hold_marker: str = "slow"
    #: Seconds every completion takes before its first byte (a model's think time).
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    _held_once: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name="model-server", daemon=True).start()

    def stop(self) -> None:
        self.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def requests_saying(self, text: str) -> list[dict[str, Any]]:
        """Requests whose last user message contains ``text``."""
        with self._lock:
            return [r for r in self.requests if text in _last_user(r)]

    def wait_for_request(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.requests_saying(text):
            if time.monotonic() > deadline:
                raise AssertionError(f"no model request saying {text!r} in {timeout_s}s")
            time.sleep(0.05)

    def _record(self, body: dict[str, Any]) -> bool:
        """Record ``body``; True if this request must wait for :attr:`released`."""
        with self._lock:
            self.requests.append(body)
            if self.hold_marker in _last_user(body) and not self._held_once:
                self._held_once = True
                return True
        return False


def _last_user(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def _handler(model: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            if not self.path.endswith("/chat/completions"):
                self._send_json(404, {"error": {"message": "not found"}})
                return
            hold = model._record(body)
            if model.delay_s:
                time.sleep(model.delay_s)
            answer = f"echo: {_last_user(body)}"
            usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
            if not body.get("stream"):
                self._send_json(200, _completion(body, answer, usage))
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            try:
                words = answer.split(" ")
                for index, chunk in enumerate(_chunks(body, words, usage)):
                    self._chunk(f"data: {json.dumps(chunk)}\n\n")
                    if hold and index == 1:
                        model.released.wait(60)
                        return  # the caller is gone by now: end without finishing
                self._chunk("data: [DONE]\n\n")
                self._chunk("")
            except (BrokenPipeError, ConnectionResetError):
                return

        def _chunk(self, text: str) -> None:
            data = text.encode()
            self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _send_json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _chunks(
    body: dict[str, Any], words: list[str], usage: dict[str, int]
) -> Iterator[dict[str, Any]]:
    base = {"id": "chatcmpl-loopback", "object": "chat.completion.chunk", "created": 0,
            "model": body.get("model", "loopback")}
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                "finish_reason": None}]}
    for index, word in enumerate(words):
        text = word if index == 0 else " " + word
        yield {**base, "choices": [{"index": 0, "delta": {"content": text},
                                    "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": usage}


def _completion(body: dict[str, Any], answer: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "loopback"),
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": answer}}],
        "usage": usage,
    }
