/**
 * The exchanges of one binding (one run) that have not finished, so that the
 * run's result cannot be made before each of them is in the audit trail.
 *
 * An exchange's record is written when its outcome is known. Until then the
 * exchange holds the record it would leave if the run ended first: from the
 * moment a request is forwarded, that is "allowed, forwarded, injected these
 * headers, no answer yet". Closing the binding waits a bounded time for open
 * exchanges to finish (an upstream that answers soon still gets its status
 * recorded, even though the program is gone), then writes the held record of
 * each one still open and ends it. Nothing is forwarded on behalf of a run
 * after that: a request the injector had not sent yet is not sent.
 *
 * @module
 */

import type { AuditSink, EgressEvent } from "./audit.ts";

/** How long closing a binding waits for open exchanges (at most). */
export const DRAIN_MS = 1_000;

/** One request (or WebSocket upgrade) being handled. */
export class Exchange {
  #log: ExchangeLog;
  #held: (() => EgressEvent) | null = null;
  #abort: (() => void) | null = null;
  #flushed = false;
  /** Whether `flush` wrote the held record (a later one would be a copy). */
  #recordedEarly = false;

  /** @param log The binding's log. */
  constructor(log: ExchangeLog) {
    this.#log = log;
  }

  /**
   * Whether the binding has closed and this exchange must forward nothing
   * more (its record, if any, is already written).
   */
  get cancelled(): boolean {
    return this.#flushed;
  }

  /**
   * Sets the record to write if the run ends before the outcome is known,
   * and how to end the exchange then.
   *
   * @param record Builds the record (called at most once, when needed).
   * @param abort Ends the exchange's upstream side.
   */
  hold(record: () => EgressEvent, abort?: () => void): void {
    this.#held = record;
    this.#abort = abort ?? null;
  }

  /**
   * Writes an event of this exchange; the first one replaces the held
   * record. Once the held record was written (the run ended first), the
   * exchange's own record would be a second copy: dropped.
   *
   * @param event The event.
   */
  readonly record = (event: EgressEvent): void => {
    if (this.#recordedEarly && event.kind !== "secret-echo") return;
    this.#held = null;
    this.#log.write(event);
  };

  /** The exchange is over (called once, however it ended). */
  end(): void {
    this.#log.remove(this);
  }

  /** Writes the held record (if any) and ends the upstream side. */
  flush(): void {
    if (this.#flushed) return;
    const held = this.#held;
    this.#held = null;
    if (held) {
      this.#log.write(held());
      this.#recordedEarly = true;
    }
    this.#flushed = true;
    try {
      this.#abort?.();
    } catch {
      // Already closed.
    }
  }
}

/**
 * The open exchanges of one binding.
 *
 * @example Usage
 * ```ts ignore
 * const log = new ExchangeLog(audit);
 * const exchange = log.open();
 * try { ... } finally { exchange.end(); }
 * await log.drain(DRAIN_MS); // when the binding closes
 * ```
 */
export class ExchangeLog {
  #audit: AuditSink;
  #open = new Set<Exchange>();
  #closed = false;
  #idle: (() => void) | null = null;

  /** @param audit Where records go. */
  constructor(audit: AuditSink) {
    this.#audit = audit;
  }

  /**
   * Starts an exchange. After `drain` began, it is born cancelled: the run
   * is over and nothing more goes out for it.
   *
   * @returns The exchange; call `end()` when it is over.
   */
  open(): Exchange {
    const exchange = new Exchange(this);
    if (this.#closed) exchange.flush();
    else this.#open.add(exchange);
    return exchange;
  }

  /**
   * Waits until every open exchange has ended, or `ms` passed; then writes
   * the held record of each one still open and ends it.
   *
   * @param ms Longest wait.
   */
  async drain(ms: number): Promise<void> {
    this.#closed = true;
    if (this.#open.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#idle = resolve;
        timer = setTimeout(resolve, ms);
      });
      clearTimeout(timer);
      this.#idle = null;
    }
    for (const exchange of this.#open) exchange.flush();
    this.#open.clear();
  }

  /** @internal */
  write(event: EgressEvent): void {
    this.#audit(event);
  }

  /** @internal */
  remove(exchange: Exchange): void {
    this.#open.delete(exchange);
    if (this.#open.size === 0) this.#idle?.();
  }
}
