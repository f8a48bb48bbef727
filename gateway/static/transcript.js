// A run's transcript, folded from its events by the rule of docs/contract.md ("Streams"): a step
// shows the tokens of its latest attempt that has not failed; a run shows its steps in order.
// The same fold as agentlane/transcript.py, tested against the same recorded logs
// (tests/fixtures/transcripts) by tests/clients/transcript.test.mjs.

const ENDS = { Completed: "completed", Failed: "failed", Cancelled: "cancelled" };

export class Transcript {
  constructor() {
    this.steps = new Map(); // step -> {attempt, parts, nextIndex, failed:Set, tools:[]}
    this.status = "queued";
    this.answer = null;
    this.reason = null;
    this.waiting = null;
  }

  // Fold one event (Event JSON, seq order, each once); returns what changed, in order:
  // {kind: "delta", step, text} | {kind: "reset", step} | {kind: "tool", ...} | {kind: "waiting", ...}
  // | {kind: "ended", status, answer, reason}.
  apply(event) {
    const data = event.data ?? {};
    switch (event.type) {
      case "RunStarted":
      case "Resumed":
        this.status = "running";
        this.waiting = null;
        return [];
      case "Token":
        return this.#token(data);
      case "StepFailed":
        return this.#failed(data);
      case "ToolCall": {
        const tool = { call: data.name, callId: data.callId, arguments: data.arguments ?? {},
          requiresApproval: Boolean(data.requiresApproval) };
        this.#step(data.step).tools.push(tool);
        return [{ kind: "tool", step: data.step, ...tool }];
      }
      case "ToolResult": {
        const tool = { result: data.name, callId: data.callId, ok: Boolean(data.ok),
          value: data.result ?? null, error: data.error ?? null };
        this.#step(data.step).tools.push(tool);
        return [{ kind: "tool", step: data.step, ...tool }];
      }
      case "Suspended":
        this.status = "suspended";
        this.waiting = { reason: data.reason, name: data.name ?? null };
        return [{ kind: "waiting", ...this.waiting, detail: data.detail ?? null }];
      default:
        if (event.type in ENDS) {
          this.status = ENDS[event.type];
          this.waiting = null;
          this.answer = data.answer ?? null;
          this.reason = data.reason ?? null;
          return [{ kind: "ended", status: this.status, answer: this.answer, reason: this.reason }];
        }
        return [];
    }
  }

  #token(data) {
    // A token without a step tag (an older writer) belongs to step -1, shown first.
    const number = data.step ?? -1;
    const step = this.#step(number);
    const attempt = data.attempt ?? 1;
    const index = data.index ?? step.nextIndex;
    if (step.failed.has(attempt) || (step.attempt !== null && attempt < step.attempt)) return [];
    const changes = [];
    if (attempt !== step.attempt) {
      // A newer attempt streams: whatever an older one showed goes.
      if (step.parts.length) changes.push({ kind: "reset", step: number });
      step.attempt = attempt;
      step.parts = [];
      step.nextIndex = 0;
    }
    if (index < step.nextIndex) return changes; // a repeat
    step.parts.push(data.text);
    step.nextIndex = index + 1;
    changes.push({ kind: "delta", step: number, text: data.text });
    return changes;
  }

  #failed(data) {
    const step = this.#step(data.step);
    step.failed.add(data.attempt);
    if (step.attempt !== data.attempt) return [];
    const hadText = step.parts.length > 0;
    step.attempt = null;
    step.parts = [];
    step.nextIndex = 0;
    return hadText ? [{ kind: "reset", step: data.step }] : [];
  }

  #step(number) {
    let step = this.steps.get(number);
    if (!step) {
      step = { attempt: null, parts: [], nextIndex: 0, failed: new Set(), tools: [] };
      this.steps.set(number, step);
    }
    return step;
  }

  #ordered() {
    return [...this.steps.entries()].sort(([a], [b]) => a - b);
  }

  // The run's streamed text: its steps' visible texts in step order.
  get text() {
    return this.#ordered().map(([, step]) => step.parts.join("")).join("");
  }

  // The same shape as agentlane.transcript.Transcript.to_json().
  toJSON() {
    const steps = this.#ordered()
      .filter(([, step]) => step.parts.length || step.tools.length)
      .map(([number, step]) => ({ step: number, text: step.parts.join(""), tools: step.tools }));
    return { status: this.status, text: this.text, steps, answer: this.answer,
      reason: this.reason, waiting: this.waiting };
  }
}
