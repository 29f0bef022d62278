/**
 * Test helper: runs a program through airlock's own launcher (the same bwrap
 * namespaces, mounts, seccomp filter, rlimits and host uid as a real run),
 * but with Deno's permission wall lowered, so a test can prove that the
 * namespace wall holds on its own.
 *
 * - `deno: "read-all"` is `launchSandbox` with `--allow-read=/` and
 *   `--allow-write=/tmp` (Deno still refuses /proc, which it reserves for
 *   `--allow-all`).
 * - `deno: "allow-all"` (the default) is `launchSandbox` with the exact
 *   command line it builds, but every `--allow-*`/`--deny-*` replaced by
 *   `--allow-all`: Deno refuses nothing; only bwrap, seccomp and rlimits
 *   stand between the program and the host.
 *
 * @module
 */

import type { Mount } from "../../runtime/bwrap_args.ts";
import { discoverHostTools, type HostTools } from "../../runtime/host_tools.ts";
import { SandboxIdentityPool } from "../../runtime/host_identity.ts";
import {
  type LaunchOptions,
  launchSandbox,
  SANDBOX_PATHS,
} from "../../runtime/launcher.ts";
import { DEFAULT_LIMITS, type ResourceLimits } from "../../runtime/limits.ts";
import { buildSeccompFilter } from "../../runtime/seccomp_filter.ts";
import { Workspace } from "../../runtime/workspace.ts";
import { bundleProgram } from "../../harness/bundle/bundle.ts";
import { SandboxDenoCache } from "../../harness/_run/code_cache.ts";

/** How much of Deno's permission wall is left standing. */
export type DenoWall = "read-all" | "allow-all";

/** Options for {@linkcode runNamespaceOnly}. */
export interface NamespaceOnlyOptions {
  /** Deno's permissions inside; default "allow-all". */
  deno?: DenoWall;
  /** Grant a scratch directory at /scratch (also the cwd). */
  scratch?: boolean;
  /** Read-only host paths to mount (they must be readable by "others"). */
  inputs?: readonly { source: string; dest: string }[];
  /** Limits over the defaults. */
  limits?: Partial<ResourceLimits>;
  /** Extra `deno run` flags (e.g. `--unstable-vsock`). */
  denoFlags?: readonly string[];
  /** `Deno.args` of the program. */
  args?: readonly string[];
  /**
   * Bind the workspace's kept Deno caches over DENO_DIR, as a real run
   * does (`harness/_run/code_cache.ts`).
   */
  denoCache?: boolean;
}

/** What a namespace-only run hands back. */
export interface NamespaceOnlyResult {
  /** bwrap's exit code (the program's, or 128 + signal). */
  code: number;
  /** stdout, decoded. */
  stdout: string;
  /** stderr, decoded. */
  stderr: string;
  /** Raw stdout. */
  stdoutBytes: Uint8Array;
  /** Real host paths the launch bind-mounted into the sandbox. */
  mountedHostPaths: string[];
  /** The workspace's host directory (deleted by the time this returns). */
  workspaceRoot: string;
}

const pool = new SandboxIdentityPool();
const decoder = new TextDecoder();

/**
 * Runs `code` (TypeScript or JavaScript, bundled like a real run) in a
 * sandbox whose Deno permission wall is lowered.
 *
 * @param code The program.
 * @param options Mounts, limits and how much of Deno's wall remains.
 * @returns Exit code, output and the host paths that were mounted.
 */
