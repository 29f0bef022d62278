/**
 * A run whose sandbox is up but whose program has not been sent yet: the
 * launched process waits in the warm boot (`runtime/warm_boot.ts`). Every
 * run goes through this state, for a few milliseconds (launched while the
 * program is bundled) or, for a sandbox's next run, while the sandbox idles.
 *
 * @module
 */

import { readSandboxPid } from "../runtime/launcher.ts";
import {
  encodeBootHeader,
  PROGRAM_FILE,
  usesNodeProcess,
} from "../runtime/warm_boot.ts";
import type { RunChannels } from "./_run_channels.ts";
import type { AuditEvent } from "./run_result.ts";

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

/**
 * Wraps a launched process as a prepared run that tracks its own exit.
 *
 * @param init The launched run.
 * @returns The prepared run.
 *
 * @example Usage
 * ```ts ignore
 * const prepared = preparedRun({ runNumber, runId, runDir, codeDir, statusPath, runTmp, channels, child, audit, key });
 * ```
 */
export function preparedRun(
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
  if (!run.alive) return false;
  // Written before the header: Deno reads main.js only after the boot has
  // the header, so the program is complete when it is loaded.
  await Deno.writeTextFile(`${run.codeDir}/${PROGRAM_FILE}`, js, {
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
  const pid = readSandboxPid(run.statusPath);
  try {
    // The namespace's pid 1 takes every process of the sandbox with it.
    if (pid !== null) Deno.kill(pid, "SIGKILL");
    else run.child.kill("SIGKILL");
  } catch {
    // already gone
  }
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
