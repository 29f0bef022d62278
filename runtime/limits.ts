/**
 * Resource limits for one sandboxed run and their translation into rlimits
 * (`prlimit`) and V8 flags. cgroup v2 is not available on every host (not on
 * ours), so the limits are per-process rlimits plus a wall clock kept by the
 * harness; see the README's "known limits".
 *
 * @module
 */

/** Hard limits on one run. Sizes are in MiB unless the name says otherwise. */
export interface ResourceLimits {
  /** Wall-clock time before the whole sandbox is killed. */
  timeoutMs: number;
  /** JS heap limit, and the allowance for off-heap memory (ArrayBuffers). */
  memoryMb: number;
  /** CPU seconds (RLIMIT_CPU); the process gets SIGXCPU at the limit. */
  cpuSeconds: number;
  /** Largest file the program may write (RLIMIT_FSIZE); SIGXFSZ past it. */
  fileSizeMb: number;
  /** Open file descriptors (RLIMIT_NOFILE). */
  openFiles: number;
  /** Processes plus threads of the sandbox (RLIMIT_NPROC, per sandbox uid). */
  processes: number;
  /** Bytes kept of stdout and of stderr each; past it the run is stopped. */
  outputBytes: number;
  /** Size of the sandbox's private /tmp tmpfs (Deno's own cache lives there). */
  tmpMb: number;
  /** Total size of the scratch directory, when the policy grants one. */
  scratchMb: number;
}

/**
 * Defaults: generous for generated scripts, small enough that a runaway one
 * cannot hurt the host.
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_LIMITS } from "./limits.ts";
 * console.log(DEFAULT_LIMITS.timeoutMs);
 * ```
 */
export const DEFAULT_LIMITS: Readonly<ResourceLimits> = Object.freeze({
  timeoutMs: 30_000,
  memoryMb: 256,
  cpuSeconds: 30,
  fileSizeMb: 64,
  openFiles: 256,
  processes: 64,
  outputBytes: 1_048_576,
  tmpMb: 32,
  scratchMb: 256,
});

/**
 * Address space Deno's runtime takes in RLIMIT_DATA terms before any program
 * memory: measured ~547 MiB for heaps from 64 MiB to 2 GiB (Deno 2.9.6), plus
 * headroom for the runtime's own growth. Below it, Deno cannot start at all.
 */
export const DENO_DATA_BASELINE_MB = 640;

const MIB = 1024 * 1024;

/**
 * The `prlimit` options enforcing `limits` on the whole sandbox process tree.
 * Soft and hard limits are equal except for CPU, whose soft limit sends
 * SIGXCPU first so the run can be reported as "cpu" rather than a bare kill.
 *
 * @param limits The run's limits.
 * @param options `enforceProcesses: false` leaves RLIMIT_NPROC alone: it only
 *   works when each sandbox has its own host uid (see `host_identity.ts`).
 * @returns Options for `prlimit`.
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_LIMITS, prlimitArgs } from "./limits.ts";
 * console.log(prlimitArgs(DEFAULT_LIMITS).join(" "));
 * ```
 */
export function prlimitArgs(
  limits: ResourceLimits,
  options: { enforceProcesses?: boolean } = {},
): string[] {
  const data = (DENO_DATA_BASELINE_MB + limits.memoryMb) * MIB;
  const args = [
    // Off-heap memory (ArrayBuffers) is outside the V8 heap limit; RLIMIT_DATA
    // bounds it. RLIMIT_AS is unusable: V8 reserves ~40 GB of address space.
    `--data=${data}:${data}`,
    // A CPU spin is stopped even when it stays under the wall clock.
    `--cpu=${limits.cpuSeconds}:${limits.cpuSeconds + 1}`,
    // One huge file cannot fill the disk behind the scratch directory.
    `--fsize=${limits.fileSizeMb * MIB}:${limits.fileSizeMb * MIB}`,
    // Descriptor exhaustion stays inside the sandbox.
    `--nofile=${limits.openFiles}:${limits.openFiles}`,
    // No core dumps: a crashed sandbox must not write its memory anywhere.
    "--core=0:0",
  ];
  if (options.enforceProcesses !== false) {
    // Thread and process bombs (Worker floods) stop at the cap.
    args.push(`--nproc=${limits.processes}:${limits.processes}`);
  }
  return args;
}

/**
 * V8 flags that bound the JS heap: an overflow aborts with SIGTRAP (exit 133),
 * reported as "oom".
 *
 * @param limits The run's limits.
 * @returns The value for Deno's `--v8-flags=`.
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_LIMITS, v8Flags } from "./limits.ts";
 * console.log(v8Flags(DEFAULT_LIMITS)); // "--max-old-space-size=256"
 * ```
 */
export function v8Flags(limits: ResourceLimits): string {
  return `--max-old-space-size=${limits.memoryMb}`;
}

/**
 * Checks that every limit is a positive integer within a sane range.
 *
 * @param limits Limits to check.
 * @throws {RangeError} Naming the first offending limit.
 *
 * @example Usage
 * ```ts
 * import { assertValidLimits, DEFAULT_LIMITS } from "./limits.ts";
 * assertValidLimits(DEFAULT_LIMITS);
 * ```
 */
export function assertValidLimits(limits: ResourceLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new RangeError(
        `Cannot use limit '${name}' as it must be a positive integer: current value is ${value}`,
      );
    }
  }
  if (limits.processes < 16) {
    // Deno itself runs ~10 threads before the first line of the program.
    throw new RangeError(
      `Cannot use limit 'processes' as Deno needs at least 16 threads to start: current value is ${limits.processes}`,
    );
  }
}
