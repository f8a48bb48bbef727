// Compiled from clients/typescript/src/backoff.ts by `npm run build`: do not edit.
/** Jittered exponential backoff ("full jitter"): many clients retrying do not synchronise. */
export class Backoff {
    initialMs;
    maximumMs;
    attempt = 0;
    /** Delays of `uniform(0, min(maximumMs, initialMs * 2**attempt))`; `reset()` after a success. */
    constructor({ initialMs = 100, maximumMs = 10_000 } = {}) {
        this.initialMs = initialMs;
        this.maximumMs = maximumMs;
    }
    reset() {
        this.attempt = 0;
    }
    nextDelayMs() {
        const ceiling = Math.min(this.maximumMs, this.initialMs * 2 ** this.attempt);
        this.attempt += 1;
        return Math.random() * ceiling;
    }
    sleep() {
        return new Promise((resolve) => setTimeout(resolve, this.nextDelayMs()));
    }
}
