/**
 * Tenant fairness benchmark: what one tenant's burst of long runs costs
 * another tenant's trivial run, through the HTTP API on loopback.
 *
 * Tenant B runs `console.log(1)` one run at a time, first alone, then while
 * tenant A has fired a burst of N CPU-bound runs across several sandboxes.
 * A's runs spin until a shared deadline (the burst window), so a run that
 * starts late ends early and the benchmark takes about one window whatever
 * the server does with the burst (run it, queue it or refuse it).
 *
 * Usage: `deno task bench:tenants [--burst N] [--window-ms MS] [--samples K]
 * [--config FILE] [--unlimited] [--json]`
 *
 * `--unlimited` lifts the per-token run caps and the global run slots (the
 * server as it was before them); `--config` reads a server config file
 * (its ceilings and run slots apply). Figures only: no exit code for a
 * miss.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type AppOptions, createApp } from "../http/app.ts";
import { AirlockApiError, AirlockClient } from "../http/client.ts";
import { loadServerConfig } from "../http/config.ts";
import { stopBundler } from "../harness/bundle/bundle.ts";

const TOKEN_A = "bench-tenant-a-0123456789abcdef";
const TOKEN_B = "bench-tenant-b-0123456789abcdef";
/** Idle time between B's timed runs (its sandbox refills its warm process). */
const SETTLE_MS = 60;

/** One measured series, in milliseconds. */
export interface Series {
  /** Number of samples. */
  n: number;
  /** Median. */
  medianMs: number;
  /** 90th percentile (nearest rank). */
  p90Ms: number;
}

/** What the benchmark prints with `--json`. */
export interface TenantsReport {
  /** The server's scheduling: "ceilings" (default or config) or "unlimited". */
  mode: string;
  /** A's runs fired at once. */
  burst: number;
  /** B's trivial run alone. */
  alone: Series;
  /** B's trivial run during A's burst. */
  duringBurst: Series;
  /** duringBurst.medianMs / alone.medianMs. */
  slowdown: number;
  /** A's runs that ran; refused with 429 (`too_many_runs`); most at once. */
  burstRuns: { ran: number; refused: number; peakConcurrent: number };
}

/**
 * Summarises samples.
 *
 * @param samples Milliseconds.
 * @returns Count, median and 90th percentile.
 *
 * @example Usage
 * ```ts
 * import { summarise } from "./tenants.ts";
 * console.log(summarise([3, 1, 2]).medianMs); // 2
 * ```
 */
