/**
 * Soak benchmark (`deno task soak [--runs 1000] [--concurrent 50]`): many
 * sandbox runs from one harness process, each making one request through
 * the injector, to show the harness neither fails nor leaks.
 *
 * - One {@linkcode Injector} serves every run; each run gets a FRESH
 *   sandbox (`Sandbox.create` -> `run` -> `close`), so workspaces,
 *   watchdogs, sockets and bindings are created and torn down every time.
 * - Each program fetches `https://soak.example.test/check` through the
 *   injector; a local HTTPS upstream on 127.0.0.1 (reached via
 *   `upstream.connectTo`, certificate from a test CA) answers 200 `ok` only
 *   if the injector added the `x-soak-token` header, else 401.
 * - `--runs` sequential runs, then `--concurrent` runs at once.
 * - Before (after 5 warm-up runs) and after (once everything finished,
 *   after a GC when `--expose-gc` is on and a short settle), it prints the
 *   harness's RSS and open file descriptors, their growth, and PASS/MISS
 *   against "growth <= 5%".
 *
 * Exit code 1 if any run failed; a MISS alone does not fail the task.
 *
 * @module
 */

import { Injector, Sandbox } from "../mod.ts";
import { CertificateAuthority } from "../injector/ca.ts";

const HOST = "soak.example.test";
const TOKEN = `soak-${crypto.randomUUID()}`;
const RUN_TIMEOUT_MS = 30_000;
/** A run (create + run + close) taking longer than this counts as hung. */
const HANG_MS = 120_000;
const WARM_UP_RUNS = 5;
const SETTLE_MS = 3_000;
const GROWTH_LIMIT = 5;

const PROGRAM = `
try {
  const r = await fetch("https://${HOST}/check");
  console.log(r.status + " " + await r.text());
} catch (e) {
  console.log("error " + String(e?.name) + ": " + String(e?.message));
}
`;

interface Args {
  runs: number;
  concurrent: number;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { runs: 1000, concurrent: 50 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const [name, inline] = flag.includes("=")
      ? [flag.slice(0, flag.indexOf("=")), flag.slice(flag.indexOf("=") + 1)]
      : [flag, undefined];
    const value = Number(inline ?? argv[++i]);
    if (!Number.isInteger(value) || value < 0) {
      throw new TypeError(`${name} needs a non-negative integer`);
    }
    if (name === "--runs") args.runs = value;
    else if (name === "--concurrent") args.concurrent = value;
    else {
      throw new TypeError(
        `unknown option ${name}: use --runs N, --concurrent N`,
      );
    }
  }
  return args;
}

