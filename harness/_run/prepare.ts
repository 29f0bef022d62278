/**
 * A run whose sandbox is up but whose program has not been sent yet: the
 * launched process waits in the warm boot (`runtime/warm_boot.ts`). Every
 * run goes through this state, for a few milliseconds (launched while the
 * program is bundled) or, for a sandbox's next run, while the sandbox idles.
 *
 * @module
 */

import type { Mount } from "../../runtime/bwrap_args.ts";
import type { HostTools } from "../../runtime/host_tools.ts";
import type { SandboxIdentity } from "../../runtime/host_identity.ts";
import {
  killSandbox,
  launchSandbox,
  SANDBOX_PATHS,
} from "../../runtime/launcher.ts";
import type { ResourceLimits } from "../../runtime/limits.ts";
import {
  BOOT_FILE,
  BOOT_SOURCE,
  encodeBootHeader,
  PROGRAM_FILE,
  usesNodeProcess,
} from "../../runtime/warm_boot.ts";
import type { Workspace } from "../../runtime/workspace.ts";
import type { SandboxEgress } from "./egress.ts";
import { openRunChannels, type RunChannels } from "./channels.ts";
import { denoCacheFor, type DenoCacheLease } from "./code_cache.ts";
import { MAP_FILE, separateSourceMap } from "./source_map.ts";
import { mirrorView } from "./mirror.ts";
import type { BrokerMode } from "../permission_broker.ts";
import type { AuditEvent } from "../run_result.ts";
import type { SystemPolicy } from "../policy_schema.ts";

/**
 * The program's TMPDIR when a scratch directory is granted.
 *
 * @example Usage
 * ```ts ignore
 * console.log(SANDBOX_TMP); // "/var/tmp"
 * ```
 */
export const SANDBOX_TMP = "/var/tmp";
/**
 * The program's TMPDIR without a scratch: a directory of its own in the
 * run's private /tmp (bounded by `tmpMb`, gone with the run). Not /tmp
 * itself: Deno's own cache (DENO_DIR) lives there, and a program that
 * could write it could leave Deno something to load.
 *
 * @example Usage
 * ```ts ignore
 * console.log(SANDBOX_RUN_TMP); // "/tmp/run"
 * ```
 */
export const SANDBOX_RUN_TMP = "/tmp/run";

/** A launched sandbox waiting for its program. */
export interface PreparedRun {
  /** The run's number in its sandbox. */
  readonly runNumber: number;
  /** The run's id (already in its channels' audit events). */
  readonly runId: string;
  /** Host directory of the run's files (sockets, code, TMPDIR). */
  readonly runDir: string;
  /** Host directory mounted at `/airlock` (read-only inside). */
  readonly codeDir: string;
  /** bwrap's status file (the namespace's pid 1). */
  readonly statusPath: string;
  /** Host path of the run's TMPDIR, when it has one. */
  readonly runTmp: string | null;
  /** Host path of learn mode's writable copy of the mirror, if any. */
  readonly mirrorCopy: string | null;
  /** The run's injector and broker sockets. */
  readonly channels: RunChannels;
  /** The launched process (bwrap's monitor). */
  readonly child: Deno.ChildProcess;
  /** The run's audit events (the channels append to it). */
  readonly audit: AuditEvent[];
  /** What the launch depended on: a run may only take a run of equal key. */
  readonly key: string;
  /** False once the process has exited (it can no longer take a program). */
  readonly alive: boolean;
}

/** Wraps a launched process as a prepared run that tracks its own exit. */
function preparedRun(
  init: Omit<PreparedRun, "alive">,
): PreparedRun {
  let alive = true;
  init.child.status.then(() => alive = false, () => alive = false);
  return {
    ...init,
    get alive() {
      return alive;
    },
  };
}

/** What every run of one sandbox is made from. */
export interface RunSetup {
  /** The sandbox's id. */
  sandboxId: string;
  /** Host programs and libraries. */
  tools: HostTools;
  /** The sandbox's host uid. */
  identity: SandboxIdentity;
  /** The sandbox's workspace (run directories go there). */
  workspace: Workspace;
  /** Host path of the seccomp filter. */
  seccompFilterPath: string;
  /** Read-only input mounts. */
  inputMounts: readonly Mount[];
  /** Sandbox paths of the inputs (readable). */
  inputTargets: readonly string[];
  /** Host path of the scratch directory, or null. */
  scratch: string | null;
  /** Learn mode's mirrored project directory, if any. */
  mirror: string | undefined;
  /** Most bytes the mirror's copy may hold (learn mode). */
  mirrorMaxBytes?: number;
  /** Command names the sandbox's PATH resolves; default the common ones. */
  commandNames?: readonly string[];
  /** The sandbox's limits (the wall clock is the supervisor's). */
  limits: ResourceLimits;
  /** Permission broker mode, or null for Deno's flags alone. */
  broker: BrokerMode | null;
  /** The sandbox's egress, or null for no network at all. */
  egress: SandboxEgress | null;
  /** System information the program may read; default "allow". */
  system?: SystemPolicy;
  /** Records one audit event of a run. */
  record(event: AuditEvent, run: AuditEvent[]): void;
}

