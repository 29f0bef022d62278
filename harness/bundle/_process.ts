/**
 * The harness's side of the sandboxed bundler: starts `_worker.ts`
 * in a helper sandbox (see `_sandbox.ts`), once per package cache,
 * and keeps it for every later bundle (a start costs ~0.2 s; a bundle over
 * the pipe a millisecond or two). Requests are multiplexed by id; the
 * worker's questions (program files on disk, packages) are answered by the
 * caller's {@linkcode BundleHost}.
 *
 * The worker reads hostile input, so what it sends back is checked like any
 * other program-controlled data: lines are bounded, fields are type-checked,
 * questions for a bundle that did not ask for that kind of answer are
 * refused, and a worker that dies fails only the bundles in flight (the next
 * one starts a new worker).
 *
 * @module
 */

import { createRequire } from "node:module";
import type { Mount } from "../../runtime/bwrap_args.ts";
import { discoverHostTools } from "../../runtime/host_tools.ts";
import {
  HELPER_DENO,
  helperCommand,
  helperIdentity,
  type HelperSandbox,
} from "./_sandbox.ts";
import type { SandboxIdentity } from "../../runtime/host_identity.ts";
import {
  readableByAnyone,
  readableCopy,
} from "../../runtime/_readable_copy.ts";

/** Where the package cache is mounted inside the bundler's sandbox. */
export const BUNDLER_NPM_ROOT = "/npm";

/** A problem as esbuild or the plugin reported it. */
export interface WorkerProblem {
  message: string;
  file?: string;
  line?: number;
  column?: number;
}

/** An import the bundler refused. */
export interface WorkerRefusal {
  specifier: string;
  importer: string;
  reason: string;
}

/** What a bundle came to. */
export type WorkerResult =
  | { ok: true; code: string; packages: boolean }
  | { ok: false; problems: WorkerProblem[]; refusals: WorkerRefusal[] };

/** A package import refused by policy (as opposed to an install failure). */
export class PackageRefusal extends Error {
  /** @param message What was refused and why. */
  constructor(message: string) {
    super(message);
    this.name = "PackageRefusal";
  }
}

/** Answers the worker's questions for one bundle. */
export interface BundleHost {
  /** Program files on the harness's disk (contained), or null (sent along). */
  files: {
    has(path: string): Promise<boolean>;
    read(path: string): Promise<string | undefined>;
  } | null;
  /**
   * Installs (or finds) an allowed package; returns its install directory
   * relative to the cache. Throws {@linkcode PackageRefusal} for policy.
   */
  package:
    | ((name: string, range: string | null) => Promise<string>)
    | null;
}

