// Compiled from clients/typescript/src/socket.ts by `npm run build`: do not edit.
/**
 * A session's WebSocket (docs/contract.md, "WebSocket"): its events as an async iterator that
 * reconnects by itself and resumes after the last `eventId` it delivered (no gap, no duplicate),
 * and the `ask`/`cancel`/`approve` commands over the same socket.
 *
 * Commands are delivered at most once: a frame sent into a socket that is being cut is lost
 * (`ask` is safe to repeat with the same `runId`; the HTTP API answers every command). A refused
 * command comes back as an `error` frame: a `GatewayError` kept in `errors` and passed to
 * `onError`.
 *
 * Works with the browser's `WebSocket` and, on Node (which has no global WebSocket before 22),
 * with the `ws` package's: `new SessionSocket(url, session, { WebSocket })`.
 */
import { Backoff } from "./backoff.js";
import { AgentlaneClientError, APIConnectionError, ConnectionLost, GatewayError } from "./errors.js";
/** The gateway refused the token (or it expired): reconnecting would not help. */
export const CLOSE_UNAUTHORIZED = 4001;
const OPEN = 1;
/**
 * One session's events from a gateway, resumed across disconnects by `lastEventId`.
 * Iterate it once (`for await (const event of socket)`); leaving the loop closes it.
 */
