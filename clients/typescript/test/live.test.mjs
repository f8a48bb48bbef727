// The client against a live `agentlane dev` (AGENTLANE_URL, e.g. http://127.0.0.1:8080; offline
// model, demo tools on): a run streamed folded to its answer, a session's events followed across a
// forced reconnect resuming by lastEventId, an approval, a cancel, problem+json errors and error
// frames typed. tests/clients/test_typescript_client.py starts the stack and runs this file.
// Run: AGENTLANE_URL=http://127.0.0.1:8080 node --test test/live.test.mjs   (after `npm run build`)
import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket from "ws";
import {
  AgentlaneClientError,
  APIConnectionError,
  APIError,
  BadRequest,
  Client,
  Conflict,
  GatewayError,
  isTerminal,
  NotFound,
} from "../dist/index.js";

const url = process.env.AGENTLANE_URL;
const live = { skip: url ? false : "AGENTLANE_URL is not set", timeout: 60_000 };
// Every socket closes with its test (t.signal), so a test that times out ends its iteration.
// A distinct prefix per run of this file, for sessions and runIds (a runId names one run of the
// tenant): a stack reused by hand keeps what earlier runs of this file did.
const prefix = `ts-${Date.now().toString(36)}`;
const client = url && new Client(url, { WebSocket, backoffMaxMs: 200 });

/** What a page shows of the changes: each step's text, in step order (resets empty a step). */
function rendered(changes) {
  const shown = new Map();
  for (const change of changes) {
    if (change.kind === "delta") shown.set(change.step, (shown.get(change.step) ?? "") + change.text);
    if (change.kind === "reset") shown.set(change.step, "");
  }
  return [...shown].sort(([a], [b]) => a - b).map(([, text]) => text).join("");
}

test("a run streams, folded, to its answer; the same runId again is the same run", live, async (t) => {
  const session = `${prefix}-stream`;
  const changes = [];
  for await (const change of client.runs.stream(session, "hello there", { runId: `${prefix}-run-1`, signal: t.signal })) {
    changes.push(change);
  }
  const ended = changes.at(-1);
  assert.equal(ended.kind, "ended");
  assert.equal(ended.status, "completed");
  assert.equal(ended.answer, "(offline) You said: hello there");
  assert.equal(rendered(changes), ended.answer);
  assert.ok(changes.filter((c) => c.kind === "delta").length > 1, "streamed word by word");

  const page = await client.sessions.page(session);
  assert.equal(page.next, null);
  const { executionId } = page.events[0];
  assert.match(executionId, /^ex_[0-9a-f]{32}$/);
  const run = await client.runs.get(executionId);
  assert.equal(run.status, "completed");
  assert.equal(run.answer, ended.answer);
  assert.ok(run.usage.outputTokens > 0);
  const usage = await client.sessions.usage(session); // the read models: they may trail
  assert.equal(usage.sessionId, session);
  assert.ok(usage.runs <= 1 && usage.usage.outputTokens <= run.usage.outputTokens);
  const again = await client.runs.create(session, "hello there", { runId: `${prefix}-run-1` });
  assert.equal(again.executionId, executionId);
  assert.equal(await client.runs.cancel(executionId), null, "it had ended");
});