/** Longest line accepted from the worker (a bundle's output is one line). */
const MAX_LINE = 256 * 1024 * 1024;
const NAME = /^(?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/;
const WORKER_DIR = "/opt/airlock";

interface Pending {
  resolve(result: WorkerResult): void;
  reject(error: Error): void;
  host: BundleHost | null;
}

const processes = new Map<string, BundlerProcess>();

/**
 * The bundler process for a package cache (or for no cache), started on
 * first use and kept.
 *
 * @param cacheDir The npm cache directory (must exist), or null.
 * @returns The shared process handle.
 *
 * @example Usage
 * ```ts ignore
 * const result = await bundlerFor(null).transform("let x: number = 1", "main.ts");
 * ```
 */
export function bundlerFor(cacheDir: string | null): BundlerProcess {
  const key = cacheDir ?? "";
  let process = processes.get(key);
  if (!process) {
    process = new BundlerProcess(cacheDir);
    processes.set(key, process);
  }
  return process;
}

/**
 * A bundler process that is up, if any (for work that needs no package
 * cache: any of them will do).
 *
 * @returns The process, or null.
 *
 * @example Usage
 * ```ts ignore
 * console.log(runningBundler()?.running ?? false);
 * ```
 */
export function runningBundler(): BundlerProcess | null {
  for (const process of processes.values()) {
    if (process.running) return process;
  }
  return null;
}

/**
 * Stops every bundler process (the next bundle starts new ones).
 *
 * @example Usage
 * ```ts ignore
 * await stopBundlerProcesses();
 * ```
 */
export async function stopBundlerProcesses(): Promise<void> {
  const all = [...processes.values()];
  processes.clear();
  await Promise.all(all.map((p) => p.stop()));
}

/** One sandboxed bundler. */
export class BundlerProcess {
  #cacheDir: string | null;
  #child: Deno.ChildProcess | null = null;
  #writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  #starting: Promise<void> | null = null;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #stderrTail = "";
  #exited: Promise<void> = Promise.resolve();
  /** Whether the harness killed the current worker (its output is moot). */
  #killed = false;

  /** @param cacheDir The package cache to mount, or null. */
  constructor(cacheDir: string | null) {
    this.#cacheDir = cacheDir;
  }

  /** Whether the worker is up (a request would not wait for its start). */
  get running(): boolean {
    return this.#child !== null && this.#starting === null;
  }

  /** Host pid of the worker's bwrap, when running (tests look inside). */
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  /** Starts the worker now (it otherwise starts with the first bundle). */
  start(): Promise<void> {
    if (this.#child) return Promise.resolve();
    this.#starting ??= this.#start().finally(() => (this.#starting = null));
    return this.#starting;
  }

  /**
   * Compiles one module with nothing to resolve.
   *
   * @param code TypeScript or JavaScript.
   * @param sourcefile Its name in the source map.
   */
  transform(code: string, sourcefile: string): Promise<WorkerResult> {
    return this.#request({ t: "transform", code, sourcefile }, null);
  }

  /**
   * Bundles a program.
   *
   * @param entry The entry's normalised path (`/main.ts`).
   * @param files The program's files by normalised path, or null when
   *   `host.files` serves them.
   * @param host Answers for files on disk and packages.
   */
  bundle(
    entry: string,
    files: Record<string, string> | null,
    host: BundleHost,
  ): Promise<WorkerResult> {
    return this.#request(
      { t: "bundle", entry, files, npm: host.package !== null },
      host,
    );
  }

  /** Stops the worker; bundles in flight fail. */
  async stop(): Promise<void> {
    await this.#starting?.catch(() => {});
    const child = this.#child;
    if (!child) return;
    // Nothing to save: killing bwrap's monitor ends the whole sandbox
    // (--die-with-parent), at once, even mid-start (closing stdin would wait
    // for Deno to load first).
    this.#killed = true;
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    child.ref(); // an unref'd child's exit would not keep this await alive
    await this.#exited;
  }

  async #request(
    message: Record<string, unknown>,
    host: BundleHost | null,
  ): Promise<WorkerResult> {
    await this.start();
    const id = this.#nextId++;
    const result = new Promise<WorkerResult>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, host });
    });
    // Keep the harness alive while a bundle is in flight, not while idle.
    if (this.#pending.size === 1) this.#child?.ref();
    this.#send({ ...message, id });
    try {
      return await result;
    } finally {
      this.#pending.delete(id);
      if (this.#pending.size === 0) this.#child?.unref();
    }
  }

  #send(message: unknown): void {
    const writer = this.#writer;
    if (!writer) return;
    writer.write(new TextEncoder().encode(JSON.stringify(message) + "\n"))
      .catch(() => {/* the exit handler fails the pending bundles */});
  }

  async #start(): Promise<void> {
    const identity = helperIdentity();
    let child: Deno.ChildProcess;
    try {
      const { command, args, ...ids } = await helperCommand(
        await bundlerSandbox(this.#cacheDir, identity),
      );
      child = new Deno.Command(command, {
        args,
        ...ids,
        clearEnv: true,
        cwd: "/", // nothing of the harness's working directory follows
        env: {},
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      identity.release();
      throw error;
    }
    child.unref();
    this.#child = child;
    this.#killed = false;
    this.#writer = child.stdin.getWriter();
    this.#stderrTail = "";
    const stdout = child.stdout.getReader();
    const stderr = child.stderr.getReader();
    const reading = Promise.all([
      this.#readStdout(child, stdout),
      this.#readStderr(stderr),
    ]);
    this.#exited = (async () => {
      const status = await child.status;
      // bwrap's monitor has exited. Killed before its child had set up
      // (--die-with-parent is armed late), that child waits forever,
      // holding our pipes: release() kills whatever still runs as the
      // helper's uid, and a helper we killed is not read to its end (with
      // the harness's own uid there is nothing to sweep).
      identity.release();
      if (this.#killed) {
        await Promise.allSettled([stdout.cancel(), stderr.cancel()]);
      }
      await reading.catch(() => {});
      if (this.#child === child) {
        this.#child = null;
        this.#writer = null;
      }
      const tail = this.#stderrTail.trim().split("\n").slice(-3).join(" ");
      const why = `the bundler process exited (code ${status.code}${
        tail ? `: ${tail}` : ""
      })`;
      for (const pending of this.#pending.values()) {
        pending.resolve({
          ok: false,
          problems: [{ message: why }],
          refusals: [],
        });
      }
      this.#pending.clear();
    })();
  }

  async #readStdout(
    child: Deno.ChildProcess,
    reader: ReadableStreamDefaultReader<Uint8Array>,
  ): Promise<void> {
    let buffer = "";
    const decoder = new TextDecoder();
    for await (const chunk of chunks(reader)) {
      buffer += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf("\n")) !== -1) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        this.#onLine(line);
      }
      // A worker that writes without end must not fill the harness's RAM.
      if (buffer.length > MAX_LINE) {
        this.#stderrTail += "\nline from the bundler too long";
        this.#killed = true;
        child.kill("SIGKILL");
        return;
      }
    }
  }

  async #readStderr(
    reader: ReadableStreamDefaultReader<Uint8Array>,
  ): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of chunks(reader)) {
      this.#stderrTail = (this.#stderrTail + decoder.decode(chunk)).slice(
        -2048,
      );
    }
  }

  #onLine(line: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line);
    } catch {
      return; // not ours (a stray write); the bundle it belongs to times out
    }
    if (typeof message !== "object" || message === null) return;
    const id = message.id;
    const pending = typeof id === "number" ? this.#pending.get(id) : undefined;
    if (!pending) return;
    switch (message.t) {
      case "done":
        if (typeof message.code === "string") {
          pending.resolve({
            ok: true,
            code: message.code,
            packages: message.packages === true,
          });
        }
        return;
      case "failed":
        pending.resolve({
          ok: false,
          problems: problemsOf(message.problems),
          refusals: refusalsOf(message.refusals),
        });
        return;
      case "ask":
        this.#answer(pending.host, message);
        return;
    }
  }

  #answer(host: BundleHost | null, message: Record<string, unknown>): void {
    const rid = message.rid;
    if (typeof rid !== "number") return;
    const reply = (answer: Promise<unknown>) =>
      answer.then(
        (value) => this.#send({ t: "reply", rid, ok: true, value }),
        (error) =>
          this.#send({
            t: "reply",
            rid,
            ok: false,
            error: (error as Error).message,
            refused: error instanceof PackageRefusal,
          }),
      );
    const path = message.path;
    switch (message.op) {
      case "has":
      case "read": {
        // Only a program on disk is read by the harness, and only by a
        // normalised path below its own directory (the reader checks again).
        if (
          !host?.files || typeof path !== "string" || !path.startsWith("/") ||
          path.includes("\0") || path.split("/").includes("..")
        ) {
          reply(Promise.reject(new Error("Cannot read that program file")));
          return;
        }
        reply(
          message.op === "has" ? host.files.has(path) : host.files.read(path),
        );
        return;
      }
      case "package": {
        const { name, range } = message;
        if (
          !host?.package || typeof name !== "string" || !NAME.test(name) ||
          !(range === null || (typeof range === "string" &&
            range.length <= 256))
        ) {
          reply(Promise.reject(new PackageRefusal("Cannot use that package")));
          return;
        }
        reply(
          host.package(name, range).then((dir) => ({
            root: `${BUNDLER_NPM_ROOT}/${dir}`,
            name,
          })),
        );
        return;
      }
    }
  }
}

