/**
 * Startup benchmark: how much a sandboxed hello-world costs over a bare
 * `deno run`, through the library and through the CLI; throughput of one and
 * of two sandboxes; peak resident memory of one sandbox's process tree.
 *
 * Usage: `deno task bench:start [--runs N] [--json] [--cli]`; `--cli` times
 * only the bare floor, `airlock run --help` (the CLI's and the harness's
 * modules loaded, nothing run) and `airlock run hello.ts` (the CLI startup
 * figure).
 *
 * Figures only: a missed target is printed, never turned into an exit code.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { run, Sandbox } from "../mod.ts";
import { stopBundler } from "../harness/bundle/bundle.ts";

/** Uncounted warm-up rounds (one run of each series) before the counted ones. */
export const WARMUP_RUNS = 3;

/**
 * Idle time after each timed run, not counted: a sandbox starts its next
 * run's process right after a run (warm start), and that background start
 * must not land in the next series' timing. An agent idles far longer
 * between runs (its model call).
 */
export const SETTLE_MS = 60;

/** Target for the library's overhead: median(b) / median(a). */
export const TARGET_RATIO = 1.5;

/** Target for the CLI: `airlock run hello.ts` over a bare `deno run hello.ts`. */
export const TARGET_CLI_RATIO = 3;

const HELLO = 'console.log("hello, world");\n';
const EXPECTED = "hello, world\n";
const SLEEPER = "await new Promise((r) => setTimeout(r, 300));\n" + HELLO;
const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** What the installed command runs: `deno install -g -A -n airlock ...`. */
const CLI_FLAGS = ["--allow-all"];
const decoder = new TextDecoder();

/** Median and 95th percentile of one measured series, in milliseconds. */
export interface Summary {
  /** Number of counted runs. */
  n: number;
  /** Median. */
  medianMs: number;
  /** 90th percentile (linear interpolation between closest ranks). */
  p90Ms: number;
  /** 95th percentile (linear interpolation between closest ranks). */
  p95Ms: number;
  /** Every counted run, in order. */
  samplesMs: number[];
}

/** The machine the figures come from. */
export interface MachineInfo {
  /** `model name` from /proc/cpuinfo. */
  cpu: string;
  /** Logical cores. */
  cores: number;
  /** Kernel release. */
  kernel: string;
  /** Deno version of this process. */
  deno: string;
  /** `bwrap --version`. */
  bwrap: string;
  /** 1, 5 and 15-minute load averages at the start (other work skews it). */
  load: string;
}

/** Memory of one sandbox's host process tree. */
export interface RssReport {
  /** Sum of VmHWM over the tree, in MiB. */
  peakMb: number;
  /** Each process seen: pid, command name, its VmHWM in MiB. */
  processes: { pid: number; comm: string; hwmMb: number }[];
  /** The workspace watchdog (host `sh`), not part of the tree, in MiB. */
  watchdogMb: number;
}

/** Runs per second. */
export interface Throughput {
  /** N runs back to back on one sandbox. */
  sequential: number;
  /** Two sandboxes, N/2 runs each, concurrently. */
  parallel2: number;
}

/** Everything the benchmark measured. */
export interface Report {
  /** Where it ran. */
  machine: MachineInfo;
  /** Counted runs per series. */
  runs: number;
  /** Uncounted runs before each series. */
  warmup: number;
  /**
   * Latency series: bare, sandbox.run (warm start, the default), sandbox.run
   * with `warm: false`, one-shot run(), CLI.
   */
  results: { a: Summary; b: Summary; bc: Summary; b2: Summary; c: Summary };
  /** Median ratios over the bare floor. */
  ratios: { ba: number; bca: number; b2a: number; ca: number };
  /** Whether median(b)/median(a) is within {@linkcode TARGET_RATIO}. */
  target: { limit: number; pass: boolean };
  /** Runs per second. */
  throughput: Throughput;
  /** Peak RSS of one sandbox. */
  rss: RssReport;
}

/**
 * Value at quantile `q` (0..1) of `values`, interpolating linearly.
 *
 * @param values Samples (not modified).
 * @param q Quantile, e.g. 0.5 for the median.
 * @returns The quantile, or NaN for no samples.
 */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((x, y) => x - y);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

