/**
 * A sandbox session: a policy, a private workspace (and scratch directory if
 * granted), an egress binding when the policy allows any network, and any
 * number of runs, each a fresh Deno process inside fresh bubblewrap
 * namespaces. Sandboxes share nothing with each other: many can run at once
 * from one harness.
 *
 * This file holds the session's lifecycle (create, spawn, close); the option
 * types and their docs are in `options.ts`, the errors in `errors.ts`. What
 * a sandbox is made of before its first run is made by `_run/setup.ts`;
 * what one run is made of lives in `_run/prepare.ts` (files, channels,
 * launch), `_run/supervise.ts` (limits, kill) and `_run/channels.ts`
 * (sockets); the waiting process of warm start in `_run/warm_pool.ts`.
 * What is left (~700 lines, past the ~400 most modules keep to) is one
 * class whose private state (live runs, pending launches, cleanup close()
 * waits for) every method shares: split further, it would be passed around.
 *
 * @module
 */

import type { Mount } from "../runtime/bwrap_args.ts";
import { classifyExit, type ExitFacts } from "../runtime/exit_reason.ts";
import type { HostTools } from "../runtime/host_tools.ts";
import type { SandboxIdentity } from "../runtime/host_identity.ts";
import { SANDBOX_PATHS } from "../runtime/launcher.ts";
import { learnCommandNames } from "../runtime/command_path.ts";
import { assertValidLimits, type ResourceLimits } from "../runtime/limits.ts";
import { Workspace } from "../runtime/workspace.ts";
import {
  type NetworkPolicy,
  type NetworkPolicyInput,
  NetworkPolicySchema,
} from "../injector/network_policy.ts";
import {
  bundleProgram,
  prepareBundler,
  type ProgramSource,
} from "./bundle/bundle.ts";
import {
  closeEgress,
  type SandboxEgress,
  setupEgress,
  updateEgress,
} from "./_run/egress.ts";
import {
  deliverProgram,
  discardPrepared,
  type PreparedRun,
  prepareRun,
} from "./_run/prepare.ts";
import { injectorFor, type SandboxParts, setupSandbox } from "./_run/setup.ts";
import { WarmPool } from "./_run/warm_pool.ts";
import { EnvSchema, type Policy, PolicyError, redactPolicy } from "./policy.ts";
import type { AuditEvent, RunResult, RunStatus } from "./run_result.ts";
import { AuditTrail } from "./_audit_bounds.ts";
import {
  type ScratchQuota,
  type ScratchUsage,
  volumeQuota,
  walkQuota,
} from "./_run/scratch_quota.ts";
import { lockOf } from "./_sandbox_lock.ts";
import type { ScratchQuotaMode } from "../runtime/scratch_volume.ts";
import { superviseRun } from "./_run/supervise.ts";
import { SandboxFsError, ScratchQuotaError } from "./errors.ts";
import { SandboxFs } from "./sandbox_fs.ts";
import type { RunOptions, SandboxOptions, SandboxProcess } from "./options.ts";
import type { NpmPackages } from "./bundle/npm_packages.ts";

// The option types live in options.ts; re-exported for existing imports.
export type { RunOptions, SandboxOptions, SandboxProcess } from "./options.ts";

// Defined with the harness's other errors; re-exported for existing imports.
export { SandboxSetupError, ScratchQuotaError } from "./errors.ts";
export type { ScratchUsage } from "./_run/scratch_quota.ts";
export type {
  ScratchFsRequest,
  ScratchQuotaMode,
} from "../runtime/scratch_volume.ts";

const decoder = new TextDecoder();

interface LiveRun {
  kill(reason: ExitFacts["killedFor"]): void;
  done: Promise<unknown>;
}

/**
 * A sandbox session.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Sandbox } from "./sandbox.ts";
 * await using sandbox = await Sandbox.create({ policy: { scratch: true } });
 * const result = await sandbox.run({
 *   code: "await Deno.writeTextFile('sum.txt', String(1 + 1)); console.log('done')",
 * });
 * assert.equal(result.stdout, "done\n");
 * // The scratch directory outlives the run (until close()).
 * assert.equal(await sandbox.fs.readTextFile("sum.txt"), "2");
 * ```
 */
