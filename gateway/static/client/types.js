// Compiled from clients/typescript/src/types.ts by `npm run build`: do not edit.
/** The event types that end a run. */
export const TERMINAL_TYPES = new Set(["Completed", "Failed", "Cancelled"]);
/** Whether the event ends its run (`Completed`, `Failed`, `Cancelled`). */
export function isTerminal(event) {
    return TERMINAL_TYPES.has(event.type);
}
