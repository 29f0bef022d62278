/**
 * Capacity of a fleet on this machine (`deno task bench:capacity`): real
 * `airlock serve` nodes (separate processes) behind HAProxy configured by
 * deploy/haproxy.ts, on loopback. It prints
 *
 * - memory per idle sandbox and per running sandbox (proportional set size
 *   of the node's whole process tree: the server, bwrap and each sandbox's
 *   Deno, shared pages split between them), and the sandboxes alive on one
 *   node after creating `--alive` of them;
 * - runs/s through the router with 1, 2 and 3 nodes (closed-loop clients
 *   running `console.log(1)` in sandboxes spread over the nodes);
 * - the router's added latency per request (GET /version and a whole run,
 *   each sequentially on a keep-alive connection, direct vs through HAProxy).
 *
 * Options: --alive N (default 100), --seconds S per throughput point
 * (default 15), --clients C (default 8), --rounds N of the three
 * throughput points, interleaved 1-2-3 then 3-2-1 (default 2), --requests R
 * latency samples each way (default 2000).
 *
 * @module
 */

import { AirlockClient } from "../http/client.ts";
import { nodeOfSandboxId } from "../http/node.ts";
import {
  type FleetNode,
  HAPROXY,
  type Router,
  startNode,
  startRouter,
  stopNodes,
  until,
} from "../tests/kits/fleet.ts";

const TOKEN = "capacity-token-0123456789abcdef";

function option(name: string, fallback: number): number {
  const at = Deno.args.indexOf(name);
  const value = at === -1 ? fallback : Number(Deno.args[at + 1]);
  if (!Number.isFinite(value) || value <= 0) {
    throw new TypeError(`${name} needs a positive number`);
  }
  return value;
}

/** The pids of `root` and every process below it. */
function tree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry.name));
      children.set(ppid, list);
    } catch { /* exited */ }
  }
  const out: number[] = [];
  const visit = (pid: number) => {
    out.push(pid);
    for (const child of children.get(pid) ?? []) visit(child);
  };
  visit(root);
  return out;
}

/**
 * CPU seconds used by a process and the children it has reaped (a closed
 * sandbox's bwrap, Deno and socat are counted once its node reaps it).
 */
function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime, stime, cutime, cstime: fields 14-17 of stat(5), in clock ticks
  // (100 per second on Linux).
  return fields.slice(11, 15).reduce((sum, f) => sum + Number(f), 0) / 100;
}

/** Proportional set size of a process tree, in MiB. */
function pss(root: number): { mib: number; processes: number } {
  let kib = 0;
  const pids = tree(root);
  for (const pid of pids) {
    try {
      const rollup = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
      kib += Number(rollup.match(/^Pss:\s+(\d+) kB/m)?.[1] ?? 0);
    } catch { /* exited */ }
  }
  return { mib: kib / 1024, processes: pids.length };
}

async function settleMemory(root: number): Promise<number> {
  // Two equal readings in a row, a second apart (processes done starting).
  let last = -1;
  return await until("memory settles", async () => {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const now = pss(root);
    const same = Math.abs(now.mib - last) < 2;
    last = now.mib;
    return same && now.mib;
  }, 120_000);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function summary(times: number[]): { p50: number; p99: number } {
  const sorted = [...times].sort((a, b) => a - b);
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
}

/** `count` sequential GET /version on one keep-alive connection, in ms. */
async function latency(url: string, count: number): Promise<number[]> {
  const client = Deno.createHttpClient({});
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      const response = await fetch(`${url}/version`, { client });
      await response.arrayBuffer();
      times.push(performance.now() - started);
    }
  } finally {
    client.close();
  }
  return times;
}

/** `count` sequential runs of console.log(1) in sandbox `id`, in ms. */
async function runLatency(
  client: AirlockClient,
  id: string,
  count: number,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const result = await client.run(id, { code: "console.log(1)" });
    if (!result.success) throw new Error(`run failed: ${result.stderr}`);
    times.push(performance.now() - started);
  }
  return times;
}

async function throughput(
  router: Router,
  nodes: number,
  clients: number,
  seconds: number,
): Promise<
  { perSecond: number; runs: number; perNode: Record<string, number> }
