/**
 * How much audit one program can make the harness hold. Every record of a
 * run (a permission check, an egress request) lives in harness memory until
 * the run's result is handed back, and the sandbox keeps its latest records
 * after that. The program chooses how many distinct things it tries and how
 * long each value is, so both are bounded here:
 *
 * - a record keeps at most {@link AUDIT_BOUNDS}`.valueChars` of its value
 *   (the original length beside it);
 * - a run keeps at most `runRecords` records and `runBytes` of them; past
 *   that, each attempt is counted in one summary record per kind and
 *   decision ("and N more like this"), which never grows;
 * - a sandbox retains at most `trailRecords` records and `trailBytes` of
 *   them across runs (the oldest go first).
 *
 * Bytes are estimated from the records' strings (two bytes a character,
 * V8's worst case) plus a fixed cost per field; `bench/audit_memory.ts`
 * measures what they really cost.
 *
 * @module
 */

import type {
  AuditEvent,
  AuditOverflowEvent,
  EgressEvent,
  PermissionEvent,
} from "./run_result.ts";

/**
 * The bounds (see the module doc).
 *
 * @example Usage
 * ```ts
 * import { AUDIT_BOUNDS } from "./_audit_bounds.ts";
 * console.log(AUDIT_BOUNDS.runRecords); // 2000
 * ```
 */
export const AUDIT_BOUNDS = {
  /** Longest value (path, `host:port`, name) a record keeps, in characters. */
  valueChars: 1024,
  /** Records one run keeps one by one. */
  runRecords: 2_000,
  /** Estimated bytes of the records one run keeps one by one. */
  runBytes: 4 * 1024 * 1024,
  /** Records a sandbox retains across runs. */
  trailRecords: 10_000,
  /** Estimated bytes of the records a sandbox retains across runs. */
  trailBytes: 8 * 1024 * 1024,
} as const;

/** The limits a {@linkcode RunAuditLog} enforces (tests shrink them). */
export interface RunAuditLimits {
  /** Records kept one by one. */
  runRecords: number;
  /** Estimated bytes kept one by one. */
  runBytes: number;
}

/**
 * Estimated heap bytes of one record: its strings at two bytes a character
 * plus a fixed cost per field and per object.
 *
 * @param event A record.
 * @returns Its estimated size.
 *
 * @example Usage
 * ```ts
 * import { auditEventBytes } from "./_audit_bounds.ts";
 * console.log(auditEventBytes({ time: "t", source: "harness", kind: "k" }) > 0); // true
 * ```
 */
export function auditEventBytes(event: AuditEvent): number {
  let bytes = 64;
  for (const value of Object.values(event)) {
    bytes += 16;
    if (typeof value === "string") bytes += 2 * value.length;
    else if (Array.isArray(value)) {
      for (const item of value) {
        bytes += 16 + (typeof item === "string" ? 2 * item.length : 0);
      }
    }
  }
  return bytes;
}

/**
 * A copy of `text` that does not keep a larger string alive. V8 may make a
 * slice a view into its parent: a record holding the first 1,024
 * characters of a 60 KB value would hold all of it.
 *
 * @param text Any string.
 * @returns An equal string of its own.
 *
 * @example Usage
 * ```ts
 * import { detached } from "./_audit_bounds.ts";
 * console.log(detached("x".repeat(100_000).slice(0, 3))); // "xxx"
 * ```
 */
export function detached(text: string): string {
  return JSON.parse(JSON.stringify(text));
}

/**
 * At most `max` characters of `value`, detached from it; the original
 * length when it was cut.
 *
 * @param value A value the program chose.
 * @param max Most characters kept.
 * @returns The kept part, and `valueLength` when it was cut.
 *
 * @example Usage
 * ```ts
 * import { boundedValue } from "./_audit_bounds.ts";
 * console.log(boundedValue("abcdef", 3)); // { value: "abc", valueLength: 6 }
 * ```
 */
export function boundedValue(
  value: string,
  max: number = AUDIT_BOUNDS.valueChars,
): { value: string; valueLength?: number } {
  return value.length <= max
    ? { value }
    : { value: detached(value.slice(0, max)), valueLength: value.length };
}

/**
 * The audit of one run: records go to `sink` while the run's budget
 * lasts; past it they are counted in one summary record per kind and
 * decision, published once and updated in place.
 *
 * @example Usage
 * ```ts
 * import { RunAuditLog } from "./_audit_bounds.ts";
 * const log = new RunAuditLog(console.log, { sandboxId: "s", runId: "s-r1" });
 * log.count("read", "deny", new Date().toISOString()); // prints the summary
 * log.close();
 * ```
 */
export class RunAuditLog {
  #sink: ((event: AuditEvent) => void) | null;
  #ids: { sandboxId: string; runId: string };
  #limits: RunAuditLimits;
  #records = 0;
  #bytes = 0;
  #summaries = new Map<string, AuditOverflowEvent>();

  /**
   * @param sink Receives each record kept, and each summary once.
   * @param ids The run's sandbox and run ids (for summaries).
   * @param limits Default: {@link AUDIT_BOUNDS}.
   */
  constructor(
    sink: (event: AuditEvent) => void,
    ids: { sandboxId: string; runId: string },
    limits: RunAuditLimits = AUDIT_BOUNDS,
  ) {
    this.#sink = sink;
    this.#ids = ids;
    this.#limits = limits;
  }