test("a session's events resume by lastEventId across a forced reconnect, once each", live, async (t) => {
  const session = `${prefix}-resume`;
  // A socket the test can cut from under the client: the TCP connection is dropped (1006).
  const made = [];
  class Cuttable extends WebSocket {
    constructor(address) {
      super(address);
      made.push(this);
    }
  }
  const cutting = new Client(url, { WebSocket: Cuttable, backoffMaxMs: 200 });
  const accepted = await cutting.runs.create(session, "please repeat these twelve words back to me right now thank you");
  const events = [];
  let cutAfter = null;
  const resumedAfter = [];
  const socket = cutting.sessions.connect(session, {
    onConnecting: (after) => resumedAfter.push(after), signal: t.signal,
  });
  for await (const event of socket) {
    events.push(event);
    if (cutAfter === null && event.type === "Token") {
      cutAfter = event.eventId;
      made.at(-1).terminate();
    }
    if (event.executionId === accepted.executionId && isTerminal(event)) break;
  }
  assert.ok(cutAfter !== null, "the run streamed tokens");
  assert.equal(socket.connections, 2);
  assert.deepEqual(socket.closeCodes, [1006]);
  // Resumed after the last event the first connection delivered (frames already on the wire
  // when it was cut may come after the one it was cut at).
  assert.equal(resumedAfter.length, 2);
  assert.equal(resumedAfter[0], 0);
  assert.ok(resumedAfter[1] >= cutAfter);
  assert.equal(new URL(made[1].url).searchParams.get("lastEventId"), String(resumedAfter[1]));
  assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1), "every event once, in order");
  const completed = events.at(-1);
  assert.equal(completed.type, "Completed");
  assert.equal(completed.data.answer, "(offline) You said: please repeat these twelve words back to me right now thank you");
  // The same, read over HTTP in pages.
  const first = await cutting.sessions.page(session, { limit: 3 });
  assert.equal(first.next, first.events[2].eventId);
  const rest = await cutting.sessions.page(session, { after: first.next, limit: 1000 });
  assert.deepEqual([...first.events, ...rest.events].map((e) => e.eventId), events.map((e) => e.eventId));
  // And sessions.events() from a given point, left early (which closes its socket).
  const later = [];
  for await (const event of cutting.sessions.events(session, { after: events[2].eventId, signal: t.signal })) {
    later.push(event.seq);
    if (later.length === 2) break;
  }
  assert.deepEqual(later, [4, 5]);
});

test("an approval-gated tool call waits, is approved, and another waiting run is cancelled", live, async (t) => {
  const session = `${prefix}-approve`;
  const accepted = await client.runs.create(session, "call send_email");
  const changes = [];
  for await (const change of client.runs.follow(accepted, { signal: t.signal })) {
    changes.push(change);
    if (change.kind === "waiting") {
      assert.equal(change.reason, "approval");
      // A run in progress: a start that must not wait behind it is refused, typed.
      await assert.rejects(client.runs.create(session, "again", { onConflict: "reject" }),
        (error) => error instanceof Conflict && error.status === 409 && error.type === "run-conflict");
      const call = changes.find((c) => c.kind === "toolCall");
      assert.equal(call.name, "send_email");
      assert.ok(call.requiresApproval);
      assert.equal(change.name, `approve:${call.callId}`);
      assert.ok((await client.runs.approve(accepted.executionId, call.callId)) > 0);
    }
  }
  const result = changes.find((c) => c.kind === "toolResult");
  assert.ok(result.ok && result.name === "send_email");
  assert.equal(changes.at(-1).kind, "ended");
  assert.equal(changes.at(-1).status, "completed");

  const waiting = await client.runs.create(`${prefix}-cancel`, "call send_email");
  let ended = null;
  for await (const change of client.runs.follow(waiting, { signal: t.signal })) {
    if (change.kind === "waiting") assert.ok((await client.runs.cancel(waiting.executionId, { reason: "no" })) > 0);
    if (change.kind === "ended") ended = change;
  }
  assert.deepEqual(ended, { kind: "ended", status: "cancelled", answer: null, reason: "no" });
  assert.equal((await client.runs.get(waiting.executionId)).status, "cancelled");
});

test("problem+json answers are typed errors; an unreachable server is APIConnectionError", live, async (t) => {
  await assert.rejects(client.runs.get("ex_nope"), (error) => {
    assert.ok(error instanceof NotFound && error instanceof APIError && error instanceof AgentlaneClientError);
    assert.equal(error.status, 404);
    assert.equal(error.type, "not-found");
    assert.equal(error.name, "NotFound");
    return true;
  });
  await assert.rejects(client.runs.create(`${prefix}-bad`, ""), (error) => {
    assert.ok(error instanceof BadRequest);
    assert.equal(error.status, 422);
    assert.equal(error.type, "invalid-request");
    assert.match(error.detail, /message/);
    return true;
  });
  const nowhere = new Client("http://127.0.0.1:9", { timeoutMs: 2000 });
  await assert.rejects(nowhere.runs.get("ex_1"), APIConnectionError);
});

