/**
 * agentlane's TypeScript client (ESM, no runtime dependencies): runs over the HTTP API, a
 * session's events over its WebSocket, and a run's stream folded by the contract's rule.
 * See README.md.
 */
export { Backoff } from "./backoff.js";
export { Blobs, Client, Operations, Runs, Sessions, type ClientOptions, type CreateOptions, type FollowOptions } from "./client.js";
export {
  AgentlaneClientError,
  APIConnectionError,
  APIError,
  BadRequest,
  BlobMismatch,
  Conflict,
  ConnectionLost,
  Forbidden,
  GatewayError,
  NotFound,
  RateLimited,
  ServiceUnavailable,
  Unauthorized,
} from "./errors.js";
export {
  CLOSE_UNAUTHORIZED,
  SessionSocket,
  type CommandOptions,
  type SessionSocketListeners,
  type SessionSocketOptions,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./socket.js";
export {
  Transcript,
  transcriptOf,
  type Change,
  type EndStatus,
  type Ended,
  type FoldableEvent,
  type Reset,
  type StepJSON,
  type TextDelta,
  type ToolCalled,
  type ToolJSON,
  type ToolReturned,
  type TranscriptJSON,
  type Waiting,
} from "./transcript.js";
export * from "./types.js";