  /**
   * Keeps `event` if the run's budget has room, else counts it.
   *
   * @returns Whether it was kept (a kept record may be updated in place).
   */
  record(event: PermissionEvent | EgressEvent): boolean {
    if (this.#sink === null) return false;
    const bytes = auditEventBytes(event);
    if (
      this.#records < this.#limits.runRecords &&
      this.#bytes + bytes <= this.#limits.runBytes
    ) {
      this.#records++;
      this.#bytes += bytes;
      publish(this.#sink, event);
      return true;
    }
    if (event.source === "broker") {
      this.count(event.permission, event.decision, event.time, {
        lastValue: event.value,
      });
    } else {
      this.count("egress", event.decision, event.time, {
        egressKind: event.kind,
        lastValue: `${event.host}:${event.port}`,
      });
    }
    return false;
  }

  /**
   * Counts one attempt that is not recorded by itself.
   *
   * @param of The permission kind, or "egress".
   * @param decision What was decided.
   * @param time When.
   * @param detail The injector's event kind (egress only: an echo guard
   *   redaction stays apart from plain requests) and the attempt's value
   *   (kept as the summary's `lastValue`).
   */
  count(
    of: AuditOverflowEvent["of"],
    decision: AuditOverflowEvent["decision"],
    time: string,
    detail: {
      egressKind?: EgressEvent["kind"];
      lastValue?: string | null;
    } = {},
  ): void {
    if (this.#sink === null) return;
    const key = `${of}\0${decision}\0${detail.egressKind ?? ""}`;
    // The flood cannot hide its latest attempt of each kind: the summary
    // names it (one value, bounded, per summary).
    const lastValue = detail.lastValue == null
      ? {}
      : { lastValue: boundedValue(detail.lastValue).value };
    const existing = this.#summaries.get(key);
    if (existing) {
      existing.count++;
      existing.lastTime = time;
      if (lastValue.lastValue !== undefined) {
        existing.lastValue = lastValue.lastValue;
      }
      return;
    }
    const summary: AuditOverflowEvent = {
      time,
      source: "harness",
      kind: "audit-overflow",
      sandboxId: this.#ids.sandboxId,
      runId: this.#ids.runId,
      of,
      ...(detail.egressKind ? { egressKind: detail.egressKind } : {}),
      decision,
      count: 1,
      firstTime: time,
      lastTime: time,
      reason:
        `not recorded one by one: a run keeps at most ${this.#limits.runRecords} records (${this.#limits.runBytes} bytes) of its audit`,
      ...lastValue,
    };
    this.#summaries.set(key, summary);
    publish(this.#sink, summary);
  }

  /**
   * Ends the log once the run's channels are closed: later records are
   * ignored, and the log lets go of its sink. Something that outlives the
   * run and still holds the log (seen: Deno's node:net keeps a destroyed
   * socket's handle, and with it the broker's closures, when a write was
   * pending) then holds neither the sandbox nor its trail.
   */
  close(): void {
    this.#sink = null;
    this.#summaries.clear();
  }
}

function publish(sink: (event: AuditEvent) => void, event: AuditEvent): void {
  try {
    sink(event);
  } catch {
    // A failing listener must not stop the answers Deno waits for.
  }
}

/** The limits an {@linkcode AuditTrail} enforces (tests shrink them). */
export interface TrailLimits {
  /** Records retained. */
  trailRecords: number;
  /** Estimated bytes retained. */
  trailBytes: number;
}

/**
 * What a sandbox retains of its audit across runs: the latest records,
 * within a count and a byte bound. Past either, the oldest tenth goes at
 * once (one splice per tenth of the trail, not one per record).
 *
 * @example Usage
 * ```ts
 * import { AuditTrail } from "./_audit_bounds.ts";
 * const trail = new AuditTrail({ trailRecords: 10, trailBytes: 1e6 });
 * for (let i = 0; i < 20; i++) {
 *   trail.push({ time: String(i), source: "harness", kind: "k" });
 * }
 * console.log(trail.events.length <= 10); // true
 * ```
 */
export class AuditTrail {
  #events: AuditEvent[] = [];
  #sizes: number[] = [];
  #bytes = 0;
  #limits: TrailLimits;

  /** @param limits Default: {@link AUDIT_BOUNDS}. */
  constructor(limits: TrailLimits = AUDIT_BOUNDS) {
    this.#limits = limits;
  }

  /** The retained records, oldest first (a live array). */
  get events(): readonly AuditEvent[] {
    return this.#events;
  }

  /** Estimated bytes of the retained records. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Appends a record, dropping the oldest when over a bound. */
  push(event: AuditEvent): void {
    const size = auditEventBytes(event);
    this.#events.push(event);
    this.#sizes.push(size);
    this.#bytes += size;
    const { trailRecords, trailBytes } = this.#limits;
    if (this.#events.length <= trailRecords && this.#bytes <= trailBytes) {
      return;
    }
    let drop = 0;
    let freed = 0;
    while (
      drop < this.#events.length - 1 &&
      (this.#events.length - drop > trailRecords * 0.9 ||
        this.#bytes - freed > trailBytes * 0.9)
    ) {
      freed += this.#sizes[drop]!;
      drop++;
    }
    this.#events.splice(0, drop);
    this.#sizes.splice(0, drop);
    this.#bytes -= freed;
  }
}