> {
  const client = new AirlockClient({ baseUrl: router.url, token: TOKEN });
  // Enough sandboxes that every client has its own, spread by the router.
  const ids = await Promise.all(
    Array.from(
      { length: Math.max(clients, nodes * 2) },
      () => client.createSandbox({ policy: {} }),
    ),
  );
  const perNode: Record<string, number> = {};
  for (const { id } of ids) {
    const node = nodeOfSandboxId(id)!;
    perNode[node] = (perNode[node] ?? 0) + 1;
  }
  let done = 0;
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      let turn = c;
      while (performance.now() < deadline) {
        const { id } = ids[turn++ % ids.length]!;
        const result = await client.run(id, { code: "console.log(1)" });
        if (!result.success) throw new Error(`run failed: ${result.stderr}`);
        done++;
      }
    }),
  );
  const elapsed = seconds + Math.max(0, performance.now() - deadline) / 1000;
  await Promise.all(ids.map(({ id }) => client.deleteSandbox(id)));
  return { perSecond: done / elapsed, runs: done, perNode };
}

async function main(): Promise<number> {
  if (!HAPROXY) {
    console.error("bench:capacity needs HAProxy: apt-get install haproxy");
    return 1;
  }
  const alive = option("--alive", 100);
  const seconds = option("--seconds", 15);
  const clients = option("--clients", 8);
  const requests = option("--requests", 2000);
  const rounds = option("--rounds", 2);
  const dir = await Deno.makeTempDir({ prefix: "airlock-capacity-" });
  await Deno.chmod(dir, 0o755);
  await Deno.writeTextFile(`${dir}/tokens`, `bench ${TOKEN}\n`, {
    mode: 0o600,
  });
  const config = {
    tokenFile: "tokens",
    ceilings: {
      sandboxes: 10_000,
      runsPerToken: 64,
      runsPerSandbox: 1,
      queuedRunsPerToken: 256,
    },
    runSlots: 64,
  };
  const nodes: FleetNode[] = [];
  const routers: Router[] = [];
  try {
    for (const name of ["airlock-0", "airlock-1", "airlock-2"]) {
      nodes.push(await startNode(dir, name, config));
    }
    for (const node of nodes) {
      const direct = new AirlockClient({ baseUrl: node.url });
      await until(
        `${node.name} ready`,
        async () => (await direct.ready()).ready,
      );
    }
    console.log(
      `capacity: 3 nodes (separate processes) on ${navigator.hardwareConcurrency} cores, HAProxy ${HAPROXY}, loopback\n`,
    );

    // Memory per sandbox, on one node.
    const node = nodes[0]!;
    const pid = node.child.pid;
    const direct = new AirlockClient({ baseUrl: node.url, token: TOKEN });
    const base = await settleMemory(pid);
    const sample = 20;
    const idle = await Promise.all(
      Array.from(
        { length: sample },
        () => direct.createSandbox({ policy: {} }),
      ),
    );
    const withIdle = await settleMemory(pid);
    const perIdle = (withIdle - base) / sample;
    // The same sandboxes, each running a program that waits.
    const runs = idle.map(({ id }) =>
      direct.run(id, {
        code: "await new Promise((r) => setTimeout(r, 600_000));",
      }).catch(() => null)
    );
    await until("every run live", async () => {
      const metrics = await fetch(`${node.url}/metrics`).then((r) => r.text());
      return metrics.includes(`\nairlock_runs_live ${sample}\n`);
    }, 120_000);
    const withRunning = await settleMemory(pid);
    const perRunning = (withRunning - base) / sample;
    await Promise.all(idle.map(({ id }) => direct.deleteSandbox(id)));
    await Promise.all(runs);

    // Sandboxes alive on one node.
    const started = performance.now();
    const many: string[] = [];
    for (let i = 0; i < alive; i += 10) {
      const batch = await Promise.all(
        Array.from(
          { length: Math.min(10, alive - i) },
          () => direct.createSandbox({ policy: {} }),
        ),
      );
      many.push(...batch.map((s) => s.id));
    }
    const createdS = (performance.now() - started) / 1000;
    const manyMemory = await settleMemory(pid);
    const check = await direct.run(many.at(-1)!, { code: "console.log(1)" });
    const listed = (await direct.listSandboxes()).length;
    await Promise.all(many.map((id) => direct.deleteSandbox(id)));

    console.log("memory (PSS of the node's process tree)");
    console.log(`  node, no sandboxes:        ${base.toFixed(0)} MiB`);
    console.log(
      `  per idle sandbox:          ${
        perIdle.toFixed(1)
      } MiB (${sample} sandboxes, each with its waiting Deno process)`,
    );
    console.log(
      `  per running sandbox:       ${
        perRunning.toFixed(1)
      } MiB (${sample} runs of a program that only waits; add what the program allocates, up to its memoryMb)`,
    );
    console.log(
      `  ${listed} sandboxes alive on one node: ${
        manyMemory.toFixed(0)
      } MiB in all, created in ${createdS.toFixed(1)} s (${
        (alive / createdS).toFixed(1)
      }/s); a run in the last one: ${check.success ? "ok" : "FAILED"}`,
    );

    // Runs/s through the router with 1, 2 and 3 nodes. Other work on the
    // machine comes and goes: the points are interleaved (1, 2, 3, then 3,
    // 2, 1, ...) so each sees the same mix, and every round is printed.
    for (let n = 1; n <= 3; n++) {
      const router = await startRouter(dir, nodes.slice(0, n));
      routers.push(router);
      const client = new AirlockClient({ baseUrl: router.url, token: TOKEN });
      await until("the router sees every node ready", async () => {
        const ids = await Promise.all(
          Array.from({ length: n }, () => client.createSandbox({ policy: {} })),
        ).catch(() => []);
        await Promise.all(ids.map(({ id }) => client.deleteSandbox(id)));
        return new Set(ids.map(({ id }) => nodeOfSandboxId(id))).size === n;
      });
    }
    const rates: number[][] = [[], [], []];
    let oneNodeCpu = 0;
    let oneNodeRuns = 0;
    const spread: string[] = ["", "", ""];
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? [1, 2, 3] : [3, 2, 1];
      for (const n of order) {
        const cpuBefore = cpuSeconds(node.child.pid);
        const { perSecond, runs, perNode } = await throughput(
          routers[n - 1]!,
          n,
          clients,
          seconds,
        );
        if (n === 1) {
          oneNodeCpu += cpuSeconds(node.child.pid) - cpuBefore;
          oneNodeRuns += runs;
        }
        rates[n - 1]!.push(perSecond);
        spread[n - 1] = Object.values(perNode).join(", ");
      }
    }
    console.log(
      `\nruns/s through the router (${clients} clients, console.log(1) in a kept sandbox, ${seconds} s per point, ${rounds} interleaved rounds)`,
    );
    for (let n = 1; n <= 3; n++) {
      const list = rates[n - 1]!;
      const mean = list.reduce((a, b) => a + b, 0) / list.length;
      console.log(
        `  ${n} node${n === 1 ? ": " : "s:"} ${
          mean.toFixed(1)
        } runs/s (rounds: ${
          list.map((x) => x.toFixed(1)).join(", ")
        }; sandboxes per node: ${spread[n - 1]})`,
      );
    }
    console.log(
      `  CPU per run on a node: ${
        (oneNodeCpu / oneNodeRuns * 1000).toFixed(0)
      } ms (the 1-node points: server, bwrap, Deno and socat of ${oneNodeRuns} runs, creating and closing their sandboxes included)`,
    );

    // The router's added latency: direct and routed requests alternate in
    // blocks of 100, so both see the same load.
    const router = routers[0]!;
    const direct1: number[] = [];
    const routed1: number[] = [];
    for (let done = 0; done < requests; done += 100) {
      const block = Math.min(100, requests - done);
      direct1.push(...await latency(node.url, block));
      routed1.push(...await latency(router.url, block));
    }
    const directLatency = summary(direct1);
    const routedLatency = summary(routed1);
    const { id } = await direct.createSandbox({ policy: {} });
    const routed = new AirlockClient({ baseUrl: router.url, token: TOKEN });
    await runLatency(direct, id, 5);
    const runsDirect: number[] = [];
    const runsRouted: number[] = [];
    for (let i = 0; i < 40; i++) {
      runsDirect.push(...await runLatency(direct, id, 1));
      runsRouted.push(...await runLatency(routed, id, 1));
    }
    const runDirect = summary(runsDirect).p50;
    const runRouted = summary(runsRouted).p50;
    await direct.deleteSandbox(id);
    console.log(
      `\nrouter latency (${requests} sequential GET /version each way, keep-alive, alternating in blocks of 100)`,
    );
    console.log(
      `  direct:          p50 ${directLatency.p50.toFixed(3)} ms, p99 ${
        directLatency.p99.toFixed(3)
      } ms`,
    );
    console.log(
      `  through HAProxy: p50 ${routedLatency.p50.toFixed(3)} ms, p99 ${
        routedLatency.p99.toFixed(3)
      } ms`,
    );
    console.log(
      `  added per request: ${
        (routedLatency.p50 - directLatency.p50).toFixed(3)
      } ms at p50; a whole run (console.log(1), median of 40, alternating): ${
        runDirect.toFixed(1)
      } ms direct, ${runRouted.toFixed(1)} ms routed`,
    );
    return 0;
  } finally {
    for (const router of routers) await router.stop();
    await stopNodes(nodes);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) Deno.exit(await main());
