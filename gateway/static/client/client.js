// Compiled from clients/typescript/src/client.ts by `npm run build`: do not edit.
/**
 * The client: runs over the HTTP API (`fetch`), a session's events over its WebSocket.
 *
 *     const client = new Client("http://127.0.0.1:8080", { token });
 *     for await (const change of client.runs.stream("session-1", "hello")) { … }
 *
 * `runs`: `create`, `get`, `cancel`, `signal`, `approve`, `stream` (start a run and yield what a
 * reader shows of it, folded by the contract's rule, so a crash-and-retry comes as a `reset` of
 * the step's text), `follow`. `sessions`: `events` (typed events, history then live, reconnecting
 * and resuming by `lastEventId`), `page`, `connect` (the session's socket with its commands),
 * `usage` (the session's tokens and cost). `operations`: `overview` (operators only: the cluster,
 * every tenant's usage). `blobs`: `get` (a value an event keeps in the blob store, checked against
 * its hash).
 */
import { Backoff } from "./backoff.js";
import { APIConnectionError, BlobMismatch, raiseForProblem } from "./errors.js";
import { SessionSocket } from "./socket.js";
import { Transcript } from "./transcript.js";
/** Attempts of a request that did not reach the server (same runId, so a start stays one run). */
const TRANSPORT_ATTEMPTS = 3;
/** `new Client(baseUrl, { token })`; `runs` and `sessions` hold the operations. */
export class Client {
    baseUrl;
    token;
    runs;
    sessions;
    operations;
    blobs;
    #timeoutMs;
    #fetch;
    #WebSocket;
    #backoffMaxMs;
    constructor(baseUrl = "http://127.0.0.1:8080", options = {}) {
        this.baseUrl = baseUrl.replace(/\/+$/, "");
        this.token = options.token ?? null;
        this.#timeoutMs = options.timeoutMs ?? 30_000;
        this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
        this.#WebSocket = options.WebSocket;
        this.#backoffMaxMs = options.backoffMaxMs;
        this.runs = new Runs(this);
        this.sessions = new Sessions(this);
        this.operations = new Operations(this);
        this.blobs = new Blobs(this);
    }
    /** One request of the API; its JSON answer, or the problem as a typed error. */
    async request(method, path, body, query) {
        return (await (await this.response(method, path, body, query)).json());
    }
    /** One request of the API; its answer, or the problem as a typed error. */
    async response(method, path, body, query) {
        const url = new URL(this.baseUrl + path);
        for (const [key, value] of Object.entries(query ?? {}))
            url.searchParams.set(key, String(value));
        const headers = { accept: "application/json" };
        if (this.token)
            headers.authorization = `Bearer ${this.token}`;
        if (body !== undefined)
            headers["content-type"] = "application/json";
        const backoff = new Backoff({ initialMs: 100, maximumMs: 1000 });
        let response;
        for (let attempt = 1;; attempt += 1) {
            try {
                response = await this.#fetch(url, {
                    method,
                    headers,
                    body: body === undefined ? undefined : JSON.stringify(body),
                    signal: AbortSignal.timeout(this.#timeoutMs),
                });
                break;
            }
            catch (error) {
                // fetch rejects only when no answer came (refused, reset, timed out).
                if (attempt === TRANSPORT_ATTEMPTS) {
                    throw new APIConnectionError(`${method} ${path}: ${describe(error)}`, { cause: error });
                }
                await backoff.sleep();
            }
        }
        await raiseForProblem(response);
        return response;
    }
    /** A socket on `sessionId` with this client's token and WebSocket. */
    socket(sessionId, after = 0, listeners = {}) {
        return new SessionSocket(this.baseUrl, sessionId, {
            ...listeners,
            token: this.token,
            after,
            ...(this.#WebSocket === undefined ? {} : { WebSocket: this.#WebSocket }),
            ...(this.#backoffMaxMs === undefined ? {} : { backoffMaxMs: this.#backoffMaxMs }),
        });
    }
}
export class Runs {
    #client;
    constructor(client) {
        this.#client = client;
    }
    /** Start a run; the same `runId` again is the same run (a safe retry). */
    create(sessionId, message, { runId, onConflict = "enqueue", approvalTimeoutSeconds, model, tools, systemPrompt } = {}) {
        const body = { runId: runId ?? `run-${randomHex()}`, message, onConflict };
        if (approvalTimeoutSeconds !== undefined)
            body.approvalTimeoutSeconds = approvalTimeoutSeconds;
        if (model !== undefined || tools !== undefined || systemPrompt !== undefined) {
            body.options = {
                ...(model === undefined ? {} : { model }),
                ...(tools === undefined ? {} : { tools }),
                ...(systemPrompt === undefined ? {} : { systemPrompt }),
            };
        }
        return this.#client.request("POST", `/agents/${encodeURIComponent(sessionId)}/runs`, body);
    }
    /** The run's status, answer, error and usage. */
    get(executionId) {
        return this.#client.request("GET", `/runs/${encodeURIComponent(executionId)}`);
    }
    /** Ask the run to stop; the `eventId` of its CancelRequested (null: it had ended). */
    async cancel(executionId, { reason } = {}) {
        const answer = await this.#client.request("POST", `/runs/${encodeURIComponent(executionId)}/cancel`, reason === undefined ? {} : { reason });
        return answer.eventId ?? null;
    }
    /** Deliver the signal `name`; the `eventId` of its SignalReceived. */
    async signal(executionId, name, payload = null) {
        const answer = await this.#client.request("POST", `/runs/${encodeURIComponent(executionId)}/signals/${encodeURIComponent(name)}`, { payload });
        return answer.eventId;
    }
    /** Answer the approval a tool call waits for (`waiting` with reason `approval`). */
    approve(executionId, callId, { approved = true } = {}) {
        return this.signal(executionId, `approve:${callId}`, { approved });
    }
    /**
     * Start a run and yield what a reader shows of it, folded (`delta`, `reset` when a crashed
     * attempt's text must go, `toolCall`/`toolResult`, `waiting`), ending with its `ended`.
     */
    async *stream(sessionId, message, options = {}) {
        const accepted = await this.create(sessionId, message, options);
        yield* this.follow(accepted, options);
    }
    /** What a reader shows of a run already started, from its beginning to its end. */
    async *follow(run, { signal } = {}) {
        const transcript = new Transcript();
        const socket = this.#client.socket(run.sessionId, run.eventId - 1, signal ? { signal } : {});
        for await (const event of socket) {
            if (event.executionId !== run.executionId)
                continue;
            for (const change of transcript.apply(event)) {
                yield change;
                if (change.kind === "ended")
                    return; // leaving the loop closes the socket
            }
        }
    }
}
export class Sessions {
    #client;
    constructor(client) {
        this.#client = client;
    }
    /** The session's socket: iterate its events, send its commands; `close()` it when done. */
    connect(sessionId, { after = 0, ...listeners } = {}) {
        return this.#client.socket(sessionId, after, listeners);
    }
    /**
     * Every event of the session after `after`, once each, in order, history then live, for as
     * long as the caller iterates; reconnects and resumes by `lastEventId`.
     */
    async *events(sessionId, options = {}) {
        yield* this.connect(sessionId, options);
    }
    /** The session's runs with their tokens and cost totalled (the read models: they trail the
     * log by the projector's lag). */
    usage(sessionId) {
        return this.#client.request("GET", `/sessions/${encodeURIComponent(sessionId)}/usage`);
    }
    /**
     * Start `newSessionId` as a fork of `sessionId` at its event `atEventId`: a run started there
     * continues from this session's state at that event; this session is not touched.
     */
    fork(sessionId, atEventId, newSessionId) {
        return this.#client.request("POST", `/sessions/${encodeURIComponent(sessionId)}/fork`, { atEventId, newSessionId });
    }
    /** One page of the session's events and the `after` of the next (`next`, null at the end). */
    page(sessionId, { after = 0, limit = 100 } = {}) {
        // The same Event JSON as on the socket, whose schema types every event's data.
        return this.#client.request("GET", `/sessions/${encodeURIComponent(sessionId)}/events`, undefined, { after, limit });
    }
}
export class Operations {
    #client;
    constructor(client) {
        this.#client = client;
    }
    /**
     * The cluster as of one database snapshot (`GET /ops/overview`): runners and their shards,
     * due work per shard, projector lag and the horizon's age, runs by status, and every tenant's
     * usage per model and day for the last `days` days. Operators only: with auth on, the token
     * must carry the operator claim (a tenant's token gets a 403 `APIError`).
     */
    overview({ days = 14 } = {}) {
        return this.#client.request("GET", "/ops/overview", undefined, { days });
    }
}
export class Blobs {
    #client;
    constructor(client) {
        this.#client = client;
    }
    /**
     * The value an event keeps in the blob store: pass its `…Ref` (`resultRef`, `answerRef`, …)
     * or the bare sha256. The bytes are checked against the hash before they are decoded
     * (`BlobMismatch` otherwise), so the event's place in the hash chain vouches for them.
     */
    async get(ref) {
        const sha256 = typeof ref === "string" ? ref : ref.sha256;
        const response = await this.#client.response("GET", `/blobs/${encodeURIComponent(sha256)}`);
        const bytes = new Uint8Array(await response.arrayBuffer());
        const digest = Array.from(new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", bytes)))
            .map((byte) => byte.toString(16).padStart(2, "0")).join("");
        if (digest !== sha256)
            throw new BlobMismatch(`blob ${sha256}: the bytes received hash to ${digest}`);
        return JSON.parse(new TextDecoder().decode(bytes));
    }
}
function randomHex() {
    const crypto = globalThis.crypto;
    if (crypto?.randomUUID)
        return crypto.randomUUID().replaceAll("-", "");
    // Outside a secure context (a browser page over plain http on another host).
    return Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join("");
}
function describe(error) {
    if (error instanceof Error) {
        const cause = error.cause;
        return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
    }
    return String(error);
}
