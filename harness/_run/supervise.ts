/**
 * Watching one launched sandbox: the wall clock, the output caps, the
 * scratch quota and the caller's abort signal each end it; ending it means
 * killing the namespace's pid 1, so the exit is only reported once every
 * process of the sandbox is gone.
 *
 * @module
 */

import type { ExitFacts } from "../../runtime/exit_reason.ts";
import {
  killSandbox,
  LAUNCHER_NAME,
  readSandboxPid,
} from "../../runtime/launcher.ts";
import type { ResourceLimits } from "../../runtime/limits.ts";
import { BROKER_WARNING } from "./channels.ts";
import { type CappedStream, capStream } from "./output_cap.ts";
import type { ScratchQuota } from "./scratch_quota.ts";
import { SandboxSetupError } from "../errors.ts";

/** Why the harness ended a run itself (null: it ended on its own). */
export type KilledFor = ExitFacts["killedFor"];

// Defined with the harness's other errors; re-exported for existing imports.
export { SandboxSetupError };

/** How a supervised sandbox ended. */
export interface SupervisedExit {
  /** bwrap's exit code (the program's, or 128 + signal). */
  code: number;
  /** Why the harness killed it, if it did. */
  killedFor: KilledFor;
  /** Set when the sandbox never started. */
  setupError: SandboxSetupError | null;
}

/** A launched sandbox under supervision. */
export interface SupervisedRun {
  /** stdout, capped. */
  stdout: CappedStream;
  /** stderr, capped, without Deno's broker notice. */
  stderr: CappedStream;
  /** The program's stdin when it was asked for as "piped". */
  stdin: WritableStream<Uint8Array> | null;
  /** Ends the run (the first reason given wins). */
  kill(reason: KilledFor): void;
  /** Resolves once bwrap, and with it every sandbox process, is gone. */
  exited: Promise<SupervisedExit>;
}

/** What to watch. */
export interface SuperviseOptions {
  /** bwrap's status file (holds the namespace's pid 1). */
  statusPath: string;
  /** The run's limits. */
  limits: ResourceLimits;
  /** The caller's abort signal. */
  signal?: AbortSignal | undefined;
  /** The scratch quota (the scratch and the run's TMPDIR), or null. */
  quota: ScratchQuota | null;
  /** What to feed the program's stdin. */
  stdin?:
    | string
    | Uint8Array
    | ReadableStream<Uint8Array>
    | "piped"
    | undefined;
}

/**
 * Supervises a launched sandbox until it exits.
 *
 * @param child The launched process (bwrap's monitor).
 * @param options Limits and inputs.
 * @returns Its streams, a kill switch and its exit.
 *
 * @example Usage
 * ```ts ignore
 * const run = superviseRun(launchSandbox(options), { statusPath, limits, quota: null });
 * const exit = await run.exited;
 * ```
 */
export function superviseRun(
  child: Deno.ChildProcess,
  options: SuperviseOptions,
): SupervisedRun {
  const { limits } = options;
  let killedFor: KilledFor = null;
  let exited = false;
  let lastResort: ReturnType<typeof setTimeout> | undefined;
  const kill = (reason: KilledFor) => {
    if (exited) return;
    killedFor ??= reason;
    // SIGKILL the namespace's pid 1 (once bwrap has named it): the kernel
    // kills everything in the namespace, and bwrap (our child) exits once
    // it is gone, so the exit never resolves while a sandbox process runs.
    void killSandbox(child, options.statusPath).then(() => {
      if (exited) return;
      lastResort ??= setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* exited */ }
      }, 2_000);
    });
  };
  const stdout = capStream(
    child.stdout,
    limits.outputBytes,
    () => kill("output-limit"),
  );
  const stderr = capStream(
    child.stderr,
    limits.outputBytes,
    () => kill("output-limit"),
    // Deno's own startup notice about the broker is not program output.
    { dropPrefix: BROKER_WARNING },
  );
  const timer = setTimeout(() => kill("timeout"), limits.timeoutMs);
  const onAbort = () => kill("killed");
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  const stopQuota = options.quota?.watch(() => kill("disk-limit")) ??
    (() => {});
  const stdin = feedStdin(child, options.stdin);
  const exit = child.status.then(async (status): Promise<SupervisedExit> => {
    exited = true;
    clearTimeout(timer);
    clearTimeout(lastResort);
    stopQuota();
    options.signal?.removeEventListener("abort", onAbort);
    // Everything in the sandbox is gone, so the pipe has all it will get.
    await stderr.headReady;
    // bwrap writes the sandbox's pid 1 to its status file once the sandbox
    // exists: without it, nothing of the program can have run.
    const started = readSandboxPid(options.statusPath) !== null;
    const setupFailure = killedFor === null
      ? setupError(status.code, stderr.head, started)
      : null;
    return { code: status.code, killedFor, setupError: setupFailure };
  });
  return { stdout, stderr, stdin, kill, exited: exit };
}

/** Prefixes of the messages bwrap, prlimit and the launcher script print when they fail. */
const SETUP_PREFIXES = ["bwrap: ", "prlimit: ", `${LAUNCHER_NAME}: `];

const decoder = new TextDecoder();

function setupError(
  code: number,
  head: Uint8Array,
  started: boolean,
): SandboxSetupError | null {
  let text = decoder.decode(head);
  const notice = decoder.decode(BROKER_WARNING);
  if (text.startsWith(notice)) text = text.slice(notice.length);
  const said = text.split("\n")[0]?.trim() || `exit code ${code}`;
  if (!started && code !== 0) {
    // The launcher, prlimit or bwrap itself failed before the sandbox
    // existed (a missing or unusable bwrap, refused namespaces...).
    return new SandboxSetupError(
      `Cannot start the sandbox: bwrap did not start it (${said}); run 'deno task doctor' for a diagnosis`,
    );
  }
  if (code === 87 && text.includes("permission broker")) {
    // Deno fails closed when it cannot reach the broker.
    return new SandboxSetupError(
      `Cannot start the sandbox: ${said} (the permission broker was unreachable)`,
    );
  }
  // bwrap's own setup inside the new namespaces (mounts) fails with 1 and
  // names itself; the program cannot have written anything yet.
  if (code === 1 && SETUP_PREFIXES.some((p) => text.startsWith(p))) {
    return new SandboxSetupError(
      `Cannot start the sandbox: ${said} (run 'deno task doctor' for a diagnosis)`,
    );
  }
  return null;
}

function feedStdin(
  child: Deno.ChildProcess,
  stdin: SuperviseOptions["stdin"],
): WritableStream<Uint8Array> | null {
  if (stdin === undefined) {
    // Nothing for the program: it reads end-of-file, as from /dev/null.
    child.stdin.close().catch(() => {});
    return null;
  }
  if (stdin === "piped") return child.stdin;
  const source = typeof stdin === "string"
    ? ReadableStream.from([new TextEncoder().encode(stdin)])
    : stdin instanceof Uint8Array
    ? ReadableStream.from([stdin])
    : stdin;
  // The program may exit without reading: a broken pipe is not an error.
  source.pipeTo(child.stdin).catch(() => {});
  return null;
}
