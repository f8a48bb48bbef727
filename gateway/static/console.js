// The agentlane browser console: follows one session over /ws/{sessionId} with the TypeScript
// client's socket (client/socket.js: reconnects by itself and resumes after the last eventId it
// delivered, so no token is repeated or lost). A run's text is its transcript, folded by the
// client's fold (client/transcript.js): a crashed attempt's partial text is dropped, never
// appended to. Both are compiled from clients/typescript/src (`npm run build` copies them here).
import { Client } from "./client/client.js";
import { ConnectionLost } from "./client/errors.js";
import { SessionSocket } from "./client/socket.js";
import { Transcript } from "./client/transcript.js";

const $ = (id) => document.getElementById(id);

const state = {
  socket: null, // the SessionSocket of the session shown
  eventsShown: 0,
  live: false, // history sent (the "ready" frame) on the current connection
  runs: new Map(), // executionId -> {root, tokens, transcript, …}
  client: null, // the HTTP client (blobs, fork) with the token shown
};

function setStatus(name, detail = "") {
  const status = $("status");
  status.dataset.state = name;
  status.textContent = detail ? `${name} · ${detail}` : name;
}

async function connect() {
  const session = $("session").value.trim();
  if (!session) return;
  state.client = new Client(location.origin, { token: $("token").value.trim() || null });
  const socket = new SessionSocket(location.origin, session, {
    token: $("token").value.trim() || null,
    onConnecting: (after) => {
      state.live = false;
      setStatus("replaying", `after ${after}`);
    },
    onOpen: (connections) => { document.body.dataset.connections = connections; },
    onReady: (lastEventId) => {
      state.live = true;
      setStatus("live", `#${lastEventId}`);
    },
    onClose: (code) => setStatus("reconnecting", `code ${code}`),
    onError: (error) => logLine(`error ${error.code}: ${error.detail}`),
  });
  state.socket = socket;
  try {
    for await (const event of socket) {
      try {
        show(event);
      } catch (error) {
        console.error(error); // a page bug must not stop the stream
      }
      if (state.live) setStatus("live", `#${event.eventId}`);
    }
  } catch (error) {
    if (state.socket !== socket) return;
    // ConnectionLost: the gateway refused the token (4001); reconnecting would not help.
    if (error instanceof ConnectionLost) setStatus("unauthorized", error.reason);
    else setStatus("error", String(error));
  }
}

function run(executionId) {
  let entry = state.runs.get(executionId);
  if (!entry) {
    const root = document.createElement("div");
    root.className = "run";
    root.dataset.execution = executionId;
    root.dataset.state = "queued";
    root.innerHTML = `<header></header>
      <div class="meta"><span class="state">queued</span><code class="execution"></code>
        <span class="times"></span><span class="usage"></span>
        <button class="cancel" type="button">cancel</button>
        <button class="fork" type="button" title="a new session whose history is this one's up to this run's last event">fork here</button></div>
      <div class="tokens"></div><div class="tools"></div>
      <details><summary>raw events</summary><pre></pre></details>`;
    root.querySelector("header").textContent = executionId;
    root.querySelector(".execution").textContent = executionId;
    root.querySelector(".cancel").onclick = () => send({ type: "cancel", executionId });
    root.querySelector(".fork").onclick = () => fork(entry.lastEventId);
    $("runs").prepend(root);
    entry = {
      root, tokens: root.querySelector(".tokens"), tools: root.querySelector(".tools"), count: 0,
      transcript: new Transcript(), texts: new Map(), // step -> its <span> in .tokens
      raw: root.querySelector("details pre"), started: null,
      usage: { input: 0, output: 0, costMicros: 0, priced: false }, lastEventId: 0,
    };
    state.runs.set(executionId, entry);
  }
  return entry;
}

