// Compiled from clients/typescript/src/index.ts by `npm run build`: do not edit.
/**
 * agentlane's TypeScript client (ESM, no runtime dependencies): runs over the HTTP API, a
 * session's events over its WebSocket, and a run's stream folded by the contract's rule.
 * See README.md.
 */
export { Backoff } from "./backoff.js";
export { Blobs, Client, Operations, Runs, Sessions } from "./client.js";
export { AgentlaneClientError, APIConnectionError, APIError, BadRequest, BlobMismatch, Conflict, ConnectionLost, Forbidden, GatewayError, NotFound, RateLimited, ServiceUnavailable, Unauthorized, } from "./errors.js";
export { CLOSE_UNAUTHORIZED, SessionSocket, } from "./socket.js";
export { Transcript, transcriptOf, } from "./transcript.js";
export * from "./types.js";
