/**
 * What the permission broker answers: the decision on one Deno permission
 * check, from the run's grants alone (no I/O), with the reason the program
 * sees in `NotCapable` on a deny. Paths are normalised before they are
 * matched; reads and writes are allowed only under a granted path, network
 * only to an allowed host, environment variables when the run's grant says
 * (the sandbox's own environment holds only what airlock put there), system
 * information only of the granted kinds, and subprocesses, FFI, changing
 * the scheduling priority and remote imports never.
 * `permission_broker.ts` serves these answers on the run's socket.
 *
 * @module
 */

import {
  SYSTEM_INFO_KINDS,
  type SystemInfoKind,
} from "../runtime/deno_permissions.ts";
import { detached } from "./_audit_bounds.ts";
import { normalisePath } from "./paths.ts";

/** What a run may do, in sandbox terms (the same grants as Deno's flags). */
export interface BrokerGrants {
  /** Readable paths (and everything below them). */
  read: readonly string[];
  /** Writable paths (and everything below them). */
  write: readonly string[];
  /** `host:port`, `*.suffix:port` or bare host entries, or "all". */
  net: readonly string[] | "all";
  /**
   * Readable environment variable names, or "all": the sandbox's whole
   * environment, which holds only airlock's variables (an unset name then
   * reads as undefined, and listing shows those variables).
   */
  env: readonly string[] | "all";
  /** Kinds of system information the program may read; default none. */
  sys?: readonly SystemInfoKind[];
  /**
   * Whether the sandbox answers name lookups itself, from the policy alone
   * (transparent egress): a lookup (a net check without a port) of any
   * name is then allowed, and the connection that follows is checked with
   * its port. Default false.
   */
  lookups?: boolean;
  /**
   * The program's starting directory: Deno sends paths as the program wrote
   * them, so relative ones are resolved against the directory the program
   * is in. The broker reads that from the process when it can
   * (`BrokerOptions.processCwd`); this is the fallback. (`Deno.chdir`
   * needs a read grant for its target, so the cwd stays inside the grants;
   * inputs may not hold symlinks leading out of them, see `_run/inputs.ts`.)
   */
  cwd?: string;
  /** The directory Deno means by `<TMP>` (its TMPDIR); default `/tmp`. */
  tmp?: string;
}

/** `enforce` answers by the grants; `learn` allows and records almost all. */
export type BrokerMode = "enforce" | "learn";

/** A broker's answer. */
export interface BrokerDecision {
  /** Allow or deny. */
  decision: "allow" | "deny";
  /** Why; shown to the program on a deny. */
  reason: string;
}

/**
 * Decides one permission check.
 *
 * @param grants The run's grants.
 * @param permission What Deno asks for.
 * @param value The path, `host:port`, name or command; null for "any".
 * @param mode `learn` allows everything but running programs and FFI.
 * @returns The decision and its reason.
 *
 * @example Usage
 * ```ts
 * import { decidePermission } from "./permission_decision.ts";
 * const grants = { read: ["/scratch"], write: [], net: [], env: [] };
 * console.log(decidePermission(grants, "read", "/etc/passwd").decision); // "deny"
 * ```
 */
export function decidePermission(
  grants: BrokerGrants,
  permission: string,
  value: string | null,
  mode: BrokerMode = "enforce",
): BrokerDecision {
  if (mode === "learn") {
    // Learning never runs programs or loads native code: those would leave
    // the broker's view (and FFI the sandbox's).
    if (permission === "run" || permission === "ffi") {
      return {
        decision: "deny",
        reason: `learn mode records but never allows '${permission}'`,
      };
    }
    return { decision: "allow", reason: "learn mode: allowed and recorded" };
  }
  switch (permission) {
    case "read":
    case "write": {
      const list = permission === "read" ? grants.read : grants.write;
      if (value === null) {
        return {
          decision: "deny",
          reason: `${permission} access to the whole filesystem is not granted`,
        };
      }
      const path = resolvePath(value, grants);
      // Paths are normalised first: "/scratch/../etc/passwd" must not pass
      // as a path under "/scratch". One that climbs above "/" is refused
      // (null), never clamped: "/../scratch/x" is not taken as "/scratch/x".
      if (path !== null && list.some((grant) => within(path, grant))) {
        return {
          decision: "allow",
          reason: `under a granted ${permission} path`,
        };
      }
      return {
        decision: "deny",
        reason: list.length === 0
          ? `${permission} access to '${
            shown(value)
          }' is not granted: the sandbox has no ${permission}able paths`
          : `${permission} access to '${shown(value)}' is not granted: only ${
            list.join(", ")
          }`,
      };
    }
    case "net": {
      if (grants.net === "all") {
        return { decision: "allow", reason: "the policy allows any host" };
      }
      if (
        value !== null && grants.net.some((grant) => netMatches(grant, value))
      ) {
        return { decision: "allow", reason: "host in the allowlist" };
      }
      // A lookup of a refused name (exfiltration in the name): answered
      // inside the sandbox and audited there, it carries nothing out; the
      // connect that follows is refused below with this reason, instead of
      // a bare getaddrinfo failure that names nothing.
      if (
        grants.lookups === true && value !== null &&
        splitHostPort(value)?.port === null
      ) {
        return {
          decision: "allow",
          reason: "a name lookup, answered inside the sandbox from the policy",
        };
      }
      return {
        decision: "deny",
        reason: `network access to '${
          value === null ? "any host" : shown(value)
        }' is not in the sandbox's allowlist (airlock's network policy)`,
      };
    }
    case "env": {
      // The whole environment may be granted because of what it holds:
      // bwrap clears it and airlock sets only proxy, TLS and temp settings,
      // placeholders and the policy's plain variables; no secret is ever
      // in it (tests/isolation_env_test.ts). Reading it tells nothing else.
      if (grants.env === "all") {
        return {
          decision: "allow",
          reason: "the sandbox's own environment (airlock's variables only)",
        };
      }
      if (value !== null && grants.env.includes(value)) {
        return { decision: "allow", reason: "granted variable" };
      }
      return {
        decision: "deny",
        reason: value === null
          ? "the environment cannot be listed in the sandbox"
          : `environment variable '${
            shown(value)
          }' is not available in the sandbox`,
      };
    }
    case "run":
      return {
        decision: "deny",
        reason: "running subprocesses is never allowed in the sandbox",
      };
    case "ffi":
      return {
        decision: "deny",
        reason: "loading native libraries is never allowed in the sandbox",
      };
    case "sys": {
      if (value === "setPriority") {
        // Not information: it changes the scheduler. Never granted.
        return {
          decision: "deny",
          reason:
            "changing a process's scheduling priority is never allowed in the sandbox",
        };
      }
      if (
        value !== null &&
        (grants.sys as readonly string[] | undefined)?.includes(value)
      ) {
        return {
          decision: "allow",
          reason: "system information the policy allows ('system')",
        };
      }
      const known = value !== null &&
        (SYSTEM_INFO_KINDS as readonly string[]).includes(value);
      return {
        decision: "deny",
        reason: value === null
          ? "system information of every kind is not available in the sandbox"
          : known
          ? `system information '${value}' is refused by the policy's 'system' setting`
          : `system information '${
            shown(value)
          }' is not available in the sandbox`,
      };
    }
    case "import":
      return {
        decision: "deny",
        reason: `remote imports ('${
          value === null ? "any" : shown(value)
        }') are not allowed: the sandbox never fetches code`,
      };
    default:
      return {
        decision: "deny",
        reason: `unknown permission '${shown(permission)}' is denied`,
      };
  }
}

