/**
 * The server's metrics in the Prometheus text format (version 0.0.4), for
 * `GET /metrics`: sandboxes alive, runs started and by outcome, a run
 * duration histogram, the injector's requests by decision and requests
 * refused by a ceiling. Labels carry no token name, sandbox id, host or
 * path: a metrics reader learns the node's load, not who does what.
 *
 * @example Count and render
 * ```ts
 * import { ServerMetrics } from "./metrics.ts";
 * const metrics = new ServerMetrics("airlock-0");
 * metrics.runStarted();
 * metrics.runFinished("exit", true, 120);
 * const text = metrics.render({ sandboxesAlive: 1, runsLive: 0, runsQueued: 0, ready: true, draining: false });
 * console.log(text.includes('airlock_runs_finished_total{outcome="success"} 1')); // true
 * ```
 *
 * @module
 */

import type { AuditEvent } from "../harness/run_result.ts";
import type { Sandbox } from "../harness/sandbox.ts";

/** Upper bounds (seconds) of the run duration histogram's buckets. */
export const RUN_DURATION_BUCKETS: readonly number[] = [
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  300,
];

/** Why a request was refused by a ceiling (the `ceiling` label). */
export type CeilingKind =
  | "token_sandboxes"
  | "node_sandboxes"
  | "runs"
  | "limits"
  | "draining";

/** The gauges read at scrape time from the server's state. */
export interface MetricsSnapshot {
  /** Sandboxes alive on this node. */
  sandboxesAlive: number;
  /** Runs holding a slot (live, or their answer being sent). */
  runsLive: number;
  /** Runs waiting for a slot. */
  runsQueued: number;
  /** Whether the node would take a new sandbox now. */
  ready: boolean;
  /** Whether the node is draining (SIGTERM). */
  draining: boolean;
}

/** One counter family: label value -> count. */
class Counter {
  readonly values = new Map<string, number>();
  inc(labels: string, by = 1): void {
    this.values.set(labels, (this.values.get(labels) ?? 0) + by);
  }
}

/**
 * The counters of one server, and their rendering.
 *
 * @example Usage
 * ```ts
 * import { ServerMetrics } from "./metrics.ts";
 * const metrics = new ServerMetrics("n1");
 * metrics.rejected("runs");
 * console.log(metrics.render({ sandboxesAlive: 0, runsLive: 0, runsQueued: 0, ready: true, draining: false })
 *   .includes('airlock_rejections_total{ceiling="runs"} 1')); // true
 * ```
 */
export class ServerMetrics {
  readonly #node: string;
  readonly #started = Date.now();
  #sandboxesCreated = 0;
  #runsStarted = 0;
  readonly #finished = new Counter();
  readonly #egress = new Counter();
  readonly #rejections = new Counter();
  #echoes = 0;
  readonly #buckets = RUN_DURATION_BUCKETS.map(() => 0);
  #durationSum = 0;
  #durationCount = 0;

  /** @param node The node's name (the `node` label of `airlock_node_info`). */
  constructor(node: string) {
    this.#node = node;
  }

  /** A sandbox was created. */
  sandboxCreated(): void {
    this.#sandboxesCreated++;
  }

  /** A run's process was started. */
  runStarted(): void {
    this.#runsStarted++;
  }