/**
 * The bundler's sandbox: what the worker sees and may do (tests start probes
 * in it with another `command`).
 *
 * @param cacheDir The package cache to mount read-only at `/npm`, or null.
 * @param identity The host uid the worker runs as (every mount source is
 *   made readable by it); default the harness's.
 * @returns The sandbox description for `helperCommand`.
 * @throws {Error} If the cache directory's parents are closed to other
 *   uids (the worker, under a uid of its own, could not mount it).
 *
 * @example Usage
 * ```ts ignore
 * const sandbox = await bundlerSandbox(null);
 * console.log(sandbox.network); // "none"
 * ```
 */
export async function bundlerSandbox(
  cacheDir: string | null,
  identity?: SandboxIdentity,
): Promise<HelperSandbox> {
  const [tools, esbuild, worker] = await Promise.all([
    discoverHostTools(),
    locateEsbuild(),
    workerSource(),
  ]);
  // Copies readable by any uid where the originals are not (a Deno cache
  // under /root): the worker runs as a uid of its own.
  const [workerFile, apiFile, binary] = await Promise.all([
    readableCopy(worker, "/var/tmp"),
    readableCopy(esbuild.api, "/var/tmp"),
    readableCopy(esbuild.binary, "/var/tmp"),
  ]);
  const mounts: Mount[] = [
    { kind: "ro-bind", source: workerFile, dest: `${WORKER_DIR}/worker.ts` },
    // esbuild's JavaScript API is this one file (node built-ins aside).
    {
      kind: "ro-bind",
      source: apiFile,
      dest: `${WORKER_DIR}/esbuild/lib/main.js`,
    },
    { kind: "ro-bind", source: binary, dest: `${WORKER_DIR}/esbuild-bin` },
  ];
  if (cacheDir !== null) {
    if (identity?.hostUid != null) await openToHelpers(cacheDir);
    // The cache, read-only: the only package files the bundler can see.
    mounts.push({
      kind: "ro-bind",
      source: cacheDir,
      dest: BUNDLER_NPM_ROOT,
    });
  }
  return {
    tools,
    mounts,
    ...(identity ? { identity } : {}),
    // Nothing of the harness's environment: no secret, no proxy, no home.
    env: {
      DENO_DIR: "/tmp/deno",
      DENO_NO_UPDATE_CHECK: "1",
      NO_COLOR: "1",
      HOME: "/tmp",
      ESBUILD_BINARY_PATH: `${WORKER_DIR}/esbuild-bin`,
    },
    cwd: "/",
    network: "none",
    command: [
      HELPER_DENO,
      "run",
      "--no-config",
      "--no-lock",
      "--no-remote",
      "--no-npm",
      "--no-prompt",
      "--deny-net",
      `--allow-read=${WORKER_DIR},${BUNDLER_NPM_ROOT}`,
      `--allow-run=${WORKER_DIR}/esbuild-bin`,
      "--allow-env",
      "--v8-flags=--max-old-space-size=1024",
      `${WORKER_DIR}/worker.ts`,
      `${WORKER_DIR}/esbuild/lib/main.js`,
    ],
  };
}