const round2 = (n: number) => Math.round(n * 100) / 100;

/**
 * Times every series `runs` times after {@linkcode WARMUP_RUNS} uncounted
 * rounds. Series are interleaved (one run of each per round) so that drift in
 * the machine's speed (other load, CPU clocks) hits them all alike and their
 * ratios stay meaningful; {@linkcode SETTLE_MS} of idle follows each run.
 *
 * @param runs Counted runs per series.
 * @param series One run of each series; must throw if the run did not work.
 * @returns Each series' summary.
 */
export async function measure<K extends string>(
  runs: number,
  series: Record<K, () => Promise<void>>,
): Promise<Record<K, Summary>> {
  const entries = Object.entries(series) as [K, () => Promise<void>][];
  const samples = new Map<K, number[]>(entries.map(([k]) => [k, []]));
  for (let round = -WARMUP_RUNS; round < runs; round++) {
    for (const [key, fn] of entries) {
      const start = performance.now();
      await fn();
      if (round >= 0) samples.get(key)!.push(round2(performance.now() - start));
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    }
  }
  return Object.fromEntries(
    entries.map(([key]) => [key, summarise(samples.get(key)!)]),
  ) as Record<K, Summary>;
}

function summarise(samplesMs: number[]): Summary {
  return {
    n: samplesMs.length,
    medianMs: round2(quantile(samplesMs, 0.5)),
    p90Ms: round2(quantile(samplesMs, 0.9)),
    p95Ms: round2(quantile(samplesMs, 0.95)),
    samplesMs,
  };
}

// ---------------------------------------------------------------- the runs

/** Spawns a Deno with `args`; throws unless it printed the greeting. */
async function spawnDeno(args: string[]): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  expectHello(out.success, decoder.decode(out.stdout), out.stderr);
}

function expectHello(ok: boolean, stdout: string, stderr: unknown): void {
  if (ok && stdout === EXPECTED) return;
  const err = stderr instanceof Uint8Array ? decoder.decode(stderr) : stderr;
  throw new Error(`Run failed: stdout ${JSON.stringify(stdout)}, ${err}`);
}

/** (a) bare `deno run`. */
function bareRun(file: string): () => Promise<void> {
  return () => spawnDeno(["run", "--no-config", file]);
}

/** (b) one call of `sandbox.run` on a long-lived sandbox. */
function sandboxRun(sandbox: Sandbox): () => Promise<void> {
  return async () => {
    const r = await sandbox.run({ code: HELLO });
    expectHello(r.success, r.stdout, r.stderr);
  };
}

/** (b2) one-shot `run(code)`: create, run, close. */
function oneShotRun(): Promise<void> {
  return run(HELLO).then((r) => expectHello(r.success, r.stdout, r.stderr));
}

/** (c) the CLI, as the installed `airlock run <file>` starts it. */
function cliRun(file: string): () => Promise<void> {
  return () =>
    spawnDeno([
      "run",
      ...CLI_FLAGS,
      "--config",
      `${REPO}/deno.json`,
      `${REPO}/cli/mod.ts`,
      "run",
      file,
    ]);
}

/**
 * (h) `airlock run --help`: Deno, the CLI's and the harness's modules, no
 * sandbox. c - h is what the run itself costs.
 */
function cliHelp(): () => Promise<void> {
  return async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...CLI_FLAGS,
        "--config",
        `${REPO}/deno.json`,
        `${REPO}/cli/mod.ts`,
        "run",
        "--help",
      ],
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success || !decoder.decode(out.stdout).includes("airlock run")) {
      throw new Error(
        `airlock run --help failed: ${decoder.decode(out.stderr)}`,
      );
    }
  };
}

/** The CLI startup figure alone (`--cli`). */
export interface CliReport {
  /** Where it ran. */
  machine: MachineInfo;
  /** Counted runs per series. */
  runs: number;
  /**
   * (a) bare `deno run hello.ts`, (h) `airlock run --help`, (c) `airlock
   * run hello.ts`.
   */
  results: { a: Summary; h: Summary; c: Summary };
  /** median(c) / median(a) and whether it is within {@linkcode TARGET_CLI_RATIO}. */
  ratio: { ca: number; limit: number; pass: boolean };
}