export async function runNamespaceOnly(
  code: string,
  options: NamespaceOnlyOptions = {},
): Promise<NamespaceOnlyResult> {
  const tools = await discoverHostTools();
  const identity = pool.acquire();
  const workspace = await Workspace.create({ identity });
  try {
    const seccompFilterPath = await workspace.writeShared(
      "seccomp.bpf",
      buildSeccompFilter(),
    );
    const programDir = await workspace.newRunDir();
    const program = `${programDir}/main.js`;
    await Deno.writeTextFile(program, await bundleProgram({ code }), {
      mode: 0o644,
    });
    const mounts: Mount[] = (options.inputs ?? []).map((input) => ({
      kind: "ro-bind",
      source: input.source,
      dest: input.dest,
    }));
    let scratch: string | null = null;
    if (options.scratch) {
      scratch = await workspace.scratchDir();
      mounts.push({ kind: "bind", source: scratch, dest: "/scratch" });
    }
    const limits = { ...DEFAULT_LIMITS, ...options.limits };
    const kept = options.denoCache
      ? await SandboxDenoCache.open(workspace, identity, limits)
      : null;
    const launch: LaunchOptions = {
      tools,
      identity,
      seccompFilterPath,
      statusPath: `${workspace.boxDir}/status.json`,
      program: programDir,
      args: options.args ?? [],
      limits,
      grants: { read: ["/"], write: ["/tmp"], net: [] },
      mounts,
      cwd: scratch ? "/scratch" : "/",
      denoFlags: options.denoFlags ?? [],
      ...(kept ? { denoCache: kept.files } : {}),
    };
    const child = (options.deno ?? "allow-all") === "read-all"
      ? launchSandbox(launch)
      : spawnAllowAll(launch);
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }, limits.timeoutMs);
    const out = await child.output().finally(() => clearTimeout(timer));
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
      stdoutBytes: out.stdout,
      mountedHostPaths: await mountedHostPaths(tools, programDir, scratch, [
        ...(options.inputs ?? []).map((i) => i.source),
      ]),
      workspaceRoot: workspace.root,
    };
  } finally {
    await workspace.close();
    identity.release();
  }
}

/**
 * `launchSandbox` itself (so its environment and stdio choices are under
 * test too), with only the `deno run` permission flags swapped for
 * `--allow-all`: `Deno.Command` is intercepted for this one synchronous call.
 */
function spawnAllowAll(launch: LaunchOptions): Deno.ChildProcess {
  const ns = Deno as unknown as { Command: typeof Deno.Command };
  const Original = ns.Command;
  ns.Command = class extends Original {
    constructor(command: string | URL, options: Deno.CommandOptions = {}) {
      super(command, { ...options, args: allowAll(options.args ?? []) });
    }
  };
  try {
    return launchSandbox({
      ...launch,
      grants: { read: [], write: [], net: [] },
    });
  } finally {
    ns.Command = Original;
  }
}

/**
 * Replaces the permission flags of `deno run ... /airlock/main.js` with
 * `--allow-all`. Throws if the command line does not have the expected
 * shape, so the helper can never silently test something else.
 */
function allowAll(args: readonly string[]): string[] {
  // `/usr/bin/deno run`: the deno path also appears as a mount destination.
  const deno = args.findIndex((a, i) =>
    a === SANDBOX_PATHS.deno && args[i + 1] === "run"
  );
  // The first main.js after it (a program argument may spell it too).
  const main = args.indexOf(SANDBOX_PATHS.main, deno);
  if (deno === -1 || main === -1) {
    throw new Error("Cannot find 'deno run ... main.js' in the launch command");
  }
  const flags = args.slice(deno + 2, main);
  const kept = flags.filter((f) =>
    !f.startsWith("--deny-") && !f.startsWith("--allow-")
  );
  if (flags.length - kept.length < 4) {
    throw new Error(`Expected the --deny-* flags in ${flags.join(" ")}`);
  }
  return [
    ...args.slice(0, deno + 2),
    ...kept,
    "--allow-all",
    ...args.slice(main),
  ];
}

async function mountedHostPaths(
  tools: HostTools,
  program: string,
  scratch: string | null,
  inputs: string[],
): Promise<string[]> {
  const paths = [
    tools.deno,
    ...tools.libraries.deno,
    program,
    ...(scratch ? [scratch] : []),
    ...inputs,
  ];
  const real = await Promise.all(
    paths.map((p) => Deno.realPath(p).catch(() => p)),
  );
  return [...new Set([...paths, ...real])];
}