function show(event) {
  state.eventsShown += 1;
  $("counts").textContent = `(${state.eventsShown}, last #${event.eventId})`;
  logLine(`#${event.eventId} s${event.seq} ${event.type}`);
  if (event.type === "SessionForked") return forkedFrom(event.data);
  if (!event.executionId) return;
  const entry = run(event.executionId);
  const data = event.data;
  entry.lastEventId = event.eventId;
  entry.raw.append(`${JSON.stringify(event)}\n`);
  times(entry, event);
  switch (event.type) {
    case "RunAccepted":
      entry.root.querySelector("header").replaceChildren(
        `${data.runId}: `, value(data.message, data.messageRef),
      );
      break;
    case "RunStarted":
      setState(entry, "running");
      break;
    case "Usage":
      entry.usage.input += data.inputTokens ?? 0;
      entry.usage.output += data.outputTokens ?? 0;
      if (data.costMicros != null) {
        entry.usage.costMicros += data.costMicros;
        entry.usage.priced = true;
      }
      entry.root.querySelector(".usage").textContent =
        `${entry.usage.input} in · ${entry.usage.output} out tokens (${data.model})` +
        (entry.usage.priced ? ` · ${money(entry.usage.costMicros)}` : "");
      entry.root.dataset.costMicros = entry.usage.costMicros;
      break;
    case "Token":
    case "StepFailed":
      for (const change of entry.transcript.apply(event)) render(entry, change);
      break;
    case "ToolCall": {
      const line = document.createElement("div");
      line.className = "tool";
      line.textContent = `→ ${data.name}(${JSON.stringify(data.arguments)})`;
      entry.tools.append(line);
      break;
    }
    case "ToolResult": {
      const line = document.createElement("div");
      line.className = "tool";
      line.append(`← ${data.name}: `, data.ok ? value(data.result, data.resultRef) : data.error);
      entry.tools.append(line);
      break;
    }
    case "Suspended":
      setState(entry, "suspended", data.reason);
      if (data.reason === "approval" && data.name) entry.tools.append(approval(event.executionId, data));
      break;
    case "SignalReceived":
    case "Resumed":
      entry.root.querySelectorAll(".approval button").forEach((b) => (b.disabled = true));
      entry.root.querySelectorAll(".approval").forEach((box) => stopCountdown(box, data.reason));
      setState(entry, "running");
      break;
    case "Completed":
    case "Failed":
    case "Cancelled":
      setState(entry, event.type.toLowerCase());
      if (event.type !== "Completed") entry.tools.append(`${event.type}: ${data.reason ?? ""}`);
      break;
  }
}

// A value as its event holds it: inline, or kept in the blob store (a `…Ref`), fetched on demand
// through GET /blobs/{sha256} and checked against its hash by the client.
function value(inline, ref) {
  if (!ref) return typeof inline === "string" ? inline : JSON.stringify(inline);
  const button = document.createElement("button");
  button.type = "button";
  button.className = "blob";
  button.dataset.sha256 = ref.sha256;
  button.textContent = `${ref.size.toLocaleString()} bytes in the blob store · show`;
  button.onclick = async () => {
    button.disabled = true;
    try {
      const shown = await state.client.blobs.get(ref);
      const text = document.createElement("span");
      text.className = "blob-value";
      text.textContent = typeof shown === "string" ? shown : JSON.stringify(shown);
      button.replaceWith(text);
    } catch (error) {
      button.disabled = false;
      button.textContent = `could not load (${error.message}) · retry`;
    }
  };
  return button;
}

// Fork the session after `atEventId` into a new session, then follow the new one: its runs
// continue from this session's state at that event; this session is not touched.
async function fork(atEventId) {
  const parent = $("session").value.trim();
  const child = `${parent}-fork-${Date.now().toString(36)}`;
  try {
    await state.client.sessions.fork(parent, atEventId, child);
  } catch (error) {
    logLine(`fork failed: ${error.message}`);
    return;
  }
  $("session").value = child;
  history.replaceState(null, "", `?session=${encodeURIComponent(child)}${location.hash}`);
  $("connect").click();
}

