-- The W3C traceparent of the span that appended each event (docs/contract.md, "Event"): how the
-- runner's, the projector's and the gateway's spans join the trace of the request that caused the
-- event. Operational metadata, not history: it is outside the hash chain, and NULL when tracing
-- was off. Adding a nullable column without a default rewrites nothing.
ALTER TABLE agent_events ADD COLUMN trace_context text;
