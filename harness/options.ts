/**
 * What a caller can ask of a sandbox: the options of
 * {@linkcode Sandbox.create} (policy, host tools, injector, secrets, warm
 * start, scratch filesystem), the options of one run (program, arguments,
 * stdin, time limit, environment) and the live run `spawn()` returns.
 * Types only: the behaviour they select lives in `sandbox.ts` and `_run/`.
 *
 * @example Options for a sandbox and a run
 * ```ts
 * import type { RunOptions, SandboxOptions } from "./options.ts";
 * const options: SandboxOptions = {
 *   policy: { scratch: true, limits: { timeoutMs: 5_000 } },
 *   warm: false,
 * };
 * const run: RunOptions = { code: "console.log(Deno.args)", args: ["a"] };
 * console.log(options.warm, run.args); // false ["a"]
 * ```
 *
 * @module
 */

import type { HostTools } from "../runtime/host_tools.ts";
import type { SandboxIdentityPool } from "../runtime/host_identity.ts";
import type { ScratchFsRequest } from "../runtime/scratch_volume.ts";
import type { Injector } from "../injector/injector.ts";
import type { ConnectTo } from "../injector/resolver.ts";
import type { ProgramSource } from "./bundle/bundle.ts";
import type { PolicyInput } from "./policy.ts";
import type { AuditEvent, RunStatus } from "./run_result.ts";

/** Options for {@linkcode Sandbox.create}. */
export interface SandboxOptions {
  /** The policy (validated here); default: deny everything, default limits. */
  policy?: PolicyInput;
  /** The Deno binary used inside; default: the harness's own. */
  denoPath?: string;
  /** Where workspaces go; default `$TMPDIR` or /tmp. */
  tmpDir?: string;
  /** Host uid allocator shared by sandboxes; default: one per process. */
  identityPool?: SandboxIdentityPool;
  /** Pre-discovered host tools (skips discovery). */
  tools?: HostTools;
  /**
   * The egress injector. Default: one shared per process (one CA, one
   * connection pool), created on first use by a sandbox with network access.
   */
  injector?: Injector;
  /** Values for `${secret:NAME}` references in the policy. */
  secrets?: Readonly<Record<string, string>>;
  /** `${env:NAME}` lookup; default: the harness's environment. */
  env?: (name: string) => string | undefined;
  /** Extra HOST:PORT -> address mappings (curl's --connect-to), parsed. */
  connectTo?: readonly ConnectTo[];
  /** Receives every audit event of this sandbox as it happens. */
  onAudit?: (event: AuditEvent) => void;
  /** Where npm packages are installed; default `/var/tmp/airlock-npm-<uid>`. */
  npmCacheDir?: string;
  /**
   * Which sandboxes share bundled programs with this one (see
   * `harness/bundle/cache.ts`): a program bundled for one is served to the
   * others from the process's cache. Default "", shared by every sandbox
   * that leaves it unset. Give mutually distrusting tenants scopes of their
   * own (the HTTP API uses one per token): a hit is faster than a miss, so
   * a shared entry would tell one that another ran the same program.
   */
  bundleCacheScope?: string;
  /**
   * Whether the policy may name npm packages (default true). A server whose
   * clients must not make the harness install and bundle packages sets it
   * to false: a policy with `npm.allow` entries is then a PolicyError.
   */
  allowNpm?: boolean;
  /**
   * Learn mode (for `deno task audit --learn`): the broker allows and
   * records reads, writes, env and sys; the injector records each request
   * and answers it locally with 503 instead of sending it; no secret or
   * placeholder is loaded; running programs and FFI are recorded and
   * refused, and every command name on the harness's PATH resolves (so a
   * spawn of a bare name is recorded). `mirror` shows each run a writable
   * throwaway copy of a host directory at its own path, as the working
   * directory (made as the sandbox's uid; `.git` and `node_modules` shown
   * read-only; at most half of `limits.scratchMb`): the program's writes
   * land in the copy and are recorded, the host directory never changes,
   * and recorded paths are host paths.
   */
  learn?: { mirror?: string };
  /**
   * Warm start (default true): while the sandbox is idle, the next run's
   * process is already started and waits for its program (see
   * `runtime/warm_boot.ts`), which takes a short run from ~34 ms to a few.
   * It costs one idle Deno process (~35 MB) per idle sandbox; it never
   * coexists with a live run of the same sandbox (they would share its
   * process cap). Each process still runs exactly one program.
   */
  warm?: boolean;
  /**
   * How the scratch quota is enforced (see `runtime/scratch_volume.ts`):
   * "auto" (default) makes each scratch a loop-mounted filesystem of the
   * quota's size where the harness can (root, loop devices, mkfs.ext4) and
   * falls back to "walk" (measuring, with known limits) where it cannot;
   * "loop" or "tmpfs" (RAM) refuse to create a sandbox without it. The mode
   * in force is `sandbox.quotaMode`; `deno task doctor` reports it.
   */
  scratchFs?: ScratchFsRequest;
  /**
   * The node (server) that holds the sandbox, carried in its id as
   * `sbx-<node>-<random>`, so a router can send the sandbox's requests to
   * that node with no shared state. A DNS label: lower-case letters, digits
   * and '-', at most 63 characters, not starting or ending with '-'.
   * Default: none (`sbx-<random>`).
   */
  node?: string;
}

/** What to run and how. */
export type RunOptions = ProgramSource & {
  /** `Deno.args` of the program. */
  args?: readonly string[];
  /** Bytes for the program's stdin; `"piped"` exposes a writable (spawn only). */
  stdin?: string | Uint8Array | ReadableStream<Uint8Array> | "piped";
  /** Wall-clock limit for this run; default: the policy's. */
  timeoutMs?: number;
  /** Aborting kills the run (reason "killed"). */
  signal?: AbortSignal;
  /**
   * Plain environment variables for this run, over the policy's `env`
   * (visible to the program: never secrets). Runtime names are refused.
   */
  env?: Readonly<Record<string, string>>;
};

/** A live run. */
export interface SandboxProcess {
  /** This run's id. */
  readonly runId: string;
  /** The program's stdout (capped at the policy's `outputBytes`). */
  readonly stdout: ReadableStream<Uint8Array>;
  /** The program's stderr (capped at the policy's `outputBytes`). */
  readonly stderr: ReadableStream<Uint8Array>;
  /** The program's stdin, when `stdin: "piped"` was given. */
  readonly stdin: WritableStream<Uint8Array> | null;
  /** Resolves when the run has ended and the sandbox is gone. */
  readonly status: Promise<RunStatus>;
  /** Kills the run (reason "killed"). */
  kill(): void;
}