/** The one-shot transform's esbuild flags (the worker's `COMMON`). */
const TRANSFORM_FLAGS = [
  "--loader=ts",
  "--format=esm",
  "--target=esnext",
  "--charset=utf8",
  "--sourcemap=inline",
  "--legal-comments=none",
  '--define:process.env.NODE_ENV="production"',
  "--color=false",
  "--log-level=error",
  "--log-limit=0",
] as const;

let fingerprint: { signature: string; value: Promise<string> } | null = null;

/**
 * What the bundler's output depends on besides its input: the worker's
 * source (its esbuild options, its plugin), esbuild's JavaScript API and
 * binary (by real path, which names the version, and by size and mtime),
 * and the one-shot transform's flags. Part of every bundle cache key, so a
 * bundle made by another esbuild or another plugin is never served. The
 * files are looked at on each call (a few stats) and hashed again when one
 * changed: a bundler started after the change uses the new ones.
 *
 * @returns A hex SHA-256.
 *
 * @example Usage
 * ```ts ignore
 * import { bundlerFingerprint } from "./_process.ts";
 * console.log(await bundlerFingerprint());
 * ```
 */
export async function bundlerFingerprint(): Promise<string> {
  const [esbuild, worker] = await Promise.all([
    locateEsbuild(),
    workerSource(),
  ]);
  const stats = await Promise.all(
    [esbuild.api, esbuild.binary, worker].map(async (path) => {
      const info = await Deno.stat(path);
      return [path, info.size, info.mtime?.getTime() ?? null];
    }),
  );
  const signature = JSON.stringify([stats, TRANSFORM_FLAGS]);
  if (fingerprint?.signature !== signature) {
    const value = (async () => {
      const text = await Deno.readTextFile(worker);
      const digest = await crypto.subtle.digest(
        "SHA-256",
        new TextEncoder().encode(JSON.stringify([signature, text])),
      );
      return Array.from(
        new Uint8Array(digest),
        (b) => b.toString(16).padStart(2, "0"),
      ).join("");
    })();
    fingerprint = { signature, value };
    value.catch(() => (fingerprint = null));
  }
  return await fingerprint.value;
}