export function summarise(samples: number[]): Series {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
  const mid = sorted.length / 2;
  const medianMs = sorted.length % 2
    ? sorted[Math.floor(mid)]!
    : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  return {
    n: sorted.length,
    medianMs: round(medianMs),
    p90Ms: round(at(0.9)),
  };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

async function trivialRuns(
  client: AirlockClient,
  id: string,
  count: number,
  until: () => boolean = () => true,
): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count && until(); i++) {
    const started = performance.now();
    const result = await client.run(id, { code: "console.log(1)" });
    samples.push(performance.now() - started);
    if (result.stdout !== "1\n") {
      throw new Error(`Cannot measure: B's run printed ${result.stdout}`);
    }
    await new Promise((r) => setTimeout(r, SETTLE_MS));
  }
  return samples;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      burst: { type: "string", default: "32" },
      "window-ms": { type: "string", default: "15000" },
      samples: { type: "string", default: "15" },
      config: { type: "string" },
      unlimited: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
  });
  const burst = Number(values.burst);
  const windowMs = Number(values["window-ms"]);
  const samples = Number(values.samples);
  const tmpDir = await Deno.makeTempDir({ prefix: "airlock-bench-tenants-" });
  await Deno.chmod(tmpDir, 0o755);
  const config = values.config
    ? await loadServerConfig(values.config, {
      env: (name) => Deno.env.get(name),
    })
    : null;
  const unlimited = values.unlimited;
  const options: AppOptions = {
    ...(config ? config.app : {}),
    tokens: new Map([
      [TOKEN_A, { name: "tenant-a" }],
      [TOKEN_B, { name: "tenant-b" }],
    ]),
    sandboxDefaults: { ...config?.app.sandboxDefaults, tmpDir },
    ...(unlimited
      ? {
        ceilings: {
          ...config?.app.ceilings,
          runsPerToken: 1_000,
          runsPerSandbox: 1_000,
          queuedRunsPerToken: 1_000,
        },
        runSlots: 10_000,
      }
      : {}),
  };
  const api = createApp(options);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    api.app.fetch,
  );
  const baseUrl = `http://127.0.0.1:${server.addr.port}`;
  const a = new AirlockClient({ baseUrl, token: TOKEN_A });
  const b = new AirlockClient({ baseUrl, token: TOKEN_B });
  try {
    const limits = { timeoutMs: windowMs + 30_000, cpuSeconds: 120 };
    const bSandbox = await b.createSandbox({ name: "b", policy: { limits } });
    await trivialRuns(b, bSandbox.id, 3); // warm-up, not counted
    const alone = await trivialRuns(b, bSandbox.id, samples);

    const aSandboxes = await Promise.all(
      Array.from(
        { length: Math.min(8, burst) },
        (_, i) => a.createSandbox({ name: `a${i}`, policy: { limits } }),
      ),
    );
    const deadline = Date.now() + windowMs;
    const spin = `console.log("started");\nconst end = ${deadline};\n` +
      `while (Date.now() < end) { for (let i = 0; i < 1e5; i++); }\n`;
    let live = 0;
    let peak = 0;
    let ran = 0;
    let refused = 0;
    let burstStarted = 0;
    const burstDone = Promise.all(
      Array.from({ length: burst }, async (_, i) => {
        const id = aSandboxes[i % aSandboxes.length]!.id;
        let started = false;
        try {
          for await (const event of a.runStream(id, { code: spin })) {
            if (event.type === "stdout" && !started) {
              started = true;
              peak = Math.max(peak, ++live);
              burstStarted ||= Date.now();
            }
          }
          ran++;
        } catch (error) {
          if (error instanceof AirlockApiError && error.status === 429) {
            refused++;
          } else throw error;
        } finally {
          if (started) live--;
        }
      }),
    );
    // B starts measuring once A's burst is running.
    while (burstStarted === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const during = await trivialRuns(
      b,
      bSandbox.id,
      samples,
      () => Date.now() < deadline - 1_000,
    );
    await burstDone;
    const report: TenantsReport = {
      mode: unlimited ? "unlimited" : config ? "config" : "default ceilings",
      burst,
      alone: summarise(alone),
      duringBurst: summarise(during),
      slowdown: round(
        summarise(during).medianMs / Math.max(summarise(alone).medianMs, 0.1),
      ),
      burstRuns: { ran, refused, peakConcurrent: peak },
    };
    if (values.json) {
      console.log(JSON.stringify(report, null, 2));
    } else {
      console.log(
        `tenants (${report.mode}, ${Deno.build.os}, ${navigator.hardwareConcurrency} cores)\n` +
          `  B trivial run alone:          median ${report.alone.medianMs} ms, p90 ${report.alone.p90Ms} ms (n=${report.alone.n})\n` +
          `  B during A's burst of ${burst}:  median ${report.duringBurst.medianMs} ms, p90 ${report.duringBurst.p90Ms} ms (n=${report.duringBurst.n})\n` +
          `  slowdown: ${report.slowdown}x\n` +
          `  A's burst: ${ran} ran, ${refused} refused (429), at most ${peak} running at once (seen by the client)`,
      );
    }
  } finally {
    await api.shutdown();
    await server.shutdown();
    await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
    await stopBundler();
  }
}

if (import.meta.main) await main();
