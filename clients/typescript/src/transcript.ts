/**
 * What a reader shows of a run: its transcript, folded from its events, clean through crashes.
 *
 * The rule (docs/contract.md, "Streams"): a step's visible text is the tokens of its latest
 * attempt that has not failed; a run's transcript is its steps in order, each step's text
 * followed by its tool calls and their results. A runner that takes over a step cut short by a
 * crash first appends `StepFailed` with `abandoned` for the attempt it found, so the partial text
 * goes at once; an attempt that starts streaming replaces an older one's text even before that
 * `StepFailed` arrives (a reader that joined late, or an older log).
 *
 * The same fold as the server's `agentlane/transcript.py` (and the Python client's), tested
 * against the same recorded logs (`tests/fixtures/transcripts`). The console serves this module
 * compiled (`gateway/static/client/transcript.js`).
 */
import type {
  BlobRef,
  CancelledData,
  CompletedData,
  FailedData,
  StepFailedData,
  SuspendedData,
  TokenData,
  ToolCallData,
  ToolResultData,
} from "./generated/frames.js";

/** Text appended to `step`'s visible text. */
export interface TextDelta {
  kind: "delta";
  step: number;
  text: string;
}

/** `step`'s visible text was dropped: its attempt failed or a newer one began. */
export interface Reset {
  kind: "reset";
  step: number;
}

export interface ToolCalled {
  kind: "toolCall";
  step: number;
  callId: string;
  name: string;
  arguments: Record<string, unknown>;
  requiresApproval: boolean;
}

export interface ToolReturned {
  kind: "toolResult";
  step: number;
  callId: string;
  name: string;
  ok: boolean;
  result: unknown;
  error: string | null;
  /** Set when the result is in the blob store (`result` is then null): `blobs.get(sha256)`. */
  resultRef?: BlobRef;
}

/** The run waits (`Suspended`): for an approval, a signal or a raised budget. */
export interface Waiting {
  kind: "waiting";
  reason: string;
  name: string | null;
  detail: string | null;
  /** When the wait ends by itself (RFC 3339, database time); null: it waits for ever. */
  deadline: string | null;
}

export type EndStatus = "completed" | "failed" | "cancelled";

/** The run ended: `status` is `completed`, `failed` or `cancelled`. */
export interface Ended {
  kind: "ended";
  status: EndStatus;
  answer: string | null;
  reason: string | null;
  /** Set when the answer is in the blob store (`answer` is then null). */
  answerRef?: BlobRef;
}

/** What one event changed, as a client renders it. */
export type Change = TextDelta | Reset | ToolCalled | ToolReturned | Waiting | Ended;

/** Anything with the Event JSON's `type` and `data` (a typed `Event`, a recorded log's entry). */
export interface FoldableEvent {
  type: string;
  data?: unknown;
}

/** A tool call or result as the shared fixtures record it (`Transcript.toJSON`). */
export type ToolJSON =
  | { call: string; callId: string; arguments: Record<string, unknown>; requiresApproval: boolean }
  | { result: string; callId: string; ok: boolean; value: unknown; error: string | null;
      valueRef?: BlobRef };

export interface StepJSON {
  step: number;
  text: string;
  tools: ToolJSON[];
}

/** The transcript as `agentlane.transcript.Transcript.to_json()` gives it. */
export interface TranscriptJSON {
  status: string;
  text: string;
  steps: StepJSON[];
  answer: string | null;
  reason: string | null;
  waiting: { reason: string; name: string | null; deadline: string | null } | null;
  answerRef?: BlobRef;
}

const ENDS: Readonly<Record<string, EndStatus>> = {
  Completed: "completed",
  Failed: "failed",
  Cancelled: "cancelled",
};

interface Step {
  number: number;
  /** The attempt whose tokens show (null: nothing shows). */
  attempt: number | null;
  parts: string[];
  /** The next token index expected of the showing attempt (a repeat is ignored). */
  nextIndex: number;
  failed: Set<number>;
  tools: (ToolCalled | ToolReturned)[];
}

/** One run's transcript, folded event by event (in `seq` order, each once). */
export class Transcript {
  status = "queued";
  answer: string | null = null;
  answerRef: BlobRef | null = null;
  reason: string | null = null;
  waiting: Waiting | null = null;
  readonly #steps = new Map<number, Step>();

