/**
 * Soak benchmark (`deno task soak [--runs 1000] [--concurrent 50] [--warm-up 200]`): many
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
 * - The measured round is two halves, each `--runs`/2 sequential runs then
 *   `--concurrent` runs at once; a warm-up round (`--warm-up` sequential
 *   runs, 200 by default, then one concurrent burst) comes first, because a
 *   fresh Deno process's RSS climbs while it first meets the workload (the
 *   C allocator's heap reaches the high-water mark of a concurrent burst)
 *   and a leak is growth that does NOT level off.
 * - Before (after the warm-up), at the half and after, each after a GC when
 *   `--expose-gc` is on and a short settle, it prints the harness's RSS, V8
 *   heap by space, the C allocator's main heap, threads and open file
 *   descriptors, and PASS/MISS against "RSS growth over the last half <=
 *   5%"; growth over the whole measured round and from the very start
 *   (after 5 runs) are printed for reference. `--heap-census` adds the
 *   objects allocated during the measured round and still alive at its end,
 *   by kind (inspector heap snapshots before and after), to tell retained
 *   objects from compiled code.
 * - The task runs with the node's V8 flags (deploy/node_flags.ts: the young
 *   generation capped), as `airlock serve` does; without them V8's young
 *   generation alone grows the reserved heap by up to ~30 MiB.
 *
 * Exit code 1 if any run failed; a MISS alone does not fail the task.
 *
 * @module
 */

import { getHeapSpaceStatistics } from "node:v8";
import { Injector, Sandbox } from "../mod.ts";
import { CertificateAuthority } from "../injector/ca.ts";
import { heapIds, survivorsSince } from "./_heap_census.ts";

