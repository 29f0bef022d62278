/**
 * Agent benchmark: what an agent's program costs in airlock against a bare
 * `deno run` of the same program. The programs make one call to a local
 * HTTPS upstream playing the OpenAI API: one through the `openai` SDK
 * (installed through the policy's `npm.allow`), one with plain `fetch`.
 *
 * Series, interleaved in one process (one run of each per round, medians):
 * - `bare`: `deno run` of the program in a project whose `node_modules`
 *   holds the same `openai` install, with a warm DENO_DIR of its own;
 * - `bare-cold`: the same with an empty DENO_DIR each time (no module
 *   analysis, no V8 code cache): where a fresh sandbox's Deno starts, since
 *   a sandbox's caches are its own and a new one has none;
 * - `live`: `sandbox.run()` on one long-lived sandbox;
 * - `fresh`: `Sandbox.create()`, one run, `close()`;
 * - `first`: a fresh sandbox whose bundle cache scope is new (nothing
 *   bundled yet) and whose Deno caches are empty: an agent's first run.
 *
 * Each program also times its one call (`callMs`, inside the process): for
 * a fresh process that is its first HTTPS request (TLS to the injector, a
 * leaf for the sandbox, the upstream's handshake).
 *
 * Usage: `deno task bench:agent [--runs N] [--json]`
 *
 * Figures only: a missed target is printed, never turned into an exit code.
 * The machine's load average is printed at the start and the end: other
 * work moves every figure.
 *
 * @module
 */

import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { Sandbox } from "../mod.ts";
import { CertificateAuthority } from "../injector/ca.ts";
import { defaultBundleCache } from "../harness/bundle/bundle.ts";
import { NpmPackages } from "../harness/bundle/npm_packages.ts";
import { type MachineInfo, machineInfo, quantile } from "./start.ts";

/** Uncounted rounds before the counted ones. */
export const WARMUP_ROUNDS = 2;

/**
 * Idle after each run, not counted: a sandbox starts its next run's process
 * right after a run, which must not land in the next series' time.
 */
export const SETTLE_MS = 150;

/** The issue's targets (median ratios). */
export const TARGETS = {
  /** SDK program, live sandbox over bare. */
  liveSdk: 1.2,
  /** SDK program, fresh sandbox (create, run, close) over bare. */
  freshSdk: 1.5,
  /** First HTTPS request of a fresh sandbox over a bare process's first. */
  firstRequest: 2,
} as const;

const HOST = "api.openai.test";
const SECRET = "sk-bench-real-key-0123456789";
const REPLY = "Hello from the bench upstream";

/** The SDK program, as a model would write it (key and URL from the env). */
export const SDK_PROGRAM = `import OpenAI from "openai";

const client = new OpenAI();
const started = performance.now();
const completion = await client.chat.completions.create({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "Say hello" }],
});
const callMs = performance.now() - started;
console.log(JSON.stringify({ reply: completion.choices[0].message.content, callMs }));
`;

/** The same call with plain fetch. */
export const FETCH_PROGRAM = `const started = performance.now();
const response = await fetch(\`\${Deno.env.get("OPENAI_BASE_URL")}/chat/completions\`, {
  method: "POST",
  headers: {
    authorization: \`Bearer \${Deno.env.get("OPENAI_API_KEY")}\`,
    "content-type": "application/json",
  },
  body: JSON.stringify({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: "Say hello" }],
  }),
});
const completion = await response.json();
const callMs = performance.now() - started;
console.log(JSON.stringify({ reply: completion.choices[0].message.content, callMs }));
`;

/** One series' figures, in milliseconds. */
export interface Series {
  /** Counted runs. */
  n: number;
  /** Median wall time of a run, as its caller sees it. */
  medianMs: number;
  /** 90th percentile of it. */
  p90Ms: number;
  /** Median of the program's own timing of its one call. */
  callMedianMs: number;
  /** 90th percentile of that. */
  callP90Ms: number;
  /** Every counted wall time, in order. */
  samplesMs: number[];
}

/** Everything the benchmark measured. */
export interface AgentReport {
  /** Where it ran (load at the start). */
  machine: MachineInfo;
  /** Load averages at the end. */
  loadEnd: string;
  /** Counted rounds. */
  runs: number;
  /** The SDK's installed version. */
  sdk: string;
  /** Installing the SDK into an empty package cache, when it was needed. */
  installMs: number | null;
  /** Each series by name (`bare:sdk`, `live:fetch`, `first:sdk`...). */
  series: Record<string, Series>;
  /** The target ratios, measured. */
  ratios: {
    liveSdk: number;
    freshSdk: number;
    liveFetch: number;
    freshFetch: number;
    firstRequest: number;
    /** Fresh sandbox over a bare run whose DENO_DIR is empty (SDK). */
    freshSdkCold: number;
    /** The same ratios over the series' 90th percentiles. */
    p90: {
      liveSdk: number;
      freshSdk: number;
      firstRequest: number;
    };
  };
  /** Bundle cache counters over the whole benchmark. */
  bundleCache: { hits: number; misses: number };
}

