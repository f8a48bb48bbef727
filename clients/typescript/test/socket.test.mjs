// The session socket against a scripted WebSocket (no server): it resumes by lastEventId after a
// drop, delivers each event once, answers pings, keeps error frames typed, and stops for good on
// 4001. The live behaviour is in live.test.mjs.
// Run: node --test test/socket.test.mjs   (after `npm run build`)
import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentlaneClientError, ConnectionLost, GatewayError, SessionSocket } from "../dist/index.js";

/** A WebSocket whose server side the test plays: `opened` lists every socket made. */
function scripted() {
  const opened = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      opened.push(this);
      setTimeout(() => { this.readyState = 1; this.onopen?.({}); }, 0);
    }
    send(text) { this.sent.push(JSON.parse(text)); }
    close(code = 1000, reason = "") { this.drop(code, reason); }
    // The server's side:
    frame(body) { this.onmessage?.({ data: JSON.stringify(body) }); }
    event(eventId) {
      this.frame({ type: "event", event: { eventId, seq: eventId, tenantId: "t", sessionId: "s",
        executionId: "ex_1", type: "Token", data: { text: `w${eventId}`, index: eventId }, createdAt: "" } });
    }
    drop(code, reason = "") {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
  }
  return { opened, FakeWebSocket };
}

const nextTick = () => new Promise((resolve) => setTimeout(resolve, 0));

test("a dropped socket is reopened after the last event delivered, and nothing repeats", async () => {
  const { opened, FakeWebSocket } = scripted();
  const closes = [];
  const socket = new SessionSocket("http://gw.test:8080/base/", "s 1", {
    after: 2, token: "tok", WebSocket: FakeWebSocket, backoffMaxMs: 1, onClose: (code) => closes.push(code),
  });
  const seen = [];
  const reading = (async () => {
    for await (const event of socket) {
      seen.push(event.eventId);
      if (event.eventId === 6) break;
    }
  })();
  await nextTick();
  assert.equal(opened[0].url, "ws://gw.test:8080/base/ws/s%201?lastEventId=2&token=tok");
  opened[0].event(3);
  opened[0].frame({ type: "ready", lastEventId: 3 });
  opened[0].event(4);
  opened[0].frame({ type: "ping", t: 1 });
  assert.deepEqual(opened[0].sent, [{ type: "pong" }]);
  opened[0].drop(4008, "slow consumer");
  while (opened.length < 2) await new Promise((resolve) => setTimeout(resolve, 2));
  assert.equal(new URL(opened[1].url).searchParams.get("lastEventId"), "4");
  await nextTick();
  opened[1].event(4); // a misbehaving proxy's repeat
  opened[1].event(5);
  opened[1].event(6);
  await reading;
  assert.deepEqual(seen, [3, 4, 5, 6]);
  assert.deepEqual(closes, [4008]);
  assert.deepEqual(socket.closeCodes, [4008]);
  assert.equal(socket.connections, 2);
  assert.ok(socket.closed, "leaving the loop closes the socket");
  assert.equal(opened[1].readyState, 3);
});

test("error frames are typed and the socket stays open; commands wait for a connection", async () => {
  const { opened, FakeWebSocket } = scripted();
  const errors = [];
  const socket = new SessionSocket("https://gw.test", "s", { WebSocket: FakeWebSocket, onError: (e) => errors.push(e) });
  assert.equal(socket.send({ type: "pong" }), false, "not connected yet");
  await socket.cancel("ex_nobody", { timeoutMs: 1000 }); // opens the socket and waits for it
  assert.equal(opened[0].url, "wss://gw.test/ws/s?lastEventId=0");
  assert.deepEqual(opened[0].sent, [{ type: "cancel", executionId: "ex_nobody" }]);
  opened[0].frame({ type: "error", code: "rate_limited", message: "slow down", retryAfter: 2 });
  const [error] = errors;
  assert.ok(error instanceof GatewayError && error instanceof AgentlaneClientError);
  assert.equal(error.code, "rate_limited");
  assert.equal(error.retryAfter, 2);
  assert.equal(error.detail, "slow down");
  assert.deepEqual(socket.errors, [error]);
  assert.ok(socket.connected);
  socket.close();
  await assert.rejects(socket.ask("r", "hi", { timeoutMs: 10 }), ConnectionLost);
});

test("4001 ends the iteration with ConnectionLost: no reconnect", async () => {
  const { opened, FakeWebSocket } = scripted();
  const socket = new SessionSocket("http://gw.test", "s", { WebSocket: FakeWebSocket, backoffMaxMs: 1 });
  const reading = (async () => { for await (const _ of socket); })();
  await nextTick();
  opened[0].drop(4001, "token expired");
  await assert.rejects(reading, (error) => error instanceof ConnectionLost && error.code === 4001
    && error.reason === "token expired");
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(opened.length, 1);
});

test("without a WebSocket (Node < 22) the socket says what to pass", { skip: "WebSocket" in globalThis }, () => {
  assert.throws(() => new SessionSocket("http://gw.test", "s"), /ws package/);
});