/**
 * Creates a run's files and channels and launches its sandbox with the warm
 * boot waiting for the program.
 *
 * @param setup The sandbox's parts.
 * @param run The run's number (unique in its sandbox), env and launch key;
 *   `beforeLaunch` runs right before the process starts and may throw to
 *   stop it (nothing is awaited between the two).
 * @returns The prepared run.
 * @throws {SandboxSetupError} If a channel cannot be opened.
 *
 * @example Usage
 * ```ts ignore
 * const prepared = await prepareRun(setup, { runNumber: 1, env: {}, key: "k", beforeLaunch: () => {} });
 * ```
 */
export async function prepareRun(
  setup: RunSetup,
  run: {
    runNumber: number;
    env: Readonly<Record<string, string>>;
    key: string;
    beforeLaunch: () => void;
  },
): Promise<PreparedRun> {
  const { runNumber, env, key } = run;
  const runId = `${setup.sandboxId}-r${runNumber}`;
  const runDir = await setup.workspace.newRunDir();
  // The program's own directory (mounted at /airlock): the run's sockets
  // stay beside it, not in it.
  const codeDir = `${runDir}/code`;
  const statusPath = `${setup.workspace.boxDir}/status-${runNumber}.json`;
  const runAudit: AuditEvent[] = [];
  const read = [...setup.inputTargets];
  const write: string[] = [];
  const mounts: Mount[] = [...setup.inputMounts];
  const { mirror, scratch } = setup;
  let cwd: string = scratch ? SANDBOX_PATHS.scratch : "/";
  if (mirror !== undefined) {
    // Learn mode only: no secrets and no egress exist in this sandbox. The
    // directory is a writable throwaway copy (mounted below).
    read.push(mirror);
    write.push(mirror);
    cwd = mirror;
  }
  let mirrorCopy: string | null = null;
  // With a scratch directory, the run also gets a fresh TMPDIR of its own
  // (/var/tmp), under the same quota and deleted after the run.
  const runTmp = scratch ? `${runDir}/tmp` : null;
  let channels: RunChannels | null = null;
  let lease: DenoCacheLease | null = null;
  try {
    await Deno.mkdir(codeDir, { mode: 0o755 });
    await Deno.writeTextFile(`${codeDir}/${BOOT_FILE}`, BOOT_SOURCE, {
      mode: 0o644,
    });
    if (mirror !== undefined) {
      const view = await mirrorView(mirror, `${runDir}/mirror`, {
        maxBytes: setup.mirrorMaxBytes ?? 128 * 1024 * 1024,
        identity: setup.identity,
      });
      mounts.push(...view.mounts);
      mirrorCopy = view.copy;
      setup.record({
        time: new Date().toISOString(),
        source: "harness",
        kind: "learn-mirror",
        sandboxId: setup.sandboxId,
        runId,
        path: mirror,
        files: view.files,
        bytes: view.bytes,
        readOnly: view.readOnly,
        problems: view.problems,
      }, runAudit);
    }
    if (runTmp) {
      await Deno.mkdir(runTmp, { mode: 0o700 });
      await setup.workspace.giveToSandbox(runTmp);
      mounts.push({ kind: "bind", source: runTmp, dest: SANDBOX_TMP });
      read.push(SANDBOX_TMP);
      write.push(SANDBOX_TMP);
    }
    if (!runTmp) {
      // os.tmpdir() and Deno.makeTempDir() need a writable TMPDIR: without
      // a scratch, one made inside the run's /tmp tmpfs (owned by the
      // sandbox's user, private to it).
      mounts.push({ kind: "dir", dest: SANDBOX_RUN_TMP, mode: 0o700 });
      read.push(SANDBOX_RUN_TMP);
      write.push(SANDBOX_RUN_TMP);
    }
    if (scratch) {
      // The scratch directory is the program's only writable place on disk.
      mounts.push({
        kind: "bind",
        source: scratch,
        dest: SANDBOX_PATHS.scratch,
      });
      read.push(SANDBOX_PATHS.scratch);
      write.push(SANDBOX_PATHS.scratch);
    }
    channels = await openRunChannels({
      runDir,
      sandboxId: setup.sandboxId,
      runId,
      ownerUid: setup.identity.hostUid,
      base: { read, write },
      cwd,
      statusPath,
      tmp: scratch ? SANDBOX_TMP : SANDBOX_RUN_TMP,
      // A home to look for dotfiles in (SDKs join paths to os.homedir()):
      // the scratch, kept across runs, or else the run's own temp dir.
      home: scratch ? SANDBOX_PATHS.scratch : SANDBOX_RUN_TMP,
      ...(setup.system !== undefined ? { system: setup.system } : {}),
      env,
      egress: setup.egress,
      broker: setup.broker,
      audit: (event) => setup.record(event, runAudit),
    });
    mounts.push(...channels.mounts);
    // The sandbox's kept Deno caches (code cache, module analysis): its
    // own, never another sandbox's (see code_cache.ts).
    const denoCache = await denoCacheFor(
      setup.workspace,
      setup.identity,
      setup.limits,
    );
    lease = (await denoCache?.acquire()) ?? null;
    run.beforeLaunch();
    const child = launchSandbox({
      tools: setup.tools,
      identity: setup.identity,
      seccompFilterPath: setup.seccompFilterPath,
      statusPath,
      program: codeDir,
      warmBoot: true,
      limits: setup.limits,
      grants: channels.grants,
      mounts,
      cwd,
      env: channels.env,
      ...(channels.egressSocket ? { egressSocket: channels.egressSocket } : {}),
      ...(channels.egressBridge ? { egressBridge: channels.egressBridge } : {}),
      stdin: true,
      ...(lease ? { denoCache: lease.files } : {}),
      ...(setup.commandNames ? { commandNames: setup.commandNames } : {}),
    });
    lease?.track(child);
    lease = null;
    return preparedRun({
      runNumber,
      runId,
      runDir,
      codeDir,
      statusPath,
      runTmp,
      mirrorCopy,
      channels,
      child,
      audit: runAudit,
      key,
    });
  } catch (error) {
    lease?.cancel();
    await channels?.close();
    await Deno.remove(runDir, { recursive: true }).catch(() => {});
    throw error;
  }
}