// ------------------------------------------------------------ the upstream

interface Upstream {
  port: number;
  barePort: number;
  caFile: string;
  /** Authorization headers seen, in order. */
  seen: string[];
  close(): Promise<void>;
}

/**
 * The OpenAI stand-in: `node:https` with TCP_NODELAY on each connection
 * (as API front ends set it), one listener per name (a leaf each): the
 * sandboxes reach `api.openai.test` through `connectTo`, bare Deno
 * `127.0.0.1`.
 */
async function startUpstream(dir: string): Promise<Upstream> {
  const ca = await CertificateAuthority.create({ commonName: "bench CA" });
  const caFile = `${dir}/upstream-ca.pem`;
  await Deno.writeTextFile(caFile, ca.certificatePem);
  const seen: string[] = [];
  const listen = async (name: string): Promise<Server> => {
    const leaf = await ca.leafFor(name);
    const server = createServer(
      { cert: leaf.certPem, key: leaf.keyPem },
      (req, res) => {
        seen.push(String(req.headers.authorization ?? ""));
        req.resume();
        req.on("end", () => {
          const body = JSON.stringify({
            id: "chatcmpl-bench",
            object: "chat.completion",
            created: 1,
            model: "gpt-4o-mini",
            choices: [{
              index: 0,
              message: { role: "assistant", content: REPLY },
              finish_reason: "stop",
            }],
            usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 },
          });
          res.writeHead(200, {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
          });
          res.end(body);
        });
      },
    );
    server.on("secureConnection", (socket) => socket.setNoDelay(true));
    await new Promise<void>((resolve) =>
      server.listen(0, "127.0.0.1", resolve)
    );
    return server;
  };
  const [sandboxes, bare] = [await listen(HOST), await listen("127.0.0.1")];
  return {
    port: (sandboxes.address() as AddressInfo).port,
    barePort: (bare.address() as AddressInfo).port,
    caFile,
    seen,
    close: async () => {
      for (const server of [sandboxes, bare]) {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    },
  };
}

// ------------------------------------------------------------- the runs

/** What one program printed. */
interface Outcome {
  reply: string;
  callMs: number;
}

function parseOutcome(stdout: string, stderr: string): Outcome {
  const line = stdout.trim().split("\n").at(-1) ?? "";
  let outcome: Outcome;
  try {
    outcome = JSON.parse(line);
  } catch {
    throw new Error(
      `Cannot read the program's result: stdout ${
        JSON.stringify(stdout.slice(0, 500))
      }, stderr ${JSON.stringify(stderr.slice(0, 2000))}`,
    );
  }
  if (outcome.reply !== REPLY) {
    throw new Error(`Unexpected reply: ${JSON.stringify(outcome)}`);
  }
  // The injector puts the key in; nothing the program printed holds it.
  if (stdout.includes(SECRET) || stderr.includes(SECRET)) {
    throw new Error("The secret reached the program's output");
  }
  return outcome;
}

/** A project directory with the installed SDK as its `node_modules`. */
async function bareProject(
  dir: string,
  install: string,
  version: string,
): Promise<string> {
  const project = `${dir}/bare`;
  await Deno.mkdir(project);
  const copy = await new Deno.Command("cp", {
    args: ["-a", `${install}/node_modules`, `${project}/node_modules`],
  }).output();
  if (!copy.success) {
    throw new Error(`Cannot copy ${install}/node_modules for the bare runs`);
  }
  await Deno.writeTextFile(
    `${project}/package.json`,
    JSON.stringify({ private: true, dependencies: { openai: version } }),
  );
  await Deno.writeTextFile(`${project}/sdk.ts`, SDK_PROGRAM);
  await Deno.writeTextFile(`${project}/fetch.ts`, FETCH_PROGRAM);
  return project;
}

const decoder = new TextDecoder();

function bareRun(
  project: string,
  file: string,
  upstream: Upstream,
  denoDir: string,
  cold = false,
): () => Promise<Outcome> {
  return async () => {
    if (cold) await Deno.remove(denoDir, { recursive: true }).catch(() => {});
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--node-modules-dir=manual",
        "--no-lock",
        "--cached-only",
        "-A",
        file,
      ],
      cwd: project,
      clearEnv: true,
      env: {
        DENO_DIR: denoDir,
        DENO_NO_UPDATE_CHECK: "1",
        DENO_CERT: upstream.caFile,
        NO_COLOR: "1",
        OPENAI_API_KEY: SECRET,
        OPENAI_BASE_URL: `https://127.0.0.1:${upstream.barePort}/v1`,
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return parseOutcome(decoder.decode(out.stdout), decoder.decode(out.stderr));
  };
}