function forkedFrom(data) {
  const note = $("forked");
  const link = document.createElement("a");
  link.href = `?session=${encodeURIComponent(data.parentSessionId)}`;
  link.textContent = data.parentSessionId;
  note.replaceChildren("forked from ", link, ` at event #${data.atEventId}`);
  note.hidden = false;
}

function setState(entry, name, detail = "") {
  entry.root.dataset.state = name;
  entry.root.querySelector(".state").textContent = detail ? `${name}: ${detail}` : name;
}

// Accepted at, and how long it has run (or ran): the database's createdAt of its events.
function times(entry, event) {
  const at = new Date(event.createdAt);
  if (entry.started === null) entry.started = at;
  const seconds = ((at - entry.started) / 1000).toFixed(1);
  entry.root.querySelector(".times").textContent =
    `${entry.started.toLocaleTimeString()} · ${seconds} s`;
}

// A step's text lives in its own span, in step order: a reset empties only that step.
function render(entry, change) {
  let span = entry.texts.get(change.step);
  if (!span) {
    span = document.createElement("span");
    span.dataset.step = change.step;
    const later = [...entry.texts.entries()].filter(([step]) => step > change.step);
    const next = later.length ? later.sort(([a], [b]) => a - b)[0][1] : null;
    entry.tokens.insertBefore(span, next);
    entry.texts.set(change.step, span);
  }
  if (change.kind === "reset") {
    span.textContent = "";
    entry.root.dataset.resets = Number(entry.root.dataset.resets ?? 0) + 1;
  } else if (change.kind === "delta") {
    span.append(change.text);
    entry.count += 1;
    entry.root.dataset.tokens = entry.count;
  }
}

function approval(executionId, data) {
  const box = document.createElement("div");
  box.className = "approval";
  box.textContent = `approval needed: ${data.name} ${data.detail ?? ""} `;
  for (const [label, approved] of [["approve", true], ["deny", false]]) {
    const button = document.createElement("button");
    button.textContent = label;
    button.onclick = () => send({ type: "approve", executionId, name: data.name, payload: { approved } });
    box.append(button);
  }
  if (data.deadline) countdown(box, new Date(data.deadline));
  return box;
}

// The time an approval has left before the run takes the tool's default (the deadline is on
// the database's clock; this page's clock is close enough to count it down).
function countdown(box, deadline) {
  const left = document.createElement("span");
  left.className = "deadline";
  box.dataset.deadline = deadline.toISOString();
  box.append(left);
  const tick = () => {
    const seconds = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    left.textContent = ` · decided by default in ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  };
  tick();
  box.timer = setInterval(tick, 1000);
}

function stopCountdown(box, reason) {
  clearInterval(box.timer);
  const left = box.querySelector(".deadline");
  if (left && reason === "deadline") left.textContent = " · deadline passed: decided by default";
  else if (left) left.remove();
}

// Cost in the price table's currency (micro-units; the dev table and most are in USD).
function money(micros) {
  return `$${(micros / 1e6).toFixed(micros < 10_000 ? 6 : 4)}`;
}

function logLine(text) {
  const item = document.createElement("li");
  item.textContent = text;
  const log = $("log");
  log.append(item);
  while (log.children.length > 500) log.firstChild.remove();
  log.scrollTop = log.scrollHeight;
}

function send(frame) {
  if (!state.socket || !state.socket.send(frame)) logLine("not connected; try again in a moment");
}

$("ask").addEventListener("submit", (e) => {
  e.preventDefault();
  const message = $("message").value.trim();
  if (!message) return;
  const runId = `web-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  send({ type: "ask", runId, message });
  $("message").value = "";
});

$("connect").addEventListener("click", () => {
  // A new session starts from its beginning.
  if (state.socket) { const old = state.socket; state.socket = null; old.close(); }
  state.runs.clear();
  $("runs").replaceChildren();
  $("forked").hidden = true;
  $("log").replaceChildren();
  state.eventsShown = 0;
  connect();
});

const params = new URLSearchParams(location.search);
if (params.get("session")) $("session").value = params.get("session");
if (params.get("token")) $("token").value = params.get("token");
connect();
