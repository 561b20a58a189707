/**
 * "Only the latest matters" for live views: each new request aborts the one before it, and a
 * debounced trigger coalesces bursts of events (typing, cursor moves) into one request.
 * Pure (timers only), unit-tested.
 */

export class LatestOnly {
  private current: AbortController | undefined;

  /** A signal for a new request; the previous request's signal is aborted. */
  next(): AbortSignal {
    this.current?.abort();
    this.current = new AbortController();
    return this.current.signal;
  }

  /** Whether `signal` is still the latest one (results of superseded requests are dropped). */
  isLatest(signal: AbortSignal): boolean {
    return this.current?.signal === signal && !signal.aborted;
  }

  cancel(): void {
    this.current?.abort();
    this.current = undefined;
  }
}

export class Debouncer {
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly ms: number, private readonly fn: () => void) {}

  trigger(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.fn();
    }, this.ms);
  }

  get pending(): boolean {
    return this.timer !== undefined;
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** Whether an error means "cancelled" (ours or the engine's), which is never shown to the user. */
export function isCancellation(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  return code === 'cancelled' || e.name === 'CancelledError' || e.name === 'AbortError' || e.message === 'cancelled';
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