export class Sandbox implements AsyncDisposable {
  /** Unique id of this sandbox. */
  readonly id: string;
  /** The validated policy (its `network` as at creation; see `networkPolicy`). */
  #policy: Policy;
  #tools: HostTools;
  #identity: SandboxIdentity;
  #workspace: Workspace;
  #filterPath: string;
  #inputMounts: Mount[];
  #scratch: string | null;
  #quota: ScratchQuota | null;
  #egress: SandboxEgress | null;
  #options: SandboxOptions;
  #network: NetworkPolicy;
  /** The latest records, within a count and a byte bound (`_audit_bounds.ts`). */
  #trail = new AuditTrail();
  #fs: SandboxFs | undefined;
  #npm: NpmPackages | null;
  /** Runs whose process is alive. */
  #active = new Set<LiveRun>();
  /** Runs not fully cleaned up yet. */
  #settling = new Set<Promise<unknown>>();
  #runs = 0;
  #closing: Promise<void> | null = null;
  /** The next run's process, started while idle (warm start). */
  #warm: WarmPool<PreparedRun>;
  /** Launched processes not yet given a program (close() kills them). */
  #pending = new Set<PreparedRun>();
  /** Bumped by every network policy update (launches depend on it). */
  #networkGeneration = 0;

  private constructor(
    init: SandboxParts & {
      id: string;
      options: SandboxOptions;
      npm: NpmPackages | null;
    },
  ) {
    this.id = init.id;
    this.#policy = init.policy;
    this.#tools = init.tools;
    this.#identity = init.identity;
    this.#workspace = init.workspace;
    this.#filterPath = init.filterPath;
    this.#inputMounts = init.inputMounts;
    this.#scratch = init.scratch;
    const quotaBytes = init.policy.limits.scratchMb * 1024 * 1024;
    this.#quota = init.workspace.volume
      ? volumeQuota(init.workspace.volume)
      : init.scratch
      ? walkQuota([init.scratch], quotaBytes)
      : null;
    this.#egress = init.egress;
    this.#options = init.options;
    this.#warm = new WarmPool<PreparedRun>({
      enabled: init.options.warm !== false,
      busy: () => this.closed || this.#active.size > 0,
      key: (env) => this.#launchKey(env),
      launch: (env) => this.#prepare(env),
      discard: (prepared) => this.#discard(prepared),
      settle: (work) => this.#settle(work),
    });
    this.#network = init.policy.network;
    this.#npm = init.npm;
  }

  /**
   * Validates the policy and prepares the sandbox's workspace. Nothing runs
   * yet.
   *
   * @param options Policy and environment.
   * @returns The sandbox; `close()` it (or `await using`) when done.
   * @throws {PolicyError} For an invalid policy or an unresolved secret.
   * @throws {MissingHostToolError} When bwrap or another tool is missing.
   * @throws {InputError} When an input is missing or unreadable.
   */
  static async create(options: SandboxOptions = {}): Promise<Sandbox> {
    const id = sandboxId(options.node);
    const parts = await setupSandbox(options);
    try {
      // Loaded only for a policy that names packages: the semver library
      // is the costliest import a sandbox without npm would pay for.
      const npm = parts.policy.npm.allow.length > 0
        ? new (await import("./bundle/npm_packages.ts")).NpmPackages({
          allow: parts.policy.npm.allow,
          ...(options.npmCacheDir ? { cacheDir: options.npmCacheDir } : {}),
        })
        : null;
      const sandbox = new Sandbox({
        id,
        ...parts,
        options,
        npm,
      });
      sandbox.#warm.refill(parts.policy.env);
      // The bundler's sandbox starts while the caller prepares its first run.
      void prepareBundler(sandbox.#npm);
      return sandbox;
    } catch (error) {
      await parts.workspace.close();
      parts.identity.release();
      throw error;
    }
  }

  /**
   * The validated policy as at creation, with every injected header value
   * and placeholder secret value shown as `<redacted>` (the live network
   * policy is `networkPolicy`).
   */
  get policy(): Policy {
    return redactPolicy(this.#policy);
  }

  /** Host path of the scratch directory, or null when not granted. */
  get scratchPath(): string | null {
    return this.#scratch;
  }

  /** Whether a run of this sandbox is live. */
  get running(): boolean {
    return this.#active.size > 0;
  }

  /**
   * File operations on the scratch directory (sandbox paths under
   * `/scratch`). Never follows symlinks; refused while a run is live.
   *
   * @throws {SandboxFsError} When the policy grants no scratch directory.
   */
  get fs(): SandboxFs {
    const root = this.#scratch;
    if (root === null) {
      throw new SandboxFsError(
        `Sandbox '${this.id}' has no scratch directory: create it with policy { scratch: true }`,
      );
    }
    const { hostUid, hostGid } = this.#identity;
    return this.#fs ??= new SandboxFs({
      root,
      mountPoint: SANDBOX_PATHS.scratch,
      owner: hostUid === null
        ? null
        : { uid: hostUid, gid: hostGid ?? hostUid },
      running: () => this.#active.size > 0 || this.closed,
      lock: lockOf(this),
      quota: this.#quota!,
    });
  }

  /**
   * How the scratch quota is enforced: "loop" (a filesystem of the quota's
   * size: writes past it fail with ENOSPC), "tmpfs" (the same, in RAM) or
   * "walk" (measured by the harness, with known limits); null without a
   * scratch directory.
   */
  get quotaMode(): ScratchQuotaMode | null {
    return this.#quota?.mode ?? null;
  }

  /**
   * The scratch's usage: bytes used, room left, whether it is full, and
   * what it costs the host.
   *
   * @returns The usage, or null without a scratch directory.
   */
  scratchUsage(): Promise<ScratchUsage | null> {
    return this.#quota?.usage() ?? Promise.resolve(null);
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closing !== null;
  }

  /** The network policy in force, with injected values shown as `<redacted>`. */
  get networkPolicy(): NetworkPolicy {
    return this.#egress?.active.network.redacted ?? this.#network;
  }

  /**
   * The sandbox's latest audit events, in order: at most 10,000 and about
   * 8 MiB (the oldest are dropped first).
   */
  get auditTrail(): readonly AuditEvent[] {
    return this.#trail.events;
  }

  /**
   * Replaces the network policy; it applies to the next request of every run
   * (running ones included). Typical use: inject credentials during setup,
   * then remove them before untrusted code runs. A sandbox created with
   * "deny-all" and no placeholders has no egress path in runs already
   * started; new runs get one.
   *
   * @param network The new network policy.
   * @throws {PolicyError} If it is invalid; the old policy stays in force.
   */
  async updateNetworkPolicy(network: NetworkPolicyInput): Promise<void> {
    this.#assertOpen();
    const parsed = NetworkPolicySchema.safeParse(network);
    if (!parsed.success) {
      throw new PolicyError(parsed.error.issues.map((i) => ({
        path: ["network", ...i.path].map(String).join("."),
        message: i.message,
      })));
    }
    if (this.#egress) {
      updateEgress(this.#egress, parsed.data);
    } else if (parsed.data !== "deny-all") {
      this.#egress = await setupEgress(
        { ...this.#policy, network: parsed.data },
        this.#workspace,
        await injectorFor(this.#options),
        this.#options,
      );
    }
    this.#network = parsed.data;
    // A waiting process has the old policy's Deno grants and channels.
    this.#networkGeneration++;
    this.#warm.drop();
    this.#warm.refill(this.#policy.env);
  }

  /**
   * Runs a program to completion and collects its output.
   *
   * @param options The program and run settings.
   * @returns The result; limits show up as `reason`, never as exceptions.
   * @throws {BundleError} If the program does not compile or imports
   *   something unavailable.
   * @throws {SandboxSetupError} If the sandbox could not be started.
   */
  async run(options: RunOptions): Promise<RunResult> {
    if (options.stdin === "piped") {
      throw new TypeError(
        "Cannot use stdin: 'piped' with run(): pass the bytes, or use spawn()",
      );
    }
    const child = await this.spawn(options);
    const [stdoutBytes, stderrBytes] = await Promise.all([
      readAll(child.stdout),
      readAll(child.stderr),
    ]);
    const status = await child.status;
    return {
      ...status,
      stdout: decoder.decode(stdoutBytes),
      stderr: decoder.decode(stderrBytes),
      stdoutBytes,
      stderrBytes,
    };
  }

  /**
   * Starts a program and returns at once with its streams.
   *
   * @param options The program and run settings.
   * @returns The live run.
   * @throws {BundleError} If the program does not compile.
   */
  async spawn(options: RunOptions): Promise<SandboxProcess> {
    this.#assertOpen();
    const source = sourceOf(options);
    const limits: ResourceLimits = {
      ...this.#policy.limits,
      ...(options.timeoutMs !== undefined
        ? { timeoutMs: options.timeoutMs }
        : {}),
    };
    assertValidLimits(limits);
    const env = { ...this.#policy.env, ...runEnv(options.env) };
    const args = options.args ?? [];
    await this.#checkScratchQuota();
    // Bundling and starting the sandbox are independent: do both at once
    // (or take the process started while the sandbox was idle).
    const bundling = bundleProgram(source, {
      npm: this.#npm,
      cacheScope: this.#options.bundleCacheScope ?? "",
      // A refused import is an attempt the operator should see.
      onRefused: (refusal) =>
        this.#record({
          time: new Date().toISOString(),
          source: "harness",
          kind: "import-refused",
          sandboxId: this.id,
          ...refusal,
        }, []),
    });
    const [bundled, prepared] = await Promise.allSettled([
      bundling,
      this.#warm.take(env).then((warm) => warm ?? this.#prepare(env)),
    ]);
    if (
      bundled.status === "rejected" || prepared.status === "rejected" ||
      this.closed
    ) {
      // A program that does not compile leaves the process for the next run.
      if (prepared.status === "fulfilled") this.#warm.keep(prepared.value);
      if (bundled.status === "rejected") throw bundled.reason;
      if (prepared.status === "rejected") throw prepared.reason;
      this.#assertOpen();
    }
    const js = (bundled as PromiseFulfilledResult<string>).value;
    let prepare = (prepared as PromiseFulfilledResult<PreparedRun>).value;
    // A harness file operation (sandbox.fs) checks "no run is live" and
    // acts under this lock; the run becomes live under it too, so it cannot
    // start in the middle of one (a write landing inside a live run).
    const release = await lockOf(this).acquire();
    const startedAt = new Date();
    const started = performance.now();
    let run: ReturnType<typeof superviseRun>;
    let live: LiveRun;
    try {
      if (!(await deliverProgram(prepare, js, args))) {
        // The waiting process died (killed from outside): start another
        // one; if that one cannot take the program either, supervision
        // reports why.
        this.#discard(prepare);
        prepare = await this.#prepare(env);
        await deliverProgram(prepare, js, args);
      }
      // Gone from the pending set means close() killed it meanwhile.
      if (!this.#pending.delete(prepare)) {
        this.#assertOpen();
        throw new Error(
          `Cannot start run '${prepare.runId}': it was discarded`,
        );
      }
      ({ run, live } = this.#supervise(prepare, limits, options));
    } finally {
      release();
    }
    const { channels, runDir, statusPath, runId } = prepare;
    const runAudit = prepare.audit;
    const status = (async (): Promise<RunStatus> => {
      const exit = await run.exited.finally(() => this.#active.delete(live));
      // Every process is gone: the channels hold every event of the run.
      await channels.close();
      // Files go after the result: close() still waits for them.
      this.#settle(Promise.allSettled([
        Deno.remove(runDir, { recursive: true }),
        Deno.remove(statusPath),
      ]));
      // After the caller has seen the result (a macrotask later), so a
      // close() right after the run starts no process.
      setTimeout(() => this.#warm.refill(env), 0);
      if (exit.setupError) throw exit.setupError;
      const { reason, signal } = classifyExit(exit);
      return {
        sandboxId: this.id,
        runId,
        exitCode: exit.code,
        signal,
        reason,
        success: reason === "exit" && exit.code === 0,
        truncated: run.stdout.truncated || run.stderr.truncated,
        durationMs: Math.round((performance.now() - started) * 100) / 100,
        startedAt: startedAt.toISOString(),
        limits,
        audit: runAudit,
      };
    })();
    // Marked handled here so a caller that never awaits `status` cannot crash
    // the harness with an unhandled rejection; awaiting it still throws.
    status.catch(() => {});
    live.done = status.catch(() => {});
    // close() waits for the whole cleanup, not just the process exit.
    this.#settle(live.done);
    return {
      runId,
      stdout: run.stdout.readable,
      stderr: run.stderr.readable,
      stdin: run.stdin,
      status,
      kill: () => run.kill("killed"),
    };
  }

  /**
   * Puts a run that has its program under supervision and registers it as
   * live (synchronously: nothing can interleave).
   */
  #supervise(
    prepare: PreparedRun,
    limits: ResourceLimits,
    options: RunOptions,
  ): { run: ReturnType<typeof superviseRun>; live: LiveRun } {
    const run = superviseRun(prepare.child, {
      statusPath: prepare.statusPath,
      limits,
      signal: options.signal,
      // A scratch filesystem (which also holds every run's TMPDIR) needs
      // no watcher: the kernel refuses writes past it. A walk measures this
      // run's two directories.
      quota: !this.#workspace.volume && this.#scratch && prepare.runTmp
        ? walkQuota(
          [this.#scratch, prepare.runTmp, prepare.mirrorCopy ?? []].flat(),
          this.#quota!.quotaBytes,
        )
        : !this.#workspace.volume && prepare.mirrorCopy
        ? walkQuota(
          [prepare.mirrorCopy],
          this.#policy.limits.scratchMb * 1024 * 1024,
        )
        : null,
      stdin: options.stdin,
    });
    // Registered before anything can await, and removed before `status`
    // resolves: a caller that awaited `status` sees the run as ended.
    const live: LiveRun = { kill: run.kill, done: Promise.resolve() };
    this.#active.add(live);
    return { run, live };
  }

  /**
   * Starts a run's sandbox with the warm boot waiting for its program: its
   * files, channels and process. Everything it depends on besides the
   * program and its arguments is in its key.
   */
  #prepare(env: Record<string, string>): Promise<PreparedRun> {
    const preparing = this.#launchPrepared(env);
    // close() waits for a launch in progress, then kills what it launched.
    this.#settle(preparing);
    return preparing;
  }

  async #launchPrepared(env: Record<string, string>): Promise<PreparedRun> {
    // Taken once, before any await: concurrent runs must never share a
    // status file (each one's kill reads its own sandbox's pid 1 there).
    const runNumber = ++this.#runs;
    const prepared = await prepareRun({
      sandboxId: this.id,
      tools: this.#tools,
      identity: this.#identity,
      workspace: this.#workspace,
      seccompFilterPath: this.#filterPath,
      inputMounts: this.#inputMounts,
      inputTargets: this.#policy.inputs.map((i) => i.target),
      scratch: this.#scratch,
      mirror: this.#options.learn?.mirror,
      // Learn mode: the copy may fill half the quota (the program writes
      // the rest), and every host command name resolves, so each spawn
      // the program would make under plain deno run is recorded.
      ...(this.#options.learn
        ? {
          mirrorMaxBytes: this.#policy.limits.scratchMb * 1024 * 1024 / 2,
          commandNames: learnCommandNames(),
        }
        : {}),
      limits: this.#policy.limits,
      broker: this.#options.learn
        ? "learn"
        : this.#policy.audit.permissions
        ? "enforce"
        : null,
      egress: this.#egress,
      system: this.#policy.system,
      record: (event, run) => this.#record(event, run),
    }, {
      runNumber,
      env,
      key: this.#launchKey(env),
      // Checked with nothing awaited before the launch: no process starts
      // once close() has begun.
      beforeLaunch: () => this.#assertOpen(),
    });
    this.#pending.add(prepared);
    return prepared;
  }

  /** What a launch depends on besides the sandbox itself. */
  #launchKey(env: Readonly<Record<string, string>>): string {
    return JSON.stringify([
      this.#networkGeneration,
      Object.entries(env).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0),
    ]);
  }

  /** Kills a prepared run and deletes its files (once; later calls do nothing). */
  #discard(prepared: PreparedRun): void {
    if (this.#pending.delete(prepared)) {
      this.#settle(discardPrepared(prepared));
    }
  }

  /** close() waits for `work` (cleanup that nobody else awaits). */
  #settle(work: Promise<unknown>): void {
    const done = work.catch(() => {});
    this.#settling.add(done);
    done.then(() => this.#settling.delete(done));
  }

  /**
   * A scratch already full (files left by earlier runs) gets no new run:
   * the quota bounds the directory, not only one run.
   */
  async #checkScratchQuota(): Promise<void> {
    if (!this.#quota) return;
    const usage = await this.#quota.usage();
    if (usage.full) {
      const held = Number.isFinite(usage.usedBytes)
        ? `${usage.usedBytes} bytes used of ${usage.quotaBytes}, or no file left to create`
        : "part of it cannot be measured: a path too long to walk";
      throw new ScratchQuotaError(
        `Cannot start a run in sandbox '${this.id}' as its scratch directory is full (${held}): delete files with sandbox.fs first`,
      );
    }
  }

  /** Kills every run and deletes every file of the sandbox. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#warm.drop();
      for (const prepared of this.#pending) this.#discard(prepared);
      for (const run of this.#active) run.kill("killed");
      await Promise.all([...this.#active].map((r) => r.done));
      // Cleanup can start more cleanup (a launch in progress, then its
      // discard): wait until none is left.
      while (this.#settling.size > 0) await Promise.all([...this.#settling]);
      // Its pooled upstream connections and leaf certificates go with it.
      if (this.#egress) closeEgress(this.#egress);
      await this.#workspace.close();
      this.#identity.release();
    })();
    return this.#closing;
  }

  /** Same as `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #record(event: AuditEvent, run: AuditEvent[]): void {
    run.push(event);
    this.#trail.push(event);
    try {
      this.#options.onAudit?.(event);
    } catch {
      // A failing listener must not break the run or the injector.
    }
  }

  #assertOpen(): void {
    if (this.#closing) {
      throw new Error(
        `Cannot use sandbox '${this.id}' after close(): create a new sandbox`,
      );
    }
  }
}

function runEnv(env: RunOptions["env"]): Record<string, string> {
  if (env === undefined) return {};
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new PolicyError(
      parsed.error.issues.map((i) => ({
        path: ["env", ...i.path].map(String).join("."),
        message: i.code === "invalid_key"
          ? `key ${i.issues.map((x) => x.message).join("; ")}`
          : i.message,
      })),
      "run options",
    );
  }
  return parsed.data;
}

function sourceOf(options: RunOptions): ProgramSource {
  if (options.code !== undefined) return { code: options.code };
  if (options.path !== undefined) return { path: options.path };
  if (options.files !== undefined && options.entry !== undefined) {
    return { files: options.files, entry: options.entry };
  }
  throw new TypeError(
    "Cannot run without a program: pass 'code', 'path', or 'files' with 'entry'",
  );
}

/**
 * Runs one program in a throwaway sandbox.
 *
 * @param code Program source (TypeScript or JavaScript).
 * @param options Sandbox and run options.
 * @returns The run's result.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { run } from "./sandbox.ts";
 * const result = await run("console.log(Deno.args[0])", { args: ["hi"] });
 * assert.equal(result.stdout, "hi\n");
 * assert.equal(result.reason, "exit");
 * ```
 */
export async function run(
  code: string,
  options:
    & SandboxOptions
    & Omit<RunOptions, "code" | "files" | "entry" | "path"> = {},
): Promise<RunResult> {
  const { args, stdin, timeoutMs, signal, ...sandboxOptions } = options;
  const sandbox = await Sandbox.create(sandboxOptions);
  try {
    return await sandbox.run({
      code,
      ...(args !== undefined ? { args } : {}),
      ...(stdin !== undefined ? { stdin } : {}),
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(signal !== undefined ? { signal } : {}),
    });
  } finally {
    await sandbox.close();
  }
}

async function readAll(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A DNS label: what a node name may be (it becomes part of a host name). */
const NODE_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A fresh sandbox id, naming its node when one is given. The node name is
 * checked even though the operator sets it: it reaches routers and URLs.
 */
function sandboxId(node: string | undefined): string {
  if (node === undefined) return `sbx-${randomHex(6)}`;
  if (!NODE_NAME.test(node)) {
    throw new TypeError(
      `Cannot use node name '${node}' in sandbox ids: use 1-63 lower-case letters, digits or '-', not starting or ending with '-'`,
    );
  }
  return `sbx-${node}-${randomHex(6)}`;
}

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}