  /** Fold one event (the Event JSON of docs/contract.md); what changed, in order. */
  apply(event: FoldableEvent): Change[] {
    const data = (event.data ?? {}) as Record<string, unknown>;
    switch (event.type) {
      case "RunStarted":
      case "Resumed":
        this.status = "running";
        this.waiting = null;
        return [];
      case "Token":
        return this.#token(data as unknown as TokenData);
      case "StepFailed":
        return this.#failed(data as unknown as StepFailedData);
      case "ToolCall": {
        const call = data as unknown as ToolCallData;
        const called: ToolCalled = {
          kind: "toolCall",
          step: call.step,
          callId: call.callId,
          name: call.name,
          arguments: (call.arguments || {}) as Record<string, unknown>,
          requiresApproval: Boolean(call.requiresApproval),
        };
        this.#step(called.step).tools.push(called);
        return [called];
      }
      case "ToolResult": {
        const result = data as unknown as ToolResultData;
        const returned: ToolReturned = {
          kind: "toolResult",
          step: result.step,
          callId: result.callId,
          name: result.name,
          ok: Boolean(result.ok),
          result: result.result ?? null,
          error: result.error ?? null,
        };
        if (result.resultRef) returned.resultRef = result.resultRef;
        this.#step(returned.step).tools.push(returned);
        return [returned];
      }
      case "Suspended": {
        const suspended = data as unknown as SuspendedData;
        this.status = "suspended";
        this.waiting = {
          kind: "waiting",
          reason: suspended.reason,
          name: suspended.name ?? null,
          detail: suspended.detail ?? null,
          deadline: suspended.deadline ?? null,
        };
        return [this.waiting];
      }
    }
    const status = Object.hasOwn(ENDS, event.type) ? ENDS[event.type] : undefined;
    if (status === undefined) return [];
    const end = data as Partial<CompletedData> & Partial<FailedData> & Partial<CancelledData>;
    this.status = status;
    this.waiting = null;
    this.answer = end.answer ?? null;
    this.answerRef = end.answerRef ?? null;
    this.reason = end.reason ?? null;
    const ended: Ended = { kind: "ended", status, answer: this.answer, reason: this.reason };
    if (this.answerRef !== null) ended.answerRef = this.answerRef;
    return [ended];
  }

  #token(data: TokenData): Change[] {
    // A token without a step tag (an older writer) belongs to step -1: shown in order first.
    const number = data.step ?? -1;
    const step = this.#step(number);
    const attempt = data.attempt || 1;
    const index = data.index ?? step.nextIndex;
    if (step.failed.has(attempt) || (step.attempt !== null && attempt < step.attempt)) {
      return []; // text of an attempt that already lost
    }
    const changes: Change[] = [];
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

  #failed(data: StepFailedData): Change[] {
    const step = this.#step(data.step);
    step.failed.add(data.attempt);
    if (step.attempt !== data.attempt) return [];
    const hadText = step.parts.length > 0;
    step.attempt = null;
    step.parts = [];
    step.nextIndex = 0;
    return hadText ? [{ kind: "reset", step: data.step }] : [];
  }

  #step(number: number): Step {
    let step = this.#steps.get(number);
    if (step === undefined) {
      step = { number, attempt: null, parts: [], nextIndex: 0, failed: new Set(), tools: [] };
      this.#steps.set(number, step);
    }
    return step;
  }

  #ordered(): Step[] {
    return [...this.#steps.values()].sort((a, b) => a.number - b.number);
  }

  /** Each step's visible text, by step number (steps with none left out). */
  stepTexts(): Map<number, string> {
    return new Map(
      this.#ordered()
        .filter((step) => step.parts.length)
        .map((step) => [step.number, step.parts.join("")]),
    );
  }

  /** The run's streamed text: its steps' visible texts in step order. */
  get text(): string {
    return [...this.stepTexts().values()].join("");
  }

  /** The transcript as the shared fixtures record it (tests/fixtures/transcripts). */
  toJSON(): TranscriptJSON {
    const steps = this.#ordered()
      .filter((step) => step.parts.length || step.tools.length)
      .map((step) => ({ step: step.number, text: step.parts.join(""), tools: step.tools.map(toolJSON) }));
    const body: TranscriptJSON = {
      status: this.status,
      text: this.text,
      steps,
      answer: this.answer,
      reason: this.reason,
      waiting: this.waiting === null
        ? null
        : { reason: this.waiting.reason, name: this.waiting.name, deadline: this.waiting.deadline },
    };
    if (this.answerRef !== null) body.answerRef = this.answerRef;
    return body;
  }
}

function toolJSON(tool: ToolCalled | ToolReturned): ToolJSON {
  if (tool.kind === "toolCall") {
    return { call: tool.name, callId: tool.callId, arguments: { ...tool.arguments },
      requiresApproval: tool.requiresApproval };
  }
  const body: ToolJSON = {
    result: tool.name, callId: tool.callId, ok: tool.ok, value: tool.result, error: tool.error,
  };
  if (tool.resultRef !== undefined) body.valueRef = tool.resultRef;
  return body;
}

/** Fold a run's events (Event JSON, `seq` order) into its transcript. */
export function transcriptOf(events: Iterable<FoldableEvent>): Transcript {
  const transcript = new Transcript();
  for (const event of events) transcript.apply(event);
  return transcript;
}
