/**
 * The errors of the client, one hierarchy (the same as the Python client's):
 *
 *     AgentlaneClientError
 *     ├── APIError               the API answered with a problem (RFC 9457 problem+json)
 *     │   ├── BadRequest         400, 413, 415, 422: the request is wrong; fix it
 *     │   ├── Unauthorized       401: no valid token
 *     │   ├── Forbidden          403: a valid token that may not do this (an operator's route)
 *     │   ├── NotFound           404: no such run or session (of your tenant)
 *     │   ├── Conflict           409: the run conflicts (`run-conflict`) or has ended
 *     │   ├── RateLimited        429: slow down; `retryAfter` seconds
 *     │   └── ServiceUnavailable 503 (and other 5xx): try again later
 *     ├── APIConnectionError     the server could not be reached (after retries)
 *     ├── BlobMismatch           a blob's bytes do not hash to the reference that named them
 *     ├── GatewayError           the gateway answered a socket frame with an `error` frame
 *     └── ConnectionLost         the socket closed for good (4001 unauthorized)
 */
import type { Problem } from "./types.js";

export class AgentlaneClientError extends Error {
  override name = "AgentlaneClientError";
}

/** A problem+json answer: `status`, `type` (the problem's slug), `title`, `detail`. */
export class APIError extends AgentlaneClientError {
  override name = "APIError";
  readonly status: number;
  readonly problem: Problem;
  /** The problem type's slug, e.g. `not-found`, `invalid-request`, `run-conflict`. */
  readonly type: string;
  readonly title: string;
  readonly detail: string;

  constructor(status: number, problem: Problem) {
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
  override name = "BadRequest";
}

export class Unauthorized extends APIError {
  override name = "Unauthorized";
}

export class Forbidden extends APIError {
  override name = "Forbidden";
}

export class NotFound extends APIError {
  override name = "NotFound";
}

export class Conflict extends APIError {
  override name = "Conflict";
}

export class RateLimited extends APIError {
  override name = "RateLimited";
  /** Seconds to wait (the `Retry-After` header), or null. */
  readonly retryAfter: number | null;

  constructor(status: number, problem: Problem, retryAfter: number | null) {
    super(status, problem);
    this.retryAfter = retryAfter;
  }
}

export class ServiceUnavailable extends APIError {
  override name = "ServiceUnavailable";
  readonly retryAfter: number | null;

  constructor(status: number, problem: Problem, retryAfter: number | null) {
    super(status, problem);
    this.retryAfter = retryAfter;
  }
}

/** The request never got an answer: the server is not reachable (or the network failed). */
export class APIConnectionError extends AgentlaneClientError {
  override name = "APIConnectionError";
}

/** `blobs.get`: the bytes received are not the blob the reference names. */
export class BlobMismatch extends AgentlaneClientError {
  override name = "BlobMismatch";
}

/** An `error` frame: `code` (`run_not_found`, `rate_limited`, …) and `message`. */
export class GatewayError extends AgentlaneClientError {
  override name = "GatewayError";
  readonly code: string;
  readonly retryAfter: number | null;

  constructor(code: string, message: string, retryAfter: number | null = null) {
    super(`${code}: ${message}`);
    this.code = code;
    this.retryAfter = retryAfter;
  }

  /** The frame's message (without the code). */
  get detail(): string {
    return this.message.slice(this.code.length + 2);
  }
}

/** The socket closed and will not be reopened (`code` is its close code). */
export class ConnectionLost extends AgentlaneClientError {
  override name = "ConnectionLost";
  readonly code: number;
  readonly reason: string;

  constructor(code: number, reason: string) {
    super(`socket closed ${code}: ${reason}`);
    this.code = code;
    this.reason = reason;
  }
}

/** Turn an error answer into its typed error; a success passes. */
export async function raiseForProblem(response: Response): Promise<void> {
  if (response.ok) return;
  const text = await response.text();
  let problem: Problem;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new TypeError();
    problem = parsed as Problem;
  } catch {
    problem = { type: "about:blank", title: response.statusText, status: response.status, detail: text };
  }
  const status = response.status;
  const retryAfter = seconds(response.headers.get("retry-after"));
  if (status === 429) throw new RateLimited(status, problem, retryAfter);
  if (status >= 500) throw new ServiceUnavailable(status, problem, retryAfter);
  if (status === 401) throw new Unauthorized(status, problem);
  if (status === 403) throw new Forbidden(status, problem);
  if (status === 404) throw new NotFound(status, problem);
  if (status === 409) throw new Conflict(status, problem);
  throw new BadRequest(status, problem);
}

function seconds(value: string | null): number | null {
  if (value === null) return null;
  const parsed = Number(value);
  return Number.isFinite(parsed) ? parsed : null;
}