/**
 * Hands a prepared run its program: writes `main.js` into its code
 * directory, then the boot header on its stdin. The stdin stays open (and
 * unlocked) for the program's own input.
 *
 * @param run The prepared run.
 * @param js The bundled program.
 * @param args The program's arguments.
 * @returns False when the process is gone and cannot take the program.
 *
 * @example Usage
 * ```ts ignore
 * if (!await deliverProgram(prepared, js, ["--verbose"])) await discardPrepared(prepared);
 * ```
 */
export async function deliverProgram(
  run: PreparedRun,
  js: string,
  args: readonly string[],
): Promise<boolean> {
  // The transparent egress bridge has bound its listeners (it started
  // beside this process): no lookup of the program can come before it.
  await Promise.race([run.channels.ready, run.child.status]);
  if (!run.alive) return false;
  // Written before the header: Deno reads main.js only after the boot has
  // the header, so the program is complete when it is loaded. Its source
  // map goes beside it (read only for a stack trace; see source_map.ts).
  const { code, map } = separateSourceMap(js);
  if (map !== null) {
    await Deno.writeFile(`${run.codeDir}/${MAP_FILE}`, map, { mode: 0o644 });
  }
  await Deno.writeTextFile(`${run.codeDir}/${PROGRAM_FILE}`, code, {
    mode: 0o644,
  });
  const writer = run.child.stdin.getWriter();
  try {
    await writer.write(encodeBootHeader({ args, node: usesNodeProcess(js) }));
    return true;
  } catch {
    return false; // a broken pipe: the process died while waiting
  } finally {
    writer.releaseLock();
  }
}

/**
 * Ends a prepared run that will never get a program: kills its namespace,
 * waits for every process of it, closes its channels and deletes its files.
 *
 * @param run The prepared run.
 * @returns When everything is gone.
 *
 * @example Usage
 * ```ts ignore
 * await discardPrepared(prepared);
 * ```
 */
export async function discardPrepared(run: PreparedRun): Promise<void> {
  // The namespace's pid 1 takes every process of the sandbox with it.
  await killSandbox(run.child, run.statusPath);
  await Promise.allSettled([
    run.child.stdin.close(),
    run.child.stdout.cancel(),
    run.child.stderr.cancel(),
  ]);
  // bwrap exits once the namespace is empty; kill it directly if it has not
  // after 2 s (--die-with-parent then ends the rest).
  const lastResort = setTimeout(() => {
    try {
      run.child.kill("SIGKILL");
    } catch { /* exited */ }
  }, 2_000);
  await run.child.status;
  clearTimeout(lastResort);
  await run.channels.close();
  await Promise.allSettled([
    Deno.remove(run.runDir, { recursive: true }),
    Deno.remove(run.statusPath),
  ]);
}