/** The local upstream: 200 `ok` with the injected token, else 401. */
async function startUpstream() {
  const ca = await CertificateAuthority.create({
    commonName: "airlock soak upstream CA",
  });
  const dir = await Deno.makeTempDir({ prefix: "airlock-soak-" });
  const caFile = `${dir}/ca.pem`;
  await Deno.writeTextFile(caFile, ca.certificatePem);
  const leaf = await ca.leafFor(HOST);
  const counts = { ok: 0, refused: 0 };
  const abort = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: leaf.certPem,
    key: leaf.keyPem,
    signal: abort.signal,
    onListen() {},
  }, (req) => {
    if (req.headers.get("x-soak-token") === TOKEN) {
      counts.ok++;
      return new Response("ok");
    }
    counts.refused++;
    return new Response("token missing", { status: 401 });
  });
  const port = (server.addr as Deno.NetAddr).port;
  return {
    port,
    caFile,
    connectTo: `${HOST}:443:127.0.0.1:${port}`,
    counts,
    async close() {
      abort.abort();
      await server.finished;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

type Upstream = Awaited<ReturnType<typeof startUpstream>>;

/** One run in a fresh sandbox; resolves to null on success, else why not. */
async function oneRun(
  injector: Injector,
  upstream: Upstream,
): Promise<string | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const attempt = (async () => {
    const sandbox = await Sandbox.create({
      injector,
      secrets: { SOAK_TOKEN: TOKEN },
      policy: {
        limits: { timeoutMs: RUN_TIMEOUT_MS },
        network: {
          allow: {
            [HOST]: [{
              transform: [{
                headers: { "x-soak-token": "${secret:SOAK_TOKEN}" },
              }],
            }],
          },
        },
        upstream: {
          connectTo: [upstream.connectTo],
          caCerts: [upstream.caFile],
        },
      },
    });
    try {
      const result = await sandbox.run({ code: PROGRAM });
      if (result.reason !== "exit" || result.stdout !== "200 ok\n") {
        return `reason ${result.reason}, exit ${result.exitCode}, stdout ${
          JSON.stringify(result.stdout)
        }, stderr ${JSON.stringify(result.stderr.slice(0, 300))}`;
      }
      return null;
    } finally {
      await sandbox.close();
    }
  })();
  try {
    return await Promise.race([
      attempt,
      new Promise<string>((resolve) => {
        timer = setTimeout(
          () => resolve(`hung: not done after ${HANG_MS} ms`),
          HANG_MS,
        );
      }),
    ]);
  } catch (error) {
    return `threw ${error instanceof Error ? error.stack : String(error)}`;
  } finally {
    clearTimeout(timer);
  }
}

function openFds(): number {
  let count = 0;
  for (const _ of Deno.readDirSync("/proc/self/fd")) count++;
  return count - 1; // the directory handle of this very listing
}

/**
 * Established loopback TCP connections to `port` (both ends are in this
 * process when the upstream is: the injector's pooled keep-alive
 * connections, kept up to 16 per upstream for 30-60 s).
 */
function pooledConnections(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  let count = 0;
  for (const line of Deno.readTextFileSync("/proc/net/tcp").split("\n")) {
    const [, local, remote, state] = line.trim().split(/\s+/);
    if (state !== "01") continue; // ESTABLISHED
    if (local?.endsWith(`:${hex}`) || remote?.endsWith(`:${hex}`)) count++;
  }
  return count / 2;
}

interface Snapshot {
  rss: number;
  heap: number;
  fds: number;
  pooled: number;
  gc: boolean;
}

async function settle(upstreamPort: number): Promise<Snapshot> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  gc?.();
  await new Promise((resolve) => setTimeout(resolve, 100));
  const memory = Deno.memoryUsage();
  return {
    rss: memory.rss,
    heap: memory.heapUsed,
    fds: openFds(),
    pooled: pooledConnections(upstreamPort),
    gc: gc !== undefined,
  };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const growth = (before: number, after: number) =>
  before === 0 ? 0 : ((after - before) / before) * 100;
const verdict = (pct: number) => pct <= GROWTH_LIMIT ? "PASS" : "MISS";

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(Deno.args);
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  const upstream = await startUpstream();
  const injector = await Injector.create();
  const failures: string[] = [];
  const fail = (label: string, why: string) => {
    failures.push(`${label}: ${why}`);
    if (failures.length <= 20) console.log(`  FAIL ${label}: ${why}`);
  };
  try {
    console.log(
      `soak: ${args.runs} sequential + ${args.concurrent} concurrent runs; one shared Injector, a fresh Sandbox per run; each run fetches https://${HOST} through the injector (header injected and checked upstream); run timeout ${RUN_TIMEOUT_MS} ms`,
    );
    for (let i = 0; i < WARM_UP_RUNS; i++) {
      const why = await oneRun(injector, upstream);
      if (why) fail(`warm-up ${i}`, why);
    }
    const before = await settle(upstream.port);
    console.log(
      `before (after ${WARM_UP_RUNS} warm-up runs${
        before.gc ? ", GC" : ", no GC: run with --v8-flags=--expose-gc"
      }): rss ${mib(before.rss)}, heap ${
        mib(before.heap)
      }, open fds ${before.fds} (${before.pooled} pooled upstream connections)`,
    );

    const started = performance.now();
    for (let i = 0; i < args.runs; i++) {
      const why = await oneRun(injector, upstream);
      if (why) fail(`sequential run ${i}`, why);
      if ((i + 1) % 100 === 0 || i + 1 === args.runs) {
        const s = (performance.now() - started) / 1000;
        console.log(
          `  sequential ${i + 1}/${args.runs}: ${s.toFixed(1)} s, ${
            ((i + 1) / s).toFixed(2)
          } runs/s, rss ${mib(Deno.memoryUsage().rss)}, fds ${openFds()}`,
        );
      }
    }
    const sequentialS = (performance.now() - started) / 1000;

    const concurrentStarted = performance.now();
    const results = await Promise.all(
      Array.from({ length: args.concurrent }, () => oneRun(injector, upstream)),
    );
    results.forEach((why, i) => why && fail(`concurrent run ${i}`, why));
    const concurrentS = (performance.now() - concurrentStarted) / 1000;
    const totalS = (performance.now() - started) / 1000;
    const total = args.runs + args.concurrent;

    const after = await settle(upstream.port);
    const rssGrowth = growth(before.rss, after.rss);
    const heapGrowth = growth(before.heap, after.heap);
    const fdGrowth = growth(before.fds, after.fds);
    // Each pooled connection is two fds here: the injector's end and the
    // in-process upstream's end.
    const unpooled = (s: Snapshot) => s.fds - 2 * s.pooled;
    const unpooledGrowth = growth(unpooled(before), unpooled(after));
    const pct = (n: number) => `${n >= 0 ? "+" : ""}${n.toFixed(1)}%`;

    console.log("\nsoak results");
    console.log(
      `  runs:        ${total} (${args.runs} sequential, ${args.concurrent} concurrent)`,
    );
    console.log(`  failures:    ${failures.length}`);
    console.log(
      `  upstream:    ${upstream.counts.ok} injected requests, ${upstream.counts.refused} without the token`,
    );
    console.log(
      `  time:        ${totalS.toFixed(1)} s total; sequential ${
        sequentialS.toFixed(1)
      } s (${(args.runs / sequentialS || 0).toFixed(2)} runs/s); concurrent ${
        concurrentS.toFixed(1)
      } s (${(args.concurrent / concurrentS || 0).toFixed(2)} runs/s)`,
    );
    console.log(`  throughput:  ${(total / totalS).toFixed(2)} runs/s overall`);
    console.log(
      `  rss:         ${mib(before.rss)} -> ${mib(after.rss)} (${
        pct(rssGrowth)
      })  ${verdict(rssGrowth)} (growth <= ${GROWTH_LIMIT}%)`,
    );
    console.log(
      `  (heap used:  ${mib(before.heap)} -> ${mib(after.heap)} (${
        pct(heapGrowth)
      }), for reference)`,
    );
    console.log(
      `  open fds:    ${before.fds} -> ${after.fds} (${pct(fdGrowth)})  ${
        verdict(fdGrowth)
      } (growth <= ${GROWTH_LIMIT}%)`,
    );
    console.log(
      `  open fds without the injector's pooled keep-alive upstream connections (${before.pooled} -> ${after.pooled}, 2 fds each, at most 16 per upstream, closed after 30-60 s idle): ${
        unpooled(before)
      } -> ${unpooled(after)} (${pct(unpooledGrowth)})  ${
        verdict(unpooledGrowth)
      }`,
    );
    console.log(
      `  measured:    after a ${SETTLE_MS} ms settle${
        after.gc ? " and a forced GC" : " (no GC available)"
      }`,
    );
    if (failures.length > 20) {
      console.log(`  (first 20 of ${failures.length} failures shown above)`);
    }
  } finally {
    await injector.close();
    await upstream.close();
  }
  return failures.length === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
