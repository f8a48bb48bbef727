// Compiled from clients/typescript/src/transcript.ts by `npm run build`: do not edit.
const ENDS = {
    Completed: "completed",
    Failed: "failed",
    Cancelled: "cancelled",
};
/** One run's transcript, folded event by event (in `seq` order, each once). */
export class Transcript {
    status = "queued";
    answer = null;
    answerRef = null;
    reason = null;
    waiting = null;
    #steps = new Map();
    /** Fold one event (the Event JSON of docs/contract.md); what changed, in order. */
    apply(event) {
        const data = (event.data ?? {});
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
                const call = data;
                const called = {
                    kind: "toolCall",
                    step: call.step,
                    callId: call.callId,
                    name: call.name,
                    arguments: (call.arguments || {}),
                    requiresApproval: Boolean(call.requiresApproval),
                };
                this.#step(called.step).tools.push(called);
                return [called];
            }
            case "ToolResult": {
                const result = data;
                const returned = {
                    kind: "toolResult",
                    step: result.step,
                    callId: result.callId,
                    name: result.name,
                    ok: Boolean(result.ok),
                    result: result.result ?? null,
                    error: result.error ?? null,
                };
                if (result.resultRef)
                    returned.resultRef = result.resultRef;
                this.#step(returned.step).tools.push(returned);
                return [returned];
            }
            case "Suspended": {
                const suspended = data;
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
        if (status === undefined)
            return [];
        const end = data;
        this.status = status;
        this.waiting = null;
        this.answer = end.answer ?? null;
        this.answerRef = end.answerRef ?? null;
        this.reason = end.reason ?? null;
        const ended = { kind: "ended", status, answer: this.answer, reason: this.reason };
        if (this.answerRef !== null)
            ended.answerRef = this.answerRef;
        return [ended];
    }
    #token(data) {
        // A token without a step tag (an older writer) belongs to step -1: shown in order first.
        const number = data.step ?? -1;
        const step = this.#step(number);
        const attempt = data.attempt || 1;
        const index = data.index ?? step.nextIndex;
        if (step.failed.has(attempt) || (step.attempt !== null && attempt < step.attempt)) {
            return []; // text of an attempt that already lost
        }
        const changes = [];
        if (attempt !== step.attempt) {
            // A newer attempt streams: whatever an older one showed goes.
            if (step.parts.length)
                changes.push({ kind: "reset", step: number });
            step.attempt = attempt;
            step.parts = [];
            step.nextIndex = 0;
        }
        if (index < step.nextIndex)
            return changes; // a repeat
        step.parts.push(data.text);
        step.nextIndex = index + 1;
        changes.push({ kind: "delta", step: number, text: data.text });
        return changes;
    }
    #failed(data) {
        const step = this.#step(data.step);
        step.failed.add(data.attempt);
        if (step.attempt !== data.attempt)
            return [];
        const hadText = step.parts.length > 0;
        step.attempt = null;
        step.parts = [];
        step.nextIndex = 0;
        return hadText ? [{ kind: "reset", step: data.step }] : [];
    }
    #step(number) {
        let step = this.#steps.get(number);
        if (step === undefined) {
            step = { number, attempt: null, parts: [], nextIndex: 0, failed: new Set(), tools: [] };
            this.#steps.set(number, step);
        }
        return step;
    }
    #ordered() {
        return [...this.#steps.values()].sort((a, b) => a.number - b.number);
    }
    /** Each step's visible text, by step number (steps with none left out). */
    stepTexts() {
        return new Map(this.#ordered()
            .filter((step) => step.parts.length)
            .map((step) => [step.number, step.parts.join("")]));
    }
    /** The run's streamed text: its steps' visible texts in step order. */
    get text() {
        return [...this.stepTexts().values()].join("");
    }
    /** The transcript as the shared fixtures record it (tests/fixtures/transcripts). */
    toJSON() {
        const steps = this.#ordered()
            .filter((step) => step.parts.length || step.tools.length)
            .map((step) => ({ step: step.number, text: step.parts.join(""), tools: step.tools.map(toolJSON) }));
        const body = {
            status: this.status,
            text: this.text,
            steps,
            answer: this.answer,
            reason: this.reason,
            waiting: this.waiting === null
                ? null
                : { reason: this.waiting.reason, name: this.waiting.name, deadline: this.waiting.deadline },
        };
        if (this.answerRef !== null)
            body.answerRef = this.answerRef;
        return body;
    }
}
function toolJSON(tool) {
    if (tool.kind === "toolCall") {
        return { call: tool.name, callId: tool.callId, arguments: { ...tool.arguments },
            requiresApproval: tool.requiresApproval };
    }
    const body = {
        result: tool.name, callId: tool.callId, ok: tool.ok, value: tool.result, error: tool.error,
    };
    if (tool.resultRef !== undefined)
        body.valueRef = tool.resultRef;
    return body;
}
/** Fold a run's events (Event JSON, `seq` order) into its transcript. */
export function transcriptOf(events) {
    const transcript = new Transcript();
    for (const event of events)
        transcript.apply(event);
    return transcript;
}