export class SessionSocket {
    sessionId;
    /** The last `eventId` delivered: a reconnect resumes after it. */
    lastEventId;
    /** Connections opened so far. */
    connections = 0;
    /** Whether the gateway has sent the history of the current connection. */
    ready = false;
    /** Close codes seen so far (e.g. 1001 on a gateway restart, 4008 when we fell behind). */
    closeCodes = [];
    /** `error` frames the gateway answered (bad frames, refused commands). */
    errors = [];
    #base;
    #token;
    #WebSocket;
    #backoff;
    #listeners;
    #ws = null;
    #started = false;
    #closed = false;
    #failure = null;
    #timer;
    #queue = [];
    #wake = null;
    #openWaiters = new Set();
    /** `baseUrl`: the gateway (`http(s)://` or `ws(s)://`), e.g. `http://127.0.0.1:8080`. */
    constructor(baseUrl, sessionId, options = {}) {
        const WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
        if (WebSocketImpl === undefined) {
            throw new AgentlaneClientError("no global WebSocket (Node < 22): pass one, e.g. { WebSocket } from the ws package");
        }
        this.#WebSocket = WebSocketImpl;
        this.#base = new URL(baseUrl);
        const schemes = { "http:": "ws:", "https:": "wss:" };
        this.#base.protocol = schemes[this.#base.protocol] ?? this.#base.protocol;
        this.sessionId = sessionId;
        this.#token = options.token ?? null;
        this.lastEventId = options.after ?? 0;
        this.#backoff = new Backoff({ initialMs: 50, maximumMs: options.backoffMaxMs ?? 5000 });
        this.#listeners = options;
        if (options.signal?.aborted)
            this.close();
        options.signal?.addEventListener("abort", () => this.close(), { once: true });
    }
    /** The URL the next connection opens (it resumes after `lastEventId`). */
    get url() {
        const url = new URL(this.#base);
        url.pathname = `${url.pathname.replace(/\/+$/, "")}/ws/${encodeURIComponent(this.sessionId)}`;
        url.search = "";
        url.searchParams.set("lastEventId", String(this.lastEventId));
        if (this.#token)
            url.searchParams.set("token", this.#token);
        return url.toString();
    }
    /** Whether a connection is open now (a command sent now goes out). */
    get connected() {
        return this.#ws !== null && this.#ws.readyState === OPEN;
    }
    /** Whether the socket was closed (by `close()`, or for good by the gateway). */
    get closed() {
        return this.#closed;
    }
    /** Start connecting (iterating or sending does it too). */
    open() {
        if (!this.#started && !this.#closed) {
            this.#started = true;
            this.#connect();
        }
        return this;
    }
    /**
     * Every event of the session after `after`, once each, in `seq` order, for as long as the
     * caller iterates; reconnects (and resumes) whenever the socket drops. Throws ConnectionLost
     * when the gateway refuses the token (4001). Leaving the loop closes the socket.
     */
    async *events() {
        this.open();
        try {
            for (;;) {
                const event = this.#queue.shift();
                if (event !== undefined) {
                    yield event;
                    continue;
                }
                if (this.#failure !== null)
                    throw this.#failure;
                if (this.#closed)
                    return;
                await new Promise((resolve) => {
                    this.#wake = resolve;
                });
            }
        }
        finally {
            this.close();
        }
    }
    [Symbol.asyncIterator]() {
        return this.events();
    }
    /** Close for good: no reconnect; an iteration in progress ends (events not yet taken go). */
    close() {
        if (this.#closed)
            return;
        this.#closed = true;
        this.#queue.length = 0;
        this.#shutDown();
    }
    /** Send a frame now if a connection is open; false (and nothing sent) if none is. */
    send(frame) {
        const ws = this.#ws;
        if (ws === null || ws.readyState !== OPEN)
            return false;
        ws.send(JSON.stringify(frame));
        return true;
    }
    /** Start a run in this session (`runId` makes retries safe: one run per id). */
    ask(runId, message, { onConflict = "enqueue", timeoutMs = 30_000 } = {}) {
        return this.#sendWhenOpen({ type: "ask", runId, message, onConflict }, timeoutMs);
    }
    /** Ask a run to stop. */
    cancel(executionId, { timeoutMs = 30_000 } = {}) {
        return this.#sendWhenOpen({ type: "cancel", executionId }, timeoutMs);
    }
    /** Deliver the signal `name` (an approval: `approve:<callId>`) to a suspended run. */
    approve(executionId, name, payload = null, { timeoutMs = 30_000 } = {}) {
        return this.#sendWhenOpen({ type: "approve", executionId, name, payload }, timeoutMs);
    }
    async #sendWhenOpen(frame, timeoutMs) {
        this.open();
        const deadline = Date.now() + timeoutMs;
        while (!this.send(frame)) {
            if (this.#closed)
                throw this.#failure ?? new ConnectionLost(1000, "closed by the client");
            const left = deadline - Date.now();
            if (left <= 0) {
                throw new APIConnectionError(`no connection to the gateway within ${timeoutMs} ms`);
            }
            await new Promise((resolve) => {
                const done = () => {
                    clearTimeout(timer);
                    this.#openWaiters.delete(done);
                    resolve();
                };
                const timer = setTimeout(done, left);
                this.#openWaiters.add(done);
            });
        }
    }
    #connect() {
        this.#timer = undefined;
        if (this.#closed)
            return;
        this.ready = false;
        this.#listeners.onConnecting?.(this.lastEventId);
        let ws;
        try {
            ws = new this.#WebSocket(this.url);
        }
        catch (error) {
            this.#fail(error instanceof Error ? error : new AgentlaneClientError(String(error)));
            return;
        }
        this.#ws = ws;
        ws.onopen = () => {
            if (this.#ws !== ws)
                return;
            this.connections += 1;
            this.#listeners.onOpen?.(this.connections);
            for (const waiter of [...this.#openWaiters])
                waiter();
        };
        ws.onmessage = (message) => {
            if (this.#ws === ws && typeof message.data === "string")
                this.#frame(ws, message.data);
        };
        ws.onerror = () => { }; // a close follows, and says what to do
        ws.onclose = (close) => {
            if (this.#ws !== ws)
                return; // closed by us, or replaced
            this.#ws = null;
            this.ready = false;
            const code = close.code ?? 1006;
            const reason = close.reason ?? "";
            this.closeCodes.push(code);
            if (this.#closed)
                return;
            if (code === CLOSE_UNAUTHORIZED) {
                this.#fail(new ConnectionLost(code, reason));
                return;
            }
            this.#listeners.onClose?.(code, reason);
            this.#timer = setTimeout(() => this.#connect(), this.#backoff.nextDelayMs());
        };
    }
    #frame(ws, text) {
        let frame;
        try {
            frame = JSON.parse(text);
        }
        catch {
            return; // not the gateway's
        }
        switch (frame.type) {
            case "event":
                // The gateway guarantees once-only; this guard keeps the promise through a misbehaving
                // proxy too.
                if (frame.event.eventId <= this.lastEventId)
                    return;
                this.lastEventId = frame.event.eventId;
                this.#queue.push(frame.event);
                this.#notify();
                break;
            case "ready":
                this.#backoff.reset();
                this.ready = true;
                this.#listeners.onReady?.(frame.lastEventId);
                break;
            case "ping":
                ws.send(JSON.stringify({ type: "pong" }));
                break;
            case "error": {
                const error = new GatewayError(frame.code, frame.message, frame.retryAfter ?? null);
                this.errors.push(error);
                this.#listeners.onError?.(error);
                break;
            }
        }
    }
    #fail(error) {
        this.#failure = error;
        this.#closed = true;
        this.#shutDown();
    }
    #shutDown() {
        clearTimeout(this.#timer);
        this.#timer = undefined;
        const ws = this.#ws;
        this.#ws = null;
        this.ready = false;
        if (ws !== null) {
            try {
                ws.close(1000, "closed by the client");
            }
            catch {
                // still connecting in a browser that refuses to close then: it is dropped anyway
            }
        }
        this.#notify();
        for (const waiter of [...this.#openWaiters])
            waiter();
    }
    #notify() {
        const wake = this.#wake;
        this.#wake = null;
        wake?.();
    }
}
