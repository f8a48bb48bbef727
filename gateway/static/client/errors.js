// Compiled from clients/typescript/src/errors.ts by `npm run build`: do not edit.
export class AgentlaneClientError extends Error {
    name = "AgentlaneClientError";
}
/** A problem+json answer: `status`, `type` (the problem's slug), `title`, `detail`. */
export class APIError extends AgentlaneClientError {
    name = "APIError";
    status;
    problem;
    /** The problem type's slug, e.g. `not-found`, `invalid-request`, `run-conflict`. */
    type;
    title;
    detail;
    constructor(status, problem) {
        const type = String(problem.type ?? "about:blank").split("/").pop() ?? "";
        super(`${status} ${type}: ${problem.detail || problem.title || ""}`);
        this.status = status;
        this.problem = problem;
        this.type = type;
        this.title = String(problem.title ?? "");
        this.detail = String(problem.detail ?? "");
    }
}
export class BadRequest extends APIError {
    name = "BadRequest";
}
export class Unauthorized extends APIError {
    name = "Unauthorized";
}
export class Forbidden extends APIError {
    name = "Forbidden";
}
export class NotFound extends APIError {
    name = "NotFound";
}
export class Conflict extends APIError {
    name = "Conflict";
}
export class RateLimited extends APIError {
    name = "RateLimited";
    /** Seconds to wait (the `Retry-After` header), or null. */
    retryAfter;
    constructor(status, problem, retryAfter) {
        super(status, problem);
        this.retryAfter = retryAfter;
    }
}
export class ServiceUnavailable extends APIError {
    name = "ServiceUnavailable";
    retryAfter;
    constructor(status, problem, retryAfter) {
        super(status, problem);
        this.retryAfter = retryAfter;
    }
}
/** The request never got an answer: the server is not reachable (or the network failed). */
export class APIConnectionError extends AgentlaneClientError {
    name = "APIConnectionError";
}
/** `blobs.get`: the bytes received are not the blob the reference names. */
export class BlobMismatch extends AgentlaneClientError {
    name = "BlobMismatch";
}
/** An `error` frame: `code` (`run_not_found`, `rate_limited`, …) and `message`. */
export class GatewayError extends AgentlaneClientError {
    name = "GatewayError";
    code;
    retryAfter;
    constructor(code, message, retryAfter = null) {
        super(`${code}: ${message}`);
        this.code = code;
        this.retryAfter = retryAfter;
    }
    /** The frame's message (without the code). */
    get detail() {
        return this.message.slice(this.code.length + 2);
    }
}
/** The socket closed and will not be reopened (`code` is its close code). */
export class ConnectionLost extends AgentlaneClientError {
    name = "ConnectionLost";
    code;
    reason;
    constructor(code, reason) {
        super(`socket closed ${code}: ${reason}`);
        this.code = code;
        this.reason = reason;
    }
}
/** Turn an error answer into its typed error; a success passes. */
export async function raiseForProblem(response) {
    if (response.ok)
        return;
    const text = await response.text();
    let problem;
    try {
        const parsed = JSON.parse(text);
        if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
            throw new TypeError();
        problem = parsed;
    }
    catch {
        problem = { type: "about:blank", title: response.statusText, status: response.status, detail: text };
    }
    const status = response.status;
    const retryAfter = seconds(response.headers.get("retry-after"));
    if (status === 429)
        throw new RateLimited(status, problem, retryAfter);
    if (status >= 500)
        throw new ServiceUnavailable(status, problem, retryAfter);
    if (status === 401)
        throw new Unauthorized(status, problem);
    if (status === 403)
        throw new Forbidden(status, problem);
    if (status === 404)
        throw new NotFound(status, problem);
    if (status === 409)
        throw new Conflict(status, problem);
    throw new BadRequest(status, problem);
}
function seconds(value) {
    if (value === null)
        return null;
    const parsed = Number(value);
    return Number.isFinite(parsed) ? parsed : null;
}