const HOST = "soak.example.test";
const TOKEN = `soak-${crypto.randomUUID()}`;
const RUN_TIMEOUT_MS = 30_000;
/** A run (create + run + close) taking longer than this counts as hung. */
const HANG_MS = 120_000;
/** Runs before the "start" snapshot: modules loaded, first TLS done. */
const FIRST_RUNS = 5;
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
  warmUp: number;
  heapCensus: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    runs: 1000,
    concurrent: 50,
    warmUp: 200,
    heapCensus: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === "--heap-census") {
      args.heapCensus = true;
      continue;
    }
    const [name, inline] = flag.includes("=")
      ? [flag.slice(0, flag.indexOf("=")), flag.slice(flag.indexOf("=") + 1)]
      : [flag, undefined];
    const value = Number(inline ?? argv[++i]);
    if (!Number.isInteger(value) || value < 0) {
      throw new TypeError(`${name} needs a non-negative integer`);
    }
    if (name === "--runs") args.runs = value;
    else if (name === "--concurrent") args.concurrent = value;
    else if (name === "--warm-up") args.warmUp = value;
    else {
      throw new TypeError(
        `unknown option ${name}: use --runs N, --concurrent N, --warm-up N, --heap-census`,
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

/** V8's spaces as `name committed`: which one holds the reserved heap. */
function spaces(): string {
  return getHeapSpaceStatistics()
    .filter((s) => s.space_size >= 1024 * 1024)
    .map((s) =>
      `${s.space_name.replace(/_space$/, "")} ${
        (s.space_size / 1024 / 1024).toFixed(1)
      }`
    ).join(", ");
}

/** Resident bytes of the `[heap]` mapping: glibc malloc's main arena. */
function mallocHeap(): number {
  const smaps = Deno.readTextFileSync("/proc/self/smaps");
  const at = smaps.indexOf(" [heap]\n");
  if (at === -1) return 0;
  const rss = smaps.slice(at).match(/^Rss:\s+(\d+) kB/m)?.[1];
  return Number(rss ?? 0) * 1024;
}

function threads(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(status.match(/^Threads:\s+(\d+)/m)?.[1] ?? 0);
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
  heapTotal: number;
  fds: number;
  pooled: number;
  gc: boolean;
  /** V8's spaces, committed MiB each. */
  spaces: string;
  /** Resident bytes of the C allocator's main heap (the `[heap]` mapping). */
  mallocHeap: number;
  threads: number;
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
    heapTotal: memory.heapTotal,
    fds: openFds(),
    pooled: pooledConnections(upstreamPort),
    gc: gc !== undefined,
    spaces: spaces(),
    mallocHeap: mallocHeap(),
    threads: threads(),
  };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const growth = (before: number, after: number) =>
  before === 0 ? 0 : ((after - before) / before) * 100;
const verdict = (pct: number) => pct <= GROWTH_LIMIT ? "PASS" : "MISS";
const describe = (s: Snapshot) =>
  `rss ${mib(s.rss)}, heap ${mib(s.heap)} used of ${
    mib(s.heapTotal)
  } (${s.spaces}), malloc heap ${
    mib(s.mallocHeap)
  }, threads ${s.threads}, open fds ${s.fds} (${s.pooled} pooled upstream connections)${
    s.gc ? "" : "; no GC: run with --v8-flags=--expose-gc"
  }`;

type Fail = (label: string, why: string) => void;

/**
 * One round of the workload: `sequential` runs one after another (progress
 * every 100), then `concurrent` runs at once.
 */
async function round(
  label: string,
  sequential: number,
  concurrent: number,
  injector: Injector,
  upstream: Upstream,
  fail: Fail,
): Promise<{ runs: number; sequentialS: number; concurrentS: number }> {
  const started = performance.now();
  for (let i = 0; i < sequential; i++) {
    const why = await oneRun(injector, upstream);
    if (why) fail(`${label} sequential run ${i}`, why);
    if ((i + 1) % 100 === 0 || i + 1 === sequential) {
      const s = (performance.now() - started) / 1000;
      const m = Deno.memoryUsage();
      console.log(
        `  ${label} sequential ${i + 1}/${sequential}: ${s.toFixed(1)} s, ${
          ((i + 1) / s).toFixed(2)
        } runs/s, rss ${mib(m.rss)}, heap total ${
          mib(m.heapTotal)
        } (${spaces()}), external ${mib(m.external)}, fds ${openFds()}`,
      );
    }
  }
  const sequentialS = (performance.now() - started) / 1000;
  const concurrentStarted = performance.now();
  const results = await Promise.all(
    Array.from({ length: concurrent }, () => oneRun(injector, upstream)),
  );
  results.forEach((why, i) => why && fail(`${label} concurrent run ${i}`, why));
  const concurrentS = (performance.now() - concurrentStarted) / 1000;
  return { runs: sequential + concurrent, sequentialS, concurrentS };
}

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
  const fail: Fail = (label, why) => {
    failures.push(`${label}: ${why}`);
    if (failures.length <= 20) console.log(`  FAIL ${label}: ${why}`);
  };
  try {
    console.log(
      `soak: ${FIRST_RUNS} first runs, a warm-up round (${args.warmUp} sequential + ${args.concurrent} concurrent), then the measured round in two halves (each ${
        Math.floor(args.runs / 2)
      } sequential + ${args.concurrent} concurrent); one shared Injector, a fresh Sandbox per run; each run fetches https://${HOST} through the injector (header injected and checked upstream); run timeout ${RUN_TIMEOUT_MS} ms`,
    );
    for (let i = 0; i < FIRST_RUNS; i++) {
      const why = await oneRun(injector, upstream);
      if (why) fail(`first run ${i}`, why);
    }
    const start = await settle(upstream.port);
    console.log(`start (after ${FIRST_RUNS} runs): ${describe(start)}`);

    const warmUp = await round(
      "warm-up",
      args.warmUp,
      args.concurrent,
      injector,
      upstream,
      fail,
    );
    const before = await settle(upstream.port);
    const beforeIds = args.heapCensus ? await heapIds() : null;
    console.log(
      `before (after the warm-up round, ${warmUp.runs} runs): ${
        describe(before)
      }`,
    );

    // The measured round in two halves of the same workload, so "growth
    // over the last half" compares like with like: a node that runs for
    // weeks must level off, not keep climbing.
    const half = Math.floor(args.runs / 2);
    const first = await round(
      "soak 1/2",
      half,
      args.concurrent,
      injector,
      upstream,
      fail,
    );
    const middle = await settle(upstream.port);
    console.log(
      `half (after the first half, ${first.runs} runs): ${describe(middle)}`,
    );
    const second = await round(
      "soak 2/2",
      args.runs - half,
      args.concurrent,
      injector,
      upstream,
      fail,
    );
    const sequentialS = first.sequentialS + second.sequentialS;
    const concurrentS = first.concurrentS + second.concurrentS;
    const totalS = sequentialS + concurrentS;
    const total = first.runs + second.runs;

    const after = await settle(upstream.port);
    const survivors = beforeIds === null
      ? null
      : await survivorsSince(beforeIds, 12);
    const rssGrowth = growth(before.rss, after.rss);
    const lastHalf = growth(middle.rss, after.rss);
    const heapGrowth = growth(before.heap, after.heap);
    const fdGrowth = growth(before.fds, after.fds);
    // Each pooled connection is two fds here: the injector's end and the
    // in-process upstream's end.
    const unpooled = (s: Snapshot) => s.fds - 2 * s.pooled;
    const unpooledGrowth = growth(unpooled(before), unpooled(after));
    const pct = (n: number) => `${n >= 0 ? "+" : ""}${n.toFixed(1)}%`;

    console.log("\nsoak results");
    console.log(
      `  runs:        ${total} measured (${args.runs} sequential, ${
        2 * args.concurrent
      } concurrent in two bursts), after ${
        FIRST_RUNS + warmUp.runs
      } warm-up runs`,
    );
    console.log(`  failures:    ${failures.length}`);
    console.log(
      `  upstream:    ${upstream.counts.ok} injected requests, ${upstream.counts.refused} without the token (all ${
        FIRST_RUNS + warmUp.runs + total
      } runs, warm-up included)`,
    );
    console.log(
      `  time:        ${totalS.toFixed(1)} s total; sequential ${
        sequentialS.toFixed(1)
      } s (${(args.runs / sequentialS || 0).toFixed(2)} runs/s); concurrent ${
        concurrentS.toFixed(1)
      } s (${(2 * args.concurrent / concurrentS || 0).toFixed(2)} runs/s)`,
    );
    console.log(`  throughput:  ${(total / totalS).toFixed(2)} runs/s overall`);
    console.log(
      `  rss:         ${mib(before.rss)} -> ${mib(middle.rss)} (half) -> ${
        mib(after.rss)
      }; over the last half ${pct(lastHalf)}  ${
        verdict(lastHalf)
      } (growth <= ${GROWTH_LIMIT}%); over the whole measured round ${
        pct(rssGrowth)
      }`,
    );
    console.log(
      `  (heap used:  ${mib(before.heap)} -> ${mib(after.heap)} (${
        pct(heapGrowth)
      }), for reference)`,
    );
    console.log(
      `  (heap total: ${mib(before.heapTotal)} -> ${
        mib(middle.heapTotal)
      } (half) -> ${mib(after.heapTotal)} (${
        pct(growth(before.heapTotal, after.heapTotal))
      }), V8's reserved heap: ${after.spaces})`,
    );
    console.log(
      `  (from the very start, warm-up included, no verdict: rss ${
        mib(start.rss)
      } -> ${mib(after.rss)} (${pct(growth(start.rss, after.rss))}), heap ${
        mib(start.heap)
      } -> ${mib(after.heap)} (${pct(growth(start.heap, after.heap))}))`,
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
    if (survivors !== null) {
      console.log(
        `  heap census: objects allocated during the measured round and still alive, by kind (heap snapshots distort RSS: read RSS from a run without --heap-census):`,
      );
      if (survivors.length === 0) console.log("    none");
      for (const s of survivors) {
        console.log(`    ${s.count} ${s.kind} (${s.bytes} bytes)`);
      }
    }
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