test("error frames are typed and the socket stays open; ask over the socket runs", live, async (t) => {
  const session = `${prefix}-frames`;
  const errors = [];
  const socket = client.sessions.connect(session, { onError: (error) => errors.push(error), signal: t.signal });
  const events = [];
  const reading = (async () => {
    for await (const event of socket) {
      events.push(event);
      if (event.type === "Completed") return;
    }
  })();
  await socket.cancel("ex_nobody");
  await socket.ask("bad id!", "hi");
  while (errors.length < 2 && !t.signal.aborted) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(errors.map((e) => e.code), ["run_not_found", "invalid_frame"]);
  assert.ok(errors.every((e) => e instanceof GatewayError && e.message.length > 0));
  assert.ok(socket.connected, "the socket stays open");
  await socket.ask(`${prefix}-frames-1`, "hello");
  await reading;
  assert.equal(events[0].type, "RunAccepted");
  assert.equal(events[0].data.runId, `${prefix}-frames-1`);
  assert.equal(events.at(-1).data.answer, "(offline) You said: hello");
  assert.ok(socket.closed);
});

test("the gateway publishes its frames' JSON Schema", live, async (t) => {
  const response = await fetch(`${url}/ws-schema.json`);
  assert.equal(response.status, 200);
  const schema = await response.json();
  for (const name of ["ServerFrame", "ClientFrame", "Event", "TokenData"]) assert.ok(name in schema.$defs, name);
});

test("an approval nobody answers is denied at the run's deadline", live, async (t) => {
  const changes = [];
  for await (const change of client.runs.stream(`${prefix}-deadline`, "call send_email", {
    approvalTimeoutSeconds: 1.5, signal: t.signal,
  })) {
    changes.push(change);
  }
  assert.ok(changes.some((c) => c.kind === "waiting" && c.reason === "approval"));
  const result = changes.find((c) => c.kind === "toolResult");
  assert.equal(result.ok, false);
  assert.equal(result.error, "not approved: the approval deadline passed");
  assert.equal(changes.at(-1).status, "completed");
});

test("a fork continues from the parent's state at the cut", live, async (t) => {
  const parent = `${prefix}-parent`;
  for await (const change of client.runs.stream(parent, "my name is Ada", { signal: t.signal })) {
    if (change.kind === "ended") assert.equal(change.status, "completed");
  }
  const { events } = await client.sessions.page(parent);
  const cut = events.at(-1).eventId;
  const fork = `${prefix}-fork`;
  const forked = await client.sessions.fork(parent, cut, fork);
  assert.equal(forked.sessionId, fork);
  assert.equal(forked.parentSessionId, parent);
  assert.deepEqual(await client.sessions.fork(parent, cut, fork), forked, "a retry is the same fork");
  const first = (await client.sessions.page(fork)).events[0];
  assert.equal(first.type, "SessionForked");
  assert.equal(first.data.atEventId, cut);
  await assert.rejects(client.sessions.fork(parent, cut, parent), (error) => error instanceof APIError && error.status === 422);
});

test("a long message and its answer travel as blob references, fetched and checked on demand", live, async (t) => {
  const session = `${prefix}-blob`;
  const message = `blob:${"x".repeat(40_000)}`; // one word: the offline model streams it at once
  let ended;
  for await (const change of client.runs.stream(session, message, { signal: t.signal })) ended = change;
  assert.equal(ended.status, "completed");
  assert.equal(ended.answer, null, "the answer is in the blob store");
  assert.ok(ended.answerRef.size > 40_000);
  assert.equal(await client.blobs.get(ended.answerRef), `(offline) You said: ${message}`);
  const accepted = (await client.sessions.page(session)).events[0];
  assert.equal(accepted.type, "RunAccepted");
  assert.equal(accepted.data.message, null);
  assert.equal(await client.blobs.get(accepted.data.messageRef), message);
  await assert.rejects(client.blobs.get("0".repeat(64)), (error) => error instanceof NotFound);
});
