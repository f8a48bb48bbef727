/**
 * The API's JSON as TypeScript types, generated (`npm run generate`) from the server's own
 * schemas: `generated/openapi.ts` from the command API's `/openapi.json`, `generated/frames.ts`
 * from the gateway's `/ws-schema.json` (its WebSocket frames, with every event type's `data`).
 */
import type { components } from "./generated/openapi.js";
import type { Event } from "./generated/frames.js";

export type { components, operations, paths } from "./generated/openapi.js";
export type * from "./generated/frames.js";

type Schemas = components["schemas"];

/** The answer to a start (`POST /agents/{sessionId}/runs`). */
export type RunAccepted = Schemas["RunAcceptedResponse"];
/** A run (`GET /runs/{executionId}`): status, answer, error, usage. */
export type Run = Schemas["RunResponse"];
export type RunStatus = Run["status"];
export type Usage = Schemas["Usage"];
export type StartRunRequest = Schemas["StartRunRequest"];
export type OnConflict = NonNullable<StartRunRequest["onConflict"]>;
/** A session's runs and their usage, totalled (`GET /sessions/{sessionId}/usage`). */
export type SessionUsage = Schemas["SessionUsageResponse"];
export type ForkAccepted = Schemas["ForkAccepted"];
/** The cluster as an operator sees it (`GET /ops/overview`). */
export type OpsOverview = Schemas["OpsOverview"];
export type CancelAccepted = Schemas["CancelAccepted"];
export type SignalAccepted = Schemas["SignalAccepted"];
/** application/problem+json (RFC 9457). */
export type Problem = Schemas["Problem"];
/** The type of an event (`Token`, `Completed`, …). */
export type EventType = Event["type"];

/** One page of a session's events (`GET /sessions/{sessionId}/events`), events typed. */
export interface EventsPage {
  events: Event[];
  /** Pass as `after` to read the following page; null when this page is the end. */
  next: number | null;
}

/** The event types that end a run. */
export const TERMINAL_TYPES: ReadonlySet<string> = new Set(["Completed", "Failed", "Cancelled"]);

/** Whether the event ends its run (`Completed`, `Failed`, `Cancelled`). */
export function isTerminal(event: { type: string }): boolean {
  return TERMINAL_TYPES.has(event.type);
}
