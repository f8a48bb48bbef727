// The agentlane browser console: follows one session over /ws/{sessionId}, reconnects by itself
// and resumes after the last eventId it showed, so no token is repeated or lost. A run's text is
// its transcript (transcript.js): a crashed attempt's partial text is dropped, never appended to.
import { Transcript } from "./transcript.js";

const $ = (id) => document.getElementById(id);
const CLOSE_UNAUTHORIZED = 4001;

const state = {
  socket: null,
  lastEventId: 0,
  retry: 0,
  timer: null,
  connections: 0,
  eventsShown: 0,
  live: false, // history sent (the "ready" frame) on the current socket
  runs: new Map(), // executionId -> {root, tokens, transcript, …}
};

function setStatus(name, detail = "") {
  const status = $("status");
  status.dataset.state = name;
  status.textContent = detail ? `${name} · ${detail}` : name;
}

function wsUrl(session, token) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const params = new URLSearchParams({ lastEventId: String(state.lastEventId) });
  if (token) params.set("token", token);
  return `${scheme}://${location.host}/ws/${encodeURIComponent(session)}?${params}`;
}

function connect() {
  clearTimeout(state.timer);
  const session = $("session").value.trim();
  if (!session) return;
  state.live = false;
  setStatus("replaying", `after ${state.lastEventId}`);
  const socket = new WebSocket(wsUrl(session, $("token").value.trim()));
  state.socket = socket;
  socket.onopen = () => { state.connections += 1; document.body.dataset.connections = state.connections; };
  socket.onmessage = (message) => onFrame(socket, JSON.parse(message.data));
  socket.onclose = (close) => {
    if (state.socket !== socket) return; // replaced by a newer connection
    state.socket = null;
    if (close.code === CLOSE_UNAUTHORIZED) {
      setStatus("unauthorized", close.reason);
      return;
    }
    // Jittered exponential backoff; resume after the last event shown.
    const delay = Math.random() * Math.min(5000, 100 * 2 ** state.retry++);
    setStatus("reconnecting", `code ${close.code}`);
    state.timer = setTimeout(connect, delay);
  };
}

function onFrame(socket, frame) {
  switch (frame.type) {
    case "event":
      if (frame.event.eventId <= state.lastEventId) return; // shown already
      state.lastEventId = frame.event.eventId;
      show(frame.event);
      if (state.live) setStatus("live", `#${state.lastEventId}`);
      break;
    case "ready":
      state.retry = 0;
      state.live = true;
      setStatus("live", `#${frame.lastEventId}`);
      break;
    case "ping":
      socket.send(JSON.stringify({ type: "pong" }));
      break;
    case "error":
      logLine(`error ${frame.code}: ${frame.message}`);
      break;
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
        <button class="cancel" type="button">cancel</button></div>
      <div class="tokens"></div><div class="tools"></div>
      <details><summary>raw events</summary><pre></pre></details>`;
    root.querySelector("header").textContent = executionId;
    root.querySelector(".execution").textContent = executionId;
    root.querySelector(".cancel").onclick = () => send({ type: "cancel", executionId });
    $("runs").prepend(root);
    entry = {
      root, tokens: root.querySelector(".tokens"), tools: root.querySelector(".tools"), count: 0,
      transcript: new Transcript(), texts: new Map(), // step -> its <span> in .tokens
      raw: root.querySelector("details pre"), started: null,
      usage: { input: 0, output: 0 },
    };
    state.runs.set(executionId, entry);
  }
  return entry;
}

function show(event) {
  state.eventsShown += 1;
  $("counts").textContent = `(${state.eventsShown}, last #${event.eventId})`;
  logLine(`#${event.eventId} s${event.seq} ${event.type}`);
  if (!event.executionId) return;
  const entry = run(event.executionId);
  const data = event.data;
  entry.raw.append(`${JSON.stringify(event)}\n`);
  times(entry, event);
  switch (event.type) {
    case "RunAccepted":
      entry.root.querySelector("header").textContent = `${data.runId}: ${data.message}`;
      break;
    case "RunStarted":
      setState(entry, "running");
      break;
    case "Usage":
      entry.usage.input += data.inputTokens ?? 0;
      entry.usage.output += data.outputTokens ?? 0;
      entry.root.querySelector(".usage").textContent =
        `${entry.usage.input} in · ${entry.usage.output} out tokens (${data.model})`;
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
      line.textContent = `← ${data.name}: ${data.ok ? JSON.stringify(data.result) : data.error}`;
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
  return box;
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
  if (state.socket && state.socket.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify(frame));
  } else {
    logLine("not connected; try again in a moment");
  }
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
  if (state.socket) { const old = state.socket; state.socket = null; old.close(1000); }
  state.lastEventId = 0;
  state.runs.clear();
  $("runs").replaceChildren();
  $("log").replaceChildren();
  state.eventsShown = 0;
  connect();
});

const params = new URLSearchParams(location.search);
if (params.get("session")) $("session").value = params.get("session");
if (params.get("token")) $("token").value = params.get("token");
connect();
