/**
 * The bubblewrap sandbox the harness's own helpers run in: the bundler
 * (esbuild and its plugin, which read program-controlled imports) and the
 * npm package installer (which unpacks registry tarballs). Both read input a
 * program controls, so neither runs with the harness's rights: each gets
 * every namespace, no capabilities, the seccomp filter sandboxes get, an
 * environment holding only what is passed here, and a filesystem of the
 * Deno binary, its libraries and the mounts named by the caller. When the
 * harness is root, each helper also runs as a host uid of its own (claimed
 * from the same host-wide pool as sandboxes'), so an escape from its mount
 * namespace meets plain DAC walls, as a sandbox's does.
 *
 * @module
 */

import { buildBwrapArgs, type Mount } from "../../runtime/bwrap_args.ts";
import type { HostTools } from "../../runtime/host_tools.ts";
import {
  type SandboxIdentity,
  SandboxIdentityPool,
} from "../../runtime/host_identity.ts";
import { buildSeccompFilter } from "../../runtime/seccomp_filter.ts";

/** Where the Deno binary is inside a helper's sandbox. */
export const HELPER_DENO = "/usr/bin/deno";

/** What one helper sandbox holds. */
export interface HelperSandbox {
  /** Host programs and libraries. */
  tools: HostTools;
  /** Mounts besides Deno, /proc, /dev and /tmp. */
  mounts: readonly Mount[];
  /** The whole environment of the helper. */
  env: Readonly<Record<string, string>>;
  /** Working directory inside. */
  cwd: string;
  /** "host" only for the installer (it must reach the registry). */
  network: "none" | "host";
  /** The command, as seen inside. */
  command: readonly string[];
  /** Size of the private /tmp, in MiB (default 64). */
  tmpMb?: number;
  /**
   * false: no Deno, no /proc, /dev or /tmp, only `mounts` (for a static
   * binary such as esbuild's). Default true.
   */
  withDeno?: boolean;
  /**
   * The host uid to run as (from {@linkcode helperIdentity}); without it,
   * the harness's own. Every mount source must be readable by it.
   */
  identity?: SandboxIdentity;
}

let pool: SandboxIdentityPool | null = null;

/**
 * A host uid of its own for one helper process (null ids when the harness
 * is not root: the helper then runs as the harness's user). Release it when
 * the helper has exited.
 *
 * @returns The identity.
 *
 * @example Usage
 * ```ts ignore
 * const identity = helperIdentity();
 * // ... start the helper with helperCommand({ ..., identity }) ...
 * identity.release(); // once it has exited
 * ```
 */
export function helperIdentity(): SandboxIdentity {
  pool ??= new SandboxIdentityPool();
  return pool.acquire();
}

let filterFile: Promise<{ dir: string; path: string }> | null = null;

/** The seccomp filter as a file (bwrap reads it from an fd `sh` opens). */
function seccompFile(): Promise<{ dir: string; path: string }> {
  filterFile ??= (async () => {
    // mkdtemp: a directory only the harness's user can write, so nobody can
    // swap the filter for a permissive one between two helper starts.
    // Not under $TMPDIR: that is where the operator puts sandboxes'
    // workspaces, and these files belong to no sandbox.
    const dir = await Deno.makeTempDir({
      dir: "/tmp",
      prefix: "airlock-helpers-",
    }).catch(() => Deno.makeTempDir({ prefix: "airlock-helpers-" }));
    const path = `${dir}/seccomp.bpf`;
    // Readable by the helpers' own uids (they open it after the uid drop);
    // writable only by the harness.
    await Deno.writeFile(path, buildSeccompFilter(), { mode: 0o644 });
    await Deno.chmod(path, 0o644);
    await Deno.chmod(dir, 0o755);
    return { dir, path };
  })();
  filterFile.catch(() => (filterFile = null));
  return filterFile;
}

/**
 * Removes the seccomp filter file (the next helper writes a new one).
 *
 * @example Usage
 * ```ts ignore
 * import { removeHelperFiles } from "./_sandbox.ts";
 * await removeHelperFiles();
 * ```
 */
export async function removeHelperFiles(): Promise<void> {
  const file = filterFile;
  filterFile = null;
  if (!file) return;
  try {
    await Deno.remove((await file).dir, { recursive: true });
  } catch {
    // already gone
  }
}

/**
 * The host command line that starts a helper inside its sandbox.
 *
 * @param sandbox What the helper gets.
 * @returns `command`, `args` and the ids (`uid`, `gid`, when the helper
 *   has its own) for `Deno.Command` (use `clearEnv: true`).
 *
 * @example Usage
 * ```ts ignore
 * const { command, args } = await helperCommand({ tools, mounts: [], env: {},
 *   cwd: "/", network: "none", command: [HELPER_DENO, "--version"] });
 * ```
 */
export async function helperCommand(
  sandbox: HelperSandbox,
): Promise<{ command: string; args: string[]; uid?: number; gid?: number }> {
  const { tools } = sandbox;
  const filter = await seccompFile();
  const base: Mount[] = sandbox.withDeno === false ? [] : [
    { kind: "ro-bind", source: tools.deno, dest: HELPER_DENO },
    ...[...new Set(tools.libraries.deno)].map((path): Mount => ({
      kind: "ro-bind",
      source: path,
      dest: path,
    })),
    // Deno needs /proc/self/exe; this procfs shows only the helper's own pid
    // namespace, and its environ holds only `env` below.
    { kind: "proc", dest: "/proc" },
    { kind: "dev", dest: "/dev" },
    // bwrap's /dev is an unbounded tmpfs: read-only, like a sandbox's.
    { kind: "remount-ro", dest: "/dev" },
    {
      kind: "tmpfs",
      dest: "/tmp",
      sizeBytes: (sandbox.tmpMb ?? 64) * 1024 * 1024,
      mode: 0o1777,
    },
  ];
  const mounts: Mount[] = [
    ...base,
    ...sandbox.mounts,
    // Nothing is writable but /tmp and the caller's own `bind` mounts.
    { kind: "remount-ro", dest: "/" },
  ];
  const bwrap = buildBwrapArgs({
    identity: { uid: 65534, gid: 65534 },
    mounts,
    env: sandbox.env,
    cwd: sandbox.cwd,
    hostname: "airlock-helper",
    network: sandbox.network,
    seccompFd: 3,
    command: sandbox.command,
  });
  const { hostUid, hostGid } = sandbox.identity ?? { hostUid: null };
  return {
    // The spawn itself drops to the helper's uid (and clears root's
    // supplementary groups) before the first exec, as for sandboxes.
    ...(hostUid !== null && hostUid !== undefined
      ? { uid: hostUid, gid: hostGid ?? hostUid }
      : {}),
    command: tools.sh,
    args: [
      "-c",
      // fd 3 carries the filter to bwrap; exit 125 (and no helper) if it
      // cannot be opened. PWD would carry the harness's directory along.
      'unset PWD OLDPWD; exec 3<"$1" || exit 125; shift; exec "$@"',
      "airlock-helper",
      filter.path,
      tools.bwrap,
      ...bwrap,
    ],
  };
}