/**
 * Times a bare `deno run hello.ts` against `airlock run hello.ts`,
 * interleaved.
 *
 * @param runs Counted runs per series.
 * @returns The figures.
 */
export async function cliBenchmark(runs: number): Promise<CliReport> {
  const machine = await machineInfo();
  const dir = await Deno.makeTempDir({ prefix: "airlock-bench-" });
  try {
    const file = `${dir}/hello.ts`;
    await Deno.writeTextFile(file, HELLO);
    const results = await measure(runs, {
      a: bareRun(file),
      h: cliHelp(),
      c: cliRun(file),
    });
    const ca = round2(results.c.medianMs / results.a.medianMs);
    return {
      machine,
      runs,
      results,
      ratio: { ca, limit: TARGET_CLI_RATIO, pass: ca <= TARGET_CLI_RATIO },
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * The CLI figure as text.
 *
 * @param r The figures.
 * @returns Printable lines.
 */
export function formatCliReport(r: CliReport): string {
  const m = r.machine;
  const row = (name: string, s: Summary) =>
    `${name.padEnd(32)}${fix(s.medianMs).padStart(10)}${
      fix(s.p90Ms).padStart(10)
    }${fix(s.p95Ms).padStart(10)}`;
  const { a, h, c } = r.results;
  return [
    "airlock CLI startup",
    `cpu     ${m.cpu} (${m.cores} cores), load ${m.load}`,
    `runs    ${r.runs} per series, interleaved (+${WARMUP_RUNS} warm-up rounds)`,
    "",
    `${"hello.ts".padEnd(32)}${"median ms".padStart(10)}${
      "p90 ms".padStart(10)
    }${"p95 ms".padStart(10)}`,
    row("(a) bare deno run hello.ts", a),
    row("(h) airlock run --help", h),
    row("(c) airlock run hello.ts", c),
    "",
    `ratio c/a   ${fix(r.ratio.ca, 2)}  target <= ${r.ratio.limit}: ${
      r.ratio.pass ? "PASS" : "MISS"
    }`,
    `where it goes (medians): loading the CLI and harness modules h-a ${
      fix(h.medianMs - a.medianMs)
    } ms, the run itself (sandbox, program, close) c-h ${
      fix(c.medianMs - h.medianMs)
    } ms`,
  ].join("\n");
}

// ---------------------------------------------------------- throughput

/** Runs per second of `sandboxes`, each doing its share of `runs`. */
async function runsPerSecond(
  sandboxes: Sandbox[],
  runs: number,
): Promise<number> {
  const shares = sandboxes.map((_, i) =>
    Math.floor(runs / sandboxes.length) + (i < runs % sandboxes.length ? 1 : 0)
  );
  const start = performance.now();
  await Promise.all(sandboxes.map(async (sandbox, i) => {
    const once = sandboxRun(sandbox);
    for (let k = 0; k < shares[i]!; k++) await once();
  }));
  return runs / ((performance.now() - start) / 1000);
}

/** Sequential and 2-way parallel throughput over `runs` runs. */
async function measureThroughput(runs: number): Promise<Throughput> {
  await using one = await Sandbox.create();
  await using two = await Sandbox.create();
  return {
    sequential: round2(await runsPerSecond([one], runs)),
    parallel2: round2(await runsPerSecond([one, two], runs)),
  };
}

// ------------------------------------------------------------- memory

interface ProcInfo {
  ppid: number;
  comm: string;
  cmdline: string;
}

/** Every process: ppid, name and command line (NUL-separated args joined). */
function listProcesses(): Map<number, ProcInfo> {
  const procs = new Map<number, ProcInfo>();
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
      const close = stat.lastIndexOf(")");
      const ppid = Number(stat.slice(close + 2).split(" ")[1]);
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`)
        .replaceAll("\0", " ");
      procs.set(pid, { ppid, comm, cmdline });
    } catch {
      // exited while we looked
    }
  }
  return procs;
}

/** Pids whose command line contains `needle`, plus all their descendants. */
function treeOf(procs: Map<number, ProcInfo>, needle: string): Set<number> {
  const tree = new Set<number>();
  for (const [pid, p] of procs) if (p.cmdline.includes(needle)) tree.add(pid);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, p] of procs) {
      if (!tree.has(pid) && tree.has(p.ppid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  return tree;
}

/** VmHWM of `pid` in KiB, or 0 once it is gone. */
function vmHwmKb(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Highest VmHWM (KiB) seen per pid, with each pid's name. */
type HwmSeen = Map<number, { comm: string; kb: number }>;

function sampleTree(seen: HwmSeen, needle: string): void {
  const procs = listProcesses();
  for (const pid of treeOf(procs, needle)) {
    const kb = vmHwmKb(pid);
    const prev = seen.get(pid);
    const comm = procs.get(pid)!.comm;
    if (!prev || kb > prev.kb) seen.set(pid, { comm, kb });
  }
}

const toMb = (kb: number) => round2(kb / 1024);

/**
 * Peak RSS of one sandbox while it runs a program that sleeps ~300 ms: the
 * processes whose command line names the workspace's `box/` (bwrap, whose
 * bind mounts come from there) and their descendants (the sandboxed Deno).
 * The workspace watchdog names only the workspace root; it is reported apart.
 */
async function measureRss(): Promise<RssReport> {
  await using sandbox = await Sandbox.create({ policy: { scratch: true } });
  const root = sandbox.scratchPath!.replace(/\/box\/scratch$/, "");
  const tree: HwmSeen = new Map();
  const all: HwmSeen = new Map();
  let done = false;
  const running = sandbox.run({ code: SLEEPER }).finally(() => done = true);
  while (!done) {
    sampleTree(tree, `${root}/box/`);
    sampleTree(all, root);
    await new Promise((r) => setTimeout(r, 10));
  }
  const result = await running;
  expectHello(result.success, result.stdout, result.stderr);
  const processes = [...tree].map(([pid, { comm, kb }]) => ({
    pid,
    comm,
    hwmMb: toMb(kb),
  }));
  const watchdogKb = [...all].filter(([pid]) => !tree.has(pid))
    .reduce((sum, [, p]) => sum + p.kb, 0);
  return {
    peakMb: round2(processes.reduce((sum, p) => sum + p.hwmMb, 0)),
    processes,
    watchdogMb: toMb(watchdogKb),
  };
}

// ------------------------------------------------------------- machine

async function bwrapVersion(): Promise<string> {
  try {
    const out = await new Deno.Command("bwrap", { args: ["--version"] })
      .output();
    return decoder.decode(out.stdout).trim() || "unknown";
  } catch {
    return "not found";
  }
}

/**
 * Describes this machine.
 *
 * @returns CPU model, cores, kernel, Deno and bubblewrap versions, load.
 */
export async function machineInfo(): Promise<MachineInfo> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  return {
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    cores: navigator.hardwareConcurrency,
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    bwrap: await bwrapVersion(),
    load: await Deno.readTextFile("/proc/loadavg")
      .then((l) => l.split(" ").slice(0, 3).join(" "), () => "unknown"),
  };
}

// ------------------------------------------------------------- report

/**
 * Runs the whole benchmark.
 *
 * @param runs Counted runs per series (and for each throughput figure).
 * @returns The figures.
 */
export async function benchmark(runs: number): Promise<Report> {
  const machine = await machineInfo();
  const dir = await Deno.makeTempDir({ prefix: "airlock-bench-" });
  try {
    const file = `${dir}/hello.ts`;
    await Deno.writeTextFile(file, HELLO);
    let results: Report["results"];
    {
      await using sandbox = await Sandbox.create();
      await using cold = await Sandbox.create({ warm: false });
      results = await measure(runs, {
        a: bareRun(file),
        b: sandboxRun(sandbox),
        bc: sandboxRun(cold),
        b2: oneShotRun,
        c: cliRun(file),
      });
    }
    const { a, b, bc, b2, c } = results;
    const throughput = await measureThroughput(runs);
    const rss = await measureRss();
    const ratios = {
      ba: round2(b.medianMs / a.medianMs),
      bca: round2(bc.medianMs / a.medianMs),
      b2a: round2(b2.medianMs / a.medianMs),
      ca: round2(c.medianMs / a.medianMs),
    };
    return {
      machine,
      runs,
      warmup: WARMUP_RUNS,
      results,
      ratios,
      target: { limit: TARGET_RATIO, pass: ratios.ba <= TARGET_RATIO },
      throughput,
      rss,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const fix = (n: number, digits = 1) => n.toFixed(digits);

/**
 * The report as a plain-text table.
 *
 * @param r The figures.
 * @returns Printable lines.
 */
export function formatReport(r: Report): string {
  const m = r.machine;
  const rows: [string, Summary][] = [
    ["(a)  bare deno run (floor)", r.results.a],
    ["(b)  sandbox.run, one Sandbox", r.results.b],
    ["(bc) same, warm: false", r.results.bc],
    ["(b2) run(), one-shot", r.results.b2],
    ["(c)  airlock run (CLI)", r.results.c],
  ];
  const half = Math.ceil(r.runs / 2);
  return [
    "airlock startup benchmark",
    `cpu     ${m.cpu} (${m.cores} cores)`,
    `kernel  ${m.kernel}`,
    `deno    ${m.deno}`,
    `bwrap   ${m.bwrap}`,
    `load    ${m.load} (load average at start)`,
    `runs    ${r.runs} per series, interleaved (+${r.warmup} warm-up rounds, not counted), ${SETTLE_MS} ms idle after each`,
    "",
    `${"hello world".padEnd(32)}${"median ms".padStart(10)}${
      "p95 ms".padStart(10)
    }`,
    ...rows.map(([name, s]) =>
      `${name.padEnd(32)}${fix(s.medianMs).padStart(10)}${
        fix(s.p95Ms).padStart(10)
      }`
    ),
    "",
    `ratio b/a   ${fix(r.ratios.ba, 2)}`,
    `ratio bc/a  ${fix(r.ratios.bca, 2)}`,
    `ratio b2/a  ${fix(r.ratios.b2a, 2)}`,
    `ratio c/a   ${fix(r.ratios.ca, 2)} (CLI target <= ${TARGET_CLI_RATIO}: ${
      r.ratios.ca <= TARGET_CLI_RATIO ? "PASS" : "MISS"
    })`,
    `target b/a <= ${r.target.limit}: ${r.target.pass ? "PASS" : "MISS"}`,
    "",
    `throughput, sequential (1 sandbox, ${r.runs} runs)   ${
      fix(r.throughput.sequential)
    } runs/s`,
    `throughput, parallel (2 sandboxes, ${half}+${r.runs - half} runs)  ${
      fix(r.throughput.parallel2)
    } runs/s`,
    "",
    `peak RSS per sandbox  ${fix(r.rss.peakMb)} MB (sum of VmHWM: ${
      r.rss.processes.map((p) => `${p.comm} ${fix(p.hwmMb)}`).join(", ")
    })`,
    `workspace watchdog    ${fix(r.rss.watchdogMb)} MB (host sh, not counted)`,
  ].join("\n");
}

const USAGE = "Usage: deno task bench:start [--runs N] [--json] [--cli]";

function parseCli(
  argv: string[],
): { runs: number; json: boolean; cli: boolean } {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      runs: { type: "string", default: "30" },
      json: { type: "boolean", default: false },
      cli: { type: "boolean", default: false },
    },
  });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 2) {
    throw new Error(`--runs must be an integer >= 2, got '${values.runs}'`);
  }
  return { runs, json: values.json, cli: values.cli };
}

if (import.meta.main) {
  let cli;
  try {
    cli = parseCli(Deno.args);
  } catch (error) {
    console.error(`bench:start: ${(error as Error).message}\n${USAGE}`);
    Deno.exit(2);
  }
  const { runs, json } = cli;
  try {
    if (cli.cli) {
      const report = await cliBenchmark(runs);
      console.log(
        json ? JSON.stringify(report, null, 2) : formatCliReport(report),
      );
    } else {
      const report = await benchmark(runs);
      console.log(
        json ? JSON.stringify(report, null, 2) : formatReport(report),
      );
    }
  } finally {
    await stopBundler();
  }
}