/** Longest output accepted from a one-shot transform. */
const MAX_TRANSFORM_OUTPUT = 64 * 1024 * 1024;

/**
 * Compiles one module with nothing to resolve in a one-shot sandbox that
 * holds nothing but esbuild's static binary: no Deno, no /proc, no file of
 * the host, no network, no environment. It costs a bwrap and an esbuild
 * start (~30 ms), where the long-lived worker costs ~0.2 s to start: the
 * first programs of a harness (and a one-run CLI) use this.
 *
 * @param code TypeScript or JavaScript.
 * @param sourcefile Its name in the source map (`airlock:/main.ts`).
 * @returns The compiled code, or esbuild's problems.
 *
 * @example Usage
 * ```ts ignore
 * const result = await transformOnce("let n: number = 1;", "airlock:/main.ts");
 * ```
 */
export async function transformOnce(
  code: string,
  sourcefile: string,
): Promise<WorkerResult> {
  const [tools, esbuild] = await Promise.all([
    discoverHostTools(),
    locateEsbuild(),
  ]);
  const binary = await readableCopy(esbuild.binary, "/var/tmp");
  const identity = helperIdentity();
  try {
    return await runOnce(code, {
      tools,
      identity,
      withDeno: false,
      mounts: [{ kind: "ro-bind", source: binary, dest: "/esbuild" }],
      env: {},
      cwd: "/",
      network: "none",
      command: ["/esbuild", ...TRANSFORM_FLAGS, `--sourcefile=${sourcefile}`],
    });
  } finally {
    // runOnce returned after the process exited: its uid is free again.
    identity.release();
  }
}

