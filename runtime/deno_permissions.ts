/**
 * Deno's permission flags for a sandboxed program: the second wall behind the
 * namespaces. Even if a mount were wrong, Deno itself refuses what the
 * policy did not grant.
 *
 * @module
 */

/**
 * The kinds of system information Deno guards with its `sys` permission
 * that a sandbox may be given: each one reads something, none changes
 * anything. Inside the namespaces they describe the sandbox (hostname
 * "sandbox", uid/gid 65534, an empty network namespace with only `lo`)
 * or the machine as any process sees it (kernel release, uptime, load,
 * memory, CPUs). `setPriority` is not here: it changes the scheduler, it
 * does not read anything, and it is never granted.
 *
 * @example Usage
 * ```ts
 * import { SYSTEM_INFO_KINDS } from "./deno_permissions.ts";
 * console.log(SYSTEM_INFO_KINDS.includes("hostname")); // true
 * ```
 */
export const SYSTEM_INFO_KINDS = [
  "hostname",
  "osRelease",
  "osUptime",
  "loadavg",
  "networkInterfaces",
  "systemMemoryInfo",
  "cpus",
  "uid",
  "gid",
  "getegid",
  "username",
  "userInfo",
  "homedir",
  "statfs",
  "getPriority",
] as const;

/** One kind of system information (see {@linkcode SYSTEM_INFO_KINDS}). */
export type SystemInfoKind = typeof SYSTEM_INFO_KINDS[number];

/** What a program may touch, in sandbox paths and host names. */
export interface DenoGrants {
  /** Paths the program may read (inputs, scratch). */
  read: readonly string[];
  /** Paths the program may write (scratch). */
  write: readonly string[];
  /**
   * `host[:port]` entries the program may connect to (through the proxy), or
   * "all" when the injector alone decides (allow-all policies).
   */
  net: readonly string[] | "all";
  /**
   * Environment variables the program may read, or "all". The sandbox's
   * environment holds only what airlock put there (bwrap clears it; no
   * secret is ever among it: placeholders stand in for them), so the
   * sandbox gives "all": unset names read as undefined, as on any machine.
   */
  env?: readonly string[] | "all";
  /** Kinds of system information the program may read; default none. */
  sys?: readonly SystemInfoKind[];
}

/**
 * Grants that are never given, whatever the policy says: each one is a way
 * around the sandbox (run: spawn anything; ffi: native code). The flags
 * builder adds the matching `--deny-*`, which beats any allow. System
 * information is denied too unless kinds are granted, and then only those
 * (never `setPriority`).
 */
export const NEVER_GRANTED = ["run", "ffi"] as const;

/**
 * Builds the permission flags for `deno run`.
 *
 * @param grants What the policy grants.
 * @returns Flags, starting with `--no-prompt`.
 * @throws {TypeError} If an entry contains a comma (Deno's list separator,
 *   which would split one grant into two) or a NUL.
 *
 * @example Usage
 * ```ts
 * import { denoPermissionFlags } from "./deno_permissions.ts";
 * const flags = denoPermissionFlags({ read: ["/scratch"], write: ["/scratch"], net: [] });
 * console.log(flags.join(" "));
 * ```
 */
export function denoPermissionFlags(grants: DenoGrants): string[] {
  const flags = [
    // Never stop to ask a (non-existent) user: a missing grant is an error.
    "--no-prompt",
  ];
  const list = (kind: string, items: readonly string[]) => {
    if (items.length === 0) return;
    for (const item of items) {
      if (item.includes(",") || item.includes("\0") || item === "") {
        throw new TypeError(
          `Cannot grant ${kind} access to '${item}' as it is empty or contains a comma or NUL`,
        );
      }
    }
    flags.push(`--allow-${kind}=${[...new Set(items)].join(",")}`);
  };
  list("read", grants.read);
  list("write", grants.write);
  if (grants.net === "all") flags.push("--allow-net");
  else list("net", grants.net);
  if (grants.env === "all") flags.push("--allow-env");
  else if (grants.env && grants.env.length > 0) list("env", grants.env);
  else flags.push("--deny-env");
  for (const kind of NEVER_GRANTED) flags.push(`--deny-${kind}`);
  for (const kind of grants.sys ?? []) {
    // Attack: a kind smuggled past the types ("setPriority", or a list
    // split by a comma) would widen the grant.
    if (!(SYSTEM_INFO_KINDS as readonly string[]).includes(kind)) {
      throw new TypeError(
        `Cannot grant system information '${kind}' as it is not one of ${
          SYSTEM_INFO_KINDS.join(", ")
        }`,
      );
    }
  }
  // Only the listed kinds: Deno refuses every other one (--no-prompt).
  if (grants.sys && grants.sys.length > 0) list("sys", grants.sys);
  else flags.push("--deny-sys");
  return flags;
}
