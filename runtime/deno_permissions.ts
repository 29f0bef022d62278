/**
 * Deno's permission flags for a sandboxed program: the second wall behind the
 * namespaces. Even if a mount were wrong, Deno itself refuses what the
 * policy did not grant.
 *
 * @module
 */

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
   * Environment variables the program may read. Only placeholder names are
   * ever listed: their values are opaque stand-ins, never secrets.
   */
  env?: readonly string[];
}

/**
 * Grants that are never given, whatever the policy says: each one is a way
 * around the sandbox (run: spawn anything; ffi: native code; sys: host
 * information; all: everything). The flags builder adds the matching
 * `--deny-*`, which beats any allow. The environment is denied too unless
 * placeholder names are granted (the sandbox's environment holds nothing
 * else: bwrap clears it).
 */
export const NEVER_GRANTED = ["run", "ffi", "sys"] as const;

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
  if (grants.env && grants.env.length > 0) list("env", grants.env);
  else flags.push("--deny-env");
  for (const kind of NEVER_GRANTED) flags.push(`--deny-${kind}`);
  return flags;
}