/** Longest value quoted in a reason (the program sees it in NotCapable). */
const REASON_VALUE_CHARS = 200;

/**
 * A value as quoted in a reason: a long one is cut, and detached from the
 * original so the reason (kept in the record) never holds it all.
 *
 * @param value A value the program chose.
 * @returns At most 200 of its characters, and its length when cut.
 *
 * @example Usage
 * ```ts
 * import { shown } from "./permission_decision.ts";
 * console.log(shown("a".repeat(300)).endsWith("… (300 characters)")); // true
 * ```
 */
export function shown(value: string): string {
  return value.length <= REASON_VALUE_CHARS
    ? value
    : `${
      detached(value.slice(0, REASON_VALUE_CHARS))
    }… (${value.length} characters)`;
}

/**
 * The absolute sandbox path a read or write check names: a relative one
 * resolved against `cwd`, `<TMP>` as the temp directory.
 *
 * @param value The path as Deno sent it.
 * @param grants The directories to resolve against.
 * @returns The normal absolute path, or null for another placeholder or a
 *   path that climbs above "/" (refused, never clamped).
 *
 * @example Usage
 * ```ts
 * import { resolvePath } from "./permission_decision.ts";
 * console.log(resolvePath("a.txt", { cwd: "/scratch" })); // "/scratch/a.txt"
 * console.log(resolvePath("/../etc", {})); // null
 * ```
 */
export function resolvePath(
  value: string,
  grants: Pick<BrokerGrants, "cwd" | "tmp">,
): string | null {
  // Deno names some places by placeholder: `<TMP>` (makeTempDir) is the
  // temp directory, never a relative path under the cwd. Others are refused.
  if (value.startsWith("<")) {
    const rest = value.match(/^<TMP>(\/.*)?$/);
    return rest
      ? normalisePath(`${grants.tmp ?? "/tmp"}${rest[1] ?? ""}`)
      : null;
  }
  return normalisePath(value, { cwd: grants.cwd ?? "/" });
}

function within(path: string, grant: string): boolean {
  const root = grant.endsWith("/") && grant.length > 1
    ? grant.slice(0, -1)
    : grant;
  return path === root || path.startsWith(root === "/" ? "/" : `${root}/`);
}

/**
 * Deno's net grant semantics: `host` (any port), `host:port`, `*.suffix`;
 * and a check without a port (a name lookup: `dns.lookup`, Node clients
 * before they connect) matches a host granted on any port: looking a name
 * up connects nowhere (the sandbox answers it from the policy).
 */
function netMatches(grant: string, value: string): boolean {
  const target = splitHostPort(value);
  const allowed = splitHostPort(grant);
  if (!target || !allowed) return false;
  if (
    allowed.port !== null && target.port !== null &&
    allowed.port !== target.port
  ) return false;
  const host = target.host.toLowerCase();
  const pattern = allowed.host.toLowerCase();
  if (pattern.startsWith("*.")) {
    const suffix = pattern.slice(2);
    return host === suffix || host.endsWith(`.${suffix}`);
  }
  return host === pattern;
}

function splitHostPort(
  text: string,
): { host: string; port: number | null } | null {
  const bracket = text.match(/^\[([^\]]+)\](?::(\d+))?$/);
  if (bracket) {
    return { host: bracket[1]!, port: bracket[2] ? Number(bracket[2]) : null };
  }
  const colon = text.lastIndexOf(":");
  if (colon !== -1 && text.indexOf(":") === colon) {
    const port = Number(text.slice(colon + 1));
    if (!Number.isInteger(port)) return null;
    return { host: text.slice(0, colon), port };
  }
  return { host: text, port: null };
}
