/** Jittered exponential backoff ("full jitter"): many clients retrying do not synchronise. */
export class Backoff {
  readonly initialMs: number;
  readonly maximumMs: number;
  attempt = 0;

  /** Delays of `uniform(0, min(maximumMs, initialMs * 2**attempt))`; `reset()` after a success. */
  constructor({ initialMs = 100, maximumMs = 10_000 }: { initialMs?: number; maximumMs?: number } = {}) {
    this.initialMs = initialMs;
    this.maximumMs = maximumMs;
  }

  reset(): void {
    this.attempt = 0;
  }

  nextDelayMs(): number {
    const ceiling = Math.min(this.maximumMs, this.initialMs * 2 ** this.attempt);
    this.attempt += 1;
    return Math.random() * ceiling;
  }

  sleep(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, this.nextDelayMs()));
  }
}