function sandboxOptions(upstream: Upstream, npmCacheDir: string) {
  return {
    policy: {
      npm: { allow: ["openai"] },
      env: { OPENAI_BASE_URL: `https://${HOST}/v1` },
      secrets: {
        OPENAI_API_KEY: { hosts: [HOST], value: "${secret:OPENAI_KEY}" },
      },
      network: { allow: { [HOST]: [] } },
      upstream: {
        connectTo: [`${HOST}:443:127.0.0.1:${upstream.port}`],
        caCerts: [upstream.caFile],
      },
    },
    secrets: { OPENAI_KEY: SECRET },
    npmCacheDir,
  };
}

async function runIn(sandbox: Sandbox, code: string): Promise<Outcome> {
  const result = await sandbox.run({ code });
  return parseOutcome(result.stdout, result.stderr);
}

// ------------------------------------------------------------- measuring

async function load(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3)
    .join(" ");
}

const round2 = (n: number) => Math.round(n * 100) / 100;

/**
 * Runs the benchmark.
 *
 * @param runs Counted rounds (each runs every series once).
 * @returns The figures.
 */
export async function benchmark(runs: number): Promise<AgentReport> {
  const machine = await machineInfo();
  const dir = await Deno.makeTempDir({ prefix: "airlock-bench-agent-" });
  await Deno.chmod(dir, 0o755);
  const upstream = await startUpstream(dir);
  const npmCacheDir = `/var/tmp/airlock-npm-${Deno.uid() ?? 0}`;
  const options = sandboxOptions(upstream, npmCacheDir);
  try {
    // The SDK through the policy's npm.allow (installed once, if needed).
    let installMs: number | null = null;
    const npm = new NpmPackages({ allow: ["openai"], cacheDir: npmCacheDir });
    await npm.ready();
    const before = performance.now();
    const installDir = await npm.resolve("openai", null);
    const resolveMs = performance.now() - before;
    if (resolveMs > 1000) installMs = round2(resolveMs);
    const version = installDir.slice("openai@".length);
    const project = await bareProject(
      dir,
      `${npmCacheDir}/${installDir}`,
      version,
    );
    const bareDenoDir = `${dir}/bare-deno-dir`;
    const coldDenoDir = `${dir}/cold-deno-dir`;

    await using live = await Sandbox.create(options);
    let firstScope = 0;
    const fresh = (code: string, scope?: string) => async () => {
      await using sandbox = await Sandbox.create({
        ...options,
        ...(scope ? { bundleCacheScope: scope } : {}),
      });
      return await runIn(sandbox, code);
    };
    const series: Record<string, () => Promise<Outcome>> = {
      "bare:sdk": bareRun(project, "sdk.ts", upstream, bareDenoDir),
      "bare-cold:sdk": bareRun(project, "sdk.ts", upstream, coldDenoDir, true),
      "live:sdk": () => runIn(live, SDK_PROGRAM),
      "fresh:sdk": fresh(SDK_PROGRAM),
      "first:sdk": () =>
        fresh(SDK_PROGRAM, `bench-first-${++firstScope}-${Math.random()}`)(),
      "bare:fetch": bareRun(project, "fetch.ts", upstream, bareDenoDir),
      "bare-cold:fetch": bareRun(
        project,
        "fetch.ts",
        upstream,
        coldDenoDir,
        true,
      ),
      "live:fetch": () => runIn(live, FETCH_PROGRAM),
      "fresh:fetch": fresh(FETCH_PROGRAM),
      "first:fetch": () =>
        fresh(FETCH_PROGRAM, `bench-first-${++firstScope}-${Math.random()}`)(),
    };
    const wall = new Map<string, number[]>();
    const calls = new Map<string, number[]>();
    const cacheBefore = defaultBundleCache.stats;
    for (let round = -WARMUP_ROUNDS; round < runs; round++) {
      for (const [name, run] of Object.entries(series)) {
        const started = performance.now();
        const outcome = await run();
        const ms = performance.now() - started;
        if (round >= 0) {
          (wall.get(name) ?? wall.set(name, []).get(name)!).push(round2(ms));
          (calls.get(name) ?? calls.set(name, []).get(name)!).push(
            round2(outcome.callMs),
          );
        }
        await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      }
    }
    // Every sandboxed call reached the upstream with the real key, put in
    // by the injector (the bare runs sent it themselves).
    if (upstream.seen.some((auth) => auth !== `Bearer ${SECRET}`)) {
      throw new Error("A request reached the upstream without the real key");
    }
    const summary: Record<string, Series> = {};
    for (const [name, samplesMs] of wall) {
      summary[name] = {
        n: samplesMs.length,
        medianMs: round2(quantile(samplesMs, 0.5)),
        p90Ms: round2(quantile(samplesMs, 0.9)),
        callMedianMs: round2(quantile(calls.get(name)!, 0.5)),
        callP90Ms: round2(quantile(calls.get(name)!, 0.9)),
        samplesMs,
      };
    }
    const ratio = (
      a: string,
      b: string,
      key: "medianMs" | "p90Ms" | "callP90Ms" = "medianMs",
    ) => round2(summary[a]![key] / summary[b]![key]);
    const cacheAfter = defaultBundleCache.stats;
    return {
      machine,
      loadEnd: await load(),
      runs,
      sdk: `openai@${version}`,
      installMs,
      series: summary,
      ratios: {
        liveSdk: ratio("live:sdk", "bare:sdk"),
        freshSdk: ratio("fresh:sdk", "bare:sdk"),
        liveFetch: ratio("live:fetch", "bare:fetch"),
        freshFetch: ratio("fresh:fetch", "bare:fetch"),
        firstRequest: round2(
          summary["fresh:fetch"]!.callMedianMs /
            summary["bare:fetch"]!.callMedianMs,
        ),
        freshSdkCold: ratio("fresh:sdk", "bare-cold:sdk"),
        p90: {
          liveSdk: ratio("live:sdk", "bare:sdk", "p90Ms"),
          freshSdk: ratio("fresh:sdk", "bare:sdk", "p90Ms"),
          firstRequest: ratio("fresh:fetch", "bare:fetch", "callP90Ms"),
        },
      },
      bundleCache: {
        hits: cacheAfter.hits - cacheBefore.hits,
        misses: cacheAfter.misses - cacheBefore.misses,
      },
    };
  } finally {
    await upstream.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * The report as a text table.
 *
 * @param r The figures.
 * @returns Lines for a terminal.
 */
export function formatReport(r: AgentReport): string {
  const pad = (s: string, n: number) => s.padEnd(n);
  const ms = (n: number) => `${n.toFixed(1)} ms`.padStart(11);
  const lines = [
    `machine: ${r.machine.cpu}, ${r.machine.cores} cores, kernel ${r.machine.kernel}, Deno ${r.machine.deno}, ${r.machine.bwrap}`,
    `load average: ${r.machine.load} at the start, ${r.loadEnd} at the end`,
    `SDK: ${r.sdk}${
      r.installMs !== null ? ` (installed in ${r.installMs} ms)` : ""
    }; ${r.runs} rounds, medians; bundle cache ${r.bundleCache.hits} hits, ${r.bundleCache.misses} misses`,
    "",
    `${pad("series", 16)}${"median".padStart(11)}${"p90".padStart(11)}${
      "call".padStart(11)
    }${"call p90".padStart(11)}`,
  ];
  for (const [name, s] of Object.entries(r.series)) {
    lines.push(
      `${pad(name, 16)}${ms(s.medianMs)}${ms(s.p90Ms)}${ms(s.callMedianMs)}${
        ms(s.callP90Ms)
      }`,
    );
  }
  const verdict = (value: number, limit: number, p90: number) =>
    `${value.toFixed(2)}x (target <= ${limit}x: ${
      value <= limit ? "met" : "MISSED"
    }; p90 ${p90.toFixed(2)}x)`;
  lines.push(
    "",
    `SDK, live sandbox / bare:       ${
      verdict(r.ratios.liveSdk, TARGETS.liveSdk, r.ratios.p90.liveSdk)
    }`,
    `SDK, fresh sandbox / bare:      ${
      verdict(r.ratios.freshSdk, TARGETS.freshSdk, r.ratios.p90.freshSdk)
    }`,
    `first request, fresh / bare:    ${
      verdict(
        r.ratios.firstRequest,
        TARGETS.firstRequest,
        r.ratios.p90.firstRequest,
      )
    }`,
    `SDK, fresh sandbox / bare with an empty DENO_DIR: ${
      r.ratios.freshSdkCold.toFixed(2)
    }x`,
    `fetch, live / bare: ${
      r.ratios.liveFetch.toFixed(2)
    }x; fetch, fresh / bare: ${r.ratios.freshFetch.toFixed(2)}x`,
    "",
    "call: the program's own timing of its one request (for fresh processes, their first HTTPS request)",
  );
  return lines.join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      runs: { type: "string", default: "15" },
      json: { type: "boolean", default: false },
    },
  });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) {
    console.error(
      `bench:agent: Cannot run as '--runs' must be a positive integer: current value is ${values.runs}`,
    );
    Deno.exit(2);
  }
  const report = await benchmark(runs);
  console.log(
    values.json ? JSON.stringify(report, null, 2) : formatReport(report),
  );
  Deno.exit(0);
}