async function runOnce(
  code: string,
  sandbox: HelperSandbox,
): Promise<WorkerResult> {
  const { command, args, ...ids } = await helperCommand(sandbox);
  const child = new Deno.Command(command, {
    args,
    ...ids,
    clearEnv: true,
    cwd: "/", // nothing of the harness's working directory follows
    env: {},
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writing = (async () => {
    const writer = child.stdin.getWriter();
    try {
      await writer.write(new TextEncoder().encode(code));
      await writer.close();
    } catch { /* esbuild exited early: its status says why */ }
  })();
  const [stdout, stderr] = await Promise.all([
    readBounded(child.stdout, MAX_TRANSFORM_OUTPUT),
    readBounded(child.stderr, 1024 * 1024),
  ]);
  await writing;
  const status = await child.status;
  if (status.success && stdout !== null) {
    return { ok: true, code: stdout, packages: false };
  }
  return {
    ok: false,
    problems: cliProblems(stderr ?? "") ?? [{
      message: `esbuild failed (exit code ${status.code})`,
    }],
    refusals: [],
  };
}

async function readBounded(
  stream: ReadableStream<Uint8Array>,
  max: number,
): Promise<string | null> {
  const decoder = new TextDecoder();
  let text = "";
  let over = false;
  for await (const chunk of stream) {
    if (over) continue; // drain, so the process can end
    text += decoder.decode(chunk, { stream: true });
    if (text.length > max) over = true;
  }
  return over ? null : text + decoder.decode();
}

/**
 * esbuild's command-line errors as problems:
 * `✘ [ERROR] <message>`, a blank line, then `    <file>:<line>:<column>:`
 * (column 0-based, like the JavaScript API's).
 */
function cliProblems(stderr: string): WorkerProblem[] | null {
  const problems: WorkerProblem[] = [];
  const lines = stderr.split("\n");
  for (let i = 0; i < lines.length && problems.length < 100; i++) {
    const head = lines[i]!.match(/^✘ \[ERROR\] (.*)$/);
    if (!head) continue;
    const problem: WorkerProblem = { message: head[1]! };
    for (let j = i + 1; j < Math.min(lines.length, i + 4); j++) {
      const at = lines[j]!.match(/^ {4}airlock:\/(.+):(\d+):(\d+):$/);
      if (at) {
        problem.file = at[1]!;
        problem.line = Number(at[2]);
        problem.column = Number(at[3]) + 1;
        break;
      }
    }
    problems.push(problem);
  }
  return problems.length > 0 ? problems : null;
}

/**
 * Makes the package cache readable by helper uids: the directory itself is
 * opened to others (its contents are public npm code, written readable);
 * its parents must already be traversable.
 */
async function openToHelpers(cacheDir: string): Promise<void> {
  const info = await Deno.stat(cacheDir);
  if (((info.mode ?? 0) & 0o005) !== 0o005) await Deno.chmod(cacheDir, 0o755);
  if (!readableByAnyone(cacheDir)) {
    throw new Error(
      `Cannot let the bundler read the npm cache '${cacheDir}': a directory above it is closed to other users, and the bundler runs as a uid of its own; choose a cache under /var/tmp (npmCacheDir)`,
    );
  }
}

function problemsOf(value: unknown): WorkerProblem[] {
  const list = Array.isArray(value) ? value.slice(0, 100) : [];
  const problems: WorkerProblem[] = [];
  for (const item of list) {
    if (typeof item?.message !== "string") continue;
    const problem: WorkerProblem = { message: item.message.slice(0, 4096) };
    if (typeof item.file === "string") problem.file = item.file.slice(0, 1024);
    if (Number.isInteger(item.line)) problem.line = item.line;
    if (Number.isInteger(item.column)) problem.column = item.column;
    problems.push(problem);
  }
  return problems.length > 0
    ? problems
    : [{ message: "the bundler failed without saying why" }];
}

function refusalsOf(value: unknown): WorkerRefusal[] {
  const list = Array.isArray(value) ? value.slice(0, 100) : [];
  return list.filter((r) =>
    typeof r?.specifier === "string" && typeof r.importer === "string" &&
    typeof r.reason === "string"
  ).map((r) => ({
    specifier: r.specifier.slice(0, 1024),
    importer: r.importer.slice(0, 1024),
    reason: r.reason.slice(0, 4096),
  }));
}

let esbuildLocation: Promise<{ api: string; binary: string }> | null = null;

/**
 * Host paths of esbuild's JavaScript API package and of its native binary
 * (the ones the harness's import map names); loading the API does not
 * start esbuild.
 */
function locateEsbuild(): Promise<{ api: string; binary: string }> {
  esbuildLocation ??= (async () => {
    const require = createRequire(import.meta.url);
    let main: string;
    try {
      // Resolving costs ~5 ms; loading the package (below) ~0.1-0.4 s.
      main = require.resolve("esbuild");
    } catch {
      await import("esbuild"); // not in this process's npm graph yet
      main = require.resolve("esbuild");
    }
    const arch = { x86_64: "x64", aarch64: "arm64" }[Deno.build.arch];
    const binary = createRequire(main).resolve(
      `@esbuild/${Deno.build.os}-${arch}/bin/esbuild`,
    );
    return {
      api: await Deno.realPath(main),
      binary: await Deno.realPath(binary),
    };
  })();
  esbuildLocation.catch(() => (esbuildLocation = null));
  return esbuildLocation;
}

/** The worker's source as a host file (copied out when not a local file). */
async function workerSource(): Promise<string> {
  const url = new URL("./_worker.ts", import.meta.url);
  if (url.protocol === "file:") return decodeURIComponent(url.pathname);
  // Fetched once per process (the fingerprint asks for it on every bundle).
  remoteWorker ??= (async () => {
    const text = await (await fetch(url)).text();
    const dir = await Deno.makeTempDir({ prefix: "airlock-bundler-" });
    await Deno.writeTextFile(`${dir}/worker.ts`, text);
    return `${dir}/worker.ts`;
  })();
  remoteWorker.catch(() => (remoteWorker = null));
  return await remoteWorker;
}

let remoteWorker: Promise<string> | null = null;

/** The chunks a reader yields until its stream ends or is cancelled. */
async function* chunks(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  while (true) {
    const { done, value } = await reader.read();
    if (done) return;
    yield value;
  }
}