  /**
   * A run ended.
   *
   * @param reason The RunStatus reason ("exit", "timeout", ...), or "error"
   * when the run failed to produce a status.
   * @param success Whether it exited with 0.
   * @param durationMs How long it ran.
   */
  runFinished(reason: string, success: boolean, durationMs: number): void {
    const outcome = reason === "exit"
      ? (success ? "success" : "failure")
      : reason;
    this.#finished.inc(outcome);
    const seconds = Math.max(0, durationMs) / 1000;
    RUN_DURATION_BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) this.#buckets[i]!++;
    });
    this.#durationSum += seconds;
    this.#durationCount++;
  }

  /**
   * Counts an audit event of a sandbox: the injector's connects, requests
   * and WebSocket upgrades by decision, and echoes redacted.
   *
   * @param event Any audit event (others are ignored).
   */
  audit(event: AuditEvent): void {
    if ((event as { source?: unknown }).source !== "injector") return;
    const egress = event as { kind: string; decision?: string };
    if (egress.kind === "secret-echo") {
      this.#echoes++;
      return;
    }
    if (
      egress.kind !== "request" && egress.kind !== "connect" &&
      egress.kind !== "websocket"
    ) return;
    this.#egress.inc(`${egress.kind}\u0000${egress.decision ?? "unknown"}`);
  }

  /**
   * A request was refused by a ceiling.
   *
   * @param ceiling Which one.
   */
  rejected(ceiling: CeilingKind): void {
    this.#rejections.inc(ceiling);
  }

  /**
   * The metrics in the Prometheus text format.
   *
   * @param now The gauges read from the server's state.
   * @returns The exposition text (ends with a newline).
   */
  render(now: MetricsSnapshot): string {
    const lines: string[] = [];
    const family = (name: string, type: string, help: string) =>
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    const memory = Deno.memoryUsage();

    family("airlock_node_info", "gauge", "The node's name and versions");
    lines.push(
      `airlock_node_info{node="${label(this.#node)}",deno="${
        label(Deno.version.deno)
      }"} 1`,
    );
    family(
      "airlock_ready",
      "gauge",
      "1 when the node would take a new sandbox now",
    );
    lines.push(`airlock_ready ${now.ready ? 1 : 0}`);
    family("airlock_draining", "gauge", "1 once the node is draining");
    lines.push(`airlock_draining ${now.draining ? 1 : 0}`);
    family("airlock_sandboxes_alive", "gauge", "Sandboxes alive on this node");
    lines.push(`airlock_sandboxes_alive ${now.sandboxesAlive}`);
    family(
      "airlock_sandboxes_created_total",
      "counter",
      "Sandboxes created since the node started",
    );
    lines.push(`airlock_sandboxes_created_total ${this.#sandboxesCreated}`);
    family(
      "airlock_runs_live",
      "gauge",
      "Runs holding a slot (running, or their answer being sent)",
    );
    lines.push(`airlock_runs_live ${now.runsLive}`);
    family("airlock_runs_queued", "gauge", "Runs waiting for a slot");
    lines.push(`airlock_runs_queued ${now.runsQueued}`);
    family("airlock_runs_started_total", "counter", "Runs started");
    lines.push(`airlock_runs_started_total ${this.#runsStarted}`);
    family(
      "airlock_runs_finished_total",
      "counter",
      "Runs ended, by outcome: success, failure (non-zero exit), timeout, oom, cpu, file-size, disk-limit, output-limit, killed, crashed, error",
    );
    for (const [outcome, count] of sorted(this.#finished)) {
      lines.push(
        `airlock_runs_finished_total{outcome="${label(outcome)}"} ${count}`,
      );
    }
    family(
      "airlock_run_duration_seconds",
      "histogram",
      "Wall-clock duration of ended runs",
    );
    RUN_DURATION_BUCKETS.forEach((bound, i) => {
      lines.push(
        `airlock_run_duration_seconds_bucket{le="${bound}"} ${
          this.#buckets[i]
        }`,
      );
    });
    lines.push(
      `airlock_run_duration_seconds_bucket{le="+Inf"} ${this.#durationCount}`,
      `airlock_run_duration_seconds_sum ${this.#durationSum}`,
      `airlock_run_duration_seconds_count ${this.#durationCount}`,
    );
    family(
      "airlock_injector_requests_total",
      "counter",
      "The injector's CONNECTs, requests and WebSocket upgrades, by decision (allow, deny, respond, error)",
    );
    for (const [key, count] of sorted(this.#egress)) {
      const [kind, decision] = key.split("\u0000") as [string, string];
      lines.push(
        `airlock_injector_requests_total{kind="${label(kind)}",decision="${
          label(decision)
        }"} ${count}`,
      );
    }
    family(
      "airlock_injector_secret_echoes_total",
      "counter",
      "Responses in which the echo guard redacted an injected value",
    );
    lines.push(`airlock_injector_secret_echoes_total ${this.#echoes}`);
    family(
      "airlock_rejections_total",
      "counter",
      "Requests refused by a ceiling: token_sandboxes, node_sandboxes, runs (run queue full), limits (over a limit's ceiling), draining",
    );
    for (const [ceiling, count] of sorted(this.#rejections)) {
      lines.push(
        `airlock_rejections_total{ceiling="${label(ceiling)}"} ${count}`,
      );
    }
    family(
      "process_resident_memory_bytes",
      "gauge",
      "Resident memory of the server process (sandboxes are other processes)",
    );
    lines.push(`process_resident_memory_bytes ${memory.rss}`);
    family("airlock_js_heap_used_bytes", "gauge", "V8 heap in use");
    lines.push(`airlock_js_heap_used_bytes ${memory.heapUsed}`);
    family(
      "process_start_time_seconds",
      "gauge",
      "When the server started (Unix time)",
    );
    lines.push(
      `process_start_time_seconds ${Math.floor(this.#started / 1000)}`,
    );
    return lines.join("\n") + "\n";
  }
}

/**
 * Counts every run of a sandbox in `metrics`: its start when its process
 * is spawned, its outcome and duration when it ends. The HTTP routes start
 * runs with `spawn()` (so does `run()`); this wraps that one method of this
 * one sandbox.
 *
 * @param sandbox The sandbox.
 * @param metrics Where to count.
 *
 * @example Usage
 * ```ts ignore
 * import { observeRuns, ServerMetrics } from "./metrics.ts";
 * observeRuns(sandbox, new ServerMetrics("n1"));
 * ```
 */
export function observeRuns(sandbox: Sandbox, metrics: ServerMetrics): void {
  const spawn = sandbox.spawn.bind(sandbox);
  sandbox.spawn = async (options) => {
    const child = await spawn(options);
    metrics.runStarted();
    const started = performance.now();
    child.status.then(
      (status) =>
        metrics.runFinished(status.reason, status.success, status.durationMs),
      () => metrics.runFinished("error", false, performance.now() - started),
    );
    return child;
  };
}

/** A label value escaped as the text format wants (\\, \", \n). */
function label(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(
    /\n/g,
    "\\n",
  );
}

function sorted(counter: Counter): [string, number][] {
  return [...counter.values].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
}
