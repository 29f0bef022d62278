/**
 * The permission broker: Deno asks it about EVERY permission check a
 * sandboxed program makes (`DENO_PERMISSION_BROKER_PATH`, one unix socket per
 * run, bind-mounted into the sandbox). The broker replaces Deno's `--allow-*`
 * flags entirely, so it enforces exactly the run's grants, and it records
 * each check: what the program tried, what was refused, and why.
 *
 * Protocol (newline-delimited JSON, one request at a time):
 * `{"v":1,"pid":..,"id":N,"datetime":"..","permission":"read","value":"/etc/hostname"}`
 * answered by `{"id":N,"result":"allow"|"deny","reason":"..."}`. A deny shows
 * up in the program as `NotCapable: <reason>`. Deno fails closed (exit 87) if
 * the socket is missing, closes, or answers garbage.
 *
 * @module
 */

import net from "node:net";
import type { PermissionEvent, PermissionKind } from "./run_result.ts";

/** What a run may do, in sandbox terms (the same grants as Deno's flags). */
export interface BrokerGrants {
  /** Readable paths (and everything below them). */
  read: readonly string[];
  /** Writable paths (and everything below them). */
  write: readonly string[];
  /** `host:port`, `*.suffix:port` or bare host entries, or "all". */
  net: readonly string[] | "all";
  /** Readable environment variable names. */
  env: readonly string[];
  /**
   * The program's working directory: Deno sends paths as the program wrote
   * them, so relative ones are resolved against it. (A later `Deno.chdir`
   * needs a read grant for its target, so the cwd stays inside the grants;
   * inputs may not hold symlinks leading out of them, see `_inputs.ts`.)
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
 * import { decidePermission } from "./permission_broker.ts";
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
      // as a path under "/scratch".
      if (path !== null && list.some((grant) => within(path, grant))) {
        return {
          decision: "allow",
          reason: `under a granted ${permission} path`,
        };
      }
      return {
        decision: "deny",
        reason: list.length === 0
          ? `${permission} access to '${value}' is not granted: the sandbox has no ${permission}able paths`
          : `${permission} access to '${value}' is not granted: only ${
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
      return {
        decision: "deny",
        reason: `network access to '${
          value ?? "any host"
        }' is not in the sandbox's allowlist`,
      };
    }
    case "env": {
      if (value !== null && grants.env.includes(value)) {
        return { decision: "allow", reason: "placeholder variable" };
      }
      return {
        decision: "deny",
        reason: value === null
          ? "the environment cannot be listed in the sandbox"
          : `environment variable '${value}' is not available in the sandbox`,
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
    case "sys":
      return {
        decision: "deny",
        reason: `system information ('${
          value ?? "all"
        }') is not available in the sandbox`,
      };
    case "import":
      return {
        decision: "deny",
        reason: `remote imports ('${
          value ?? "any"
        }') are not allowed: the sandbox never fetches code`,
      };
    default:
      return {
        decision: "deny",
        reason: `unknown permission '${permission}' is denied`,
      };
  }
}

function resolvePath(
  value: string,
  grants: Pick<BrokerGrants, "cwd" | "tmp">,
): string | null {
  // Deno names some places by placeholder: `<TMP>` (makeTempDir) is the
  // temp directory, never a relative path under the cwd. Others are refused.
  if (value.startsWith("<")) {
    const rest = value.match(/^<TMP>(\/.*)?$/);
    return rest ? normalise(`${grants.tmp ?? "/tmp"}${rest[1] ?? ""}`) : null;
  }
  return normalise(
    value.startsWith("/") ? value : `${grants.cwd ?? "/"}/${value}`,
  );
}

function normalise(path: string): string | null {
  if (!path.startsWith("/")) return null;
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return "/" + parts.join("/");
}

function within(path: string, grant: string): boolean {
  const root = grant.endsWith("/") && grant.length > 1
    ? grant.slice(0, -1)
    : grant;
  return path === root || path.startsWith(root === "/" ? "/" : `${root}/`);
}

/** Deno's net grant semantics: `host` (any port), `host:port`, `*.suffix`. */
function netMatches(grant: string, value: string): boolean {
  const target = splitHostPort(value);
  const allowed = splitHostPort(grant);
  if (!target || !allowed) return false;
  if (allowed.port !== null && allowed.port !== target.port) return false;
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

/** Options for {@linkcode startPermissionBroker}. */
export interface BrokerOptions {
  /** Host path of the socket to create. */
  socketPath: string;
  /** The run's grants. */
  grants: BrokerGrants;
  /** Enforce (default) or learn. */
  mode?: BrokerMode;
  /** Ids for the records. */
  sandboxId: string;
  /** Ids for the records. */
  runId: string;
  /** Host uid that must be able to connect (the sandbox's); null: keep. */
  ownerUid: number | null;
  /** Called once per new (kind, value, decision), with the live record. */
  onEvent?: (event: PermissionEvent) => void;
}

/** A running broker. */
export interface PermissionBroker {
  /** The socket's host path. */
  readonly socketPath: string;
  /** Records so far (live objects; counts grow until the run ends). */
  readonly events: readonly PermissionEvent[];
  /** Stops the broker. */
  close(): Promise<void>;
}

/** Longest request line accepted (a path is at most 4096 bytes). */
const MAX_LINE = 16 * 1024;

/**
 * Starts a broker for one run. Fails (throws) if the socket cannot be
 * created: the caller must not start the run then (fail closed).
 *
 * @param options Socket, grants and ids.
 * @returns The broker.
 *
 * @example Usage
 * ```ts ignore
 * const broker = await startPermissionBroker({ socketPath, grants, sandboxId, runId, ownerUid: null });
 * await broker.close();
 * ```
 */
export async function startPermissionBroker(
  options: BrokerOptions,
): Promise<PermissionBroker> {
  const events: PermissionEvent[] = [];
  const index = new Map<string, PermissionEvent>();
  const record = (
    permission: string,
    value: string | null,
    answer: BrokerDecision,
  ) => {
    const now = new Date().toISOString();
    const key = `${permission}\0${value ?? "\u0001"}\0${answer.decision}`;
    const existing = index.get(key);
    if (existing) {
      existing.count++;
      existing.lastTime = now;
      return;
    }
    const event: PermissionEvent = {
      time: now,
      source: "broker",
      kind: "permission",
      sandboxId: options.sandboxId,
      runId: options.runId,
      permission: permission as PermissionKind,
      value,
      decision: answer.decision,
      reason: answer.reason,
      count: 1,
      firstTime: now,
      lastTime: now,
    };
    index.set(key, event);
    events.push(event);
    try {
      options.onEvent?.(event);
    } catch {
      // A failing listener must not stop the answers Deno waits for.
    }
  };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let buffer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buffer += chunk;
      if (buffer.length > MAX_LINE && !buffer.includes("\n")) {
        socket.destroy(); // Deno then fails closed (exit 87)
        return;
      }
      let newline: number;
      while ((newline = buffer.indexOf("\n")) !== -1) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        let request: { id?: unknown; permission?: unknown; value?: unknown };
        try {
          request = JSON.parse(line);
        } catch {
          socket.destroy();
          return;
        }
        const permission = typeof request.permission === "string"
          ? request.permission
          : "unknown";
        const value = typeof request.value === "string" ? request.value : null;
        const answer = decidePermission(
          options.grants,
          permission,
          value,
          options.mode,
        );
        // Recorded as the absolute path it refers to: "a.txt" alone would not
        // say which directory the program touched.
        const shown = (permission === "read" || permission === "write") &&
            value !== null && !value.startsWith("/")
          ? resolvePath(value, options.grants) ?? value
          : value;
        record(permission, shown, answer);
        socket.write(
          JSON.stringify({
            id: request.id,
            result: answer.decision,
            reason: answer.reason,
          }) + "\n",
        );
      }
    });
  });
  server.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.socketPath, () => resolve());
  });
  await Deno.chmod(options.socketPath, 0o600);
  if (options.ownerUid !== null) {
    await Deno.chown(options.socketPath, options.ownerUid, options.ownerUid);
  }
  let closing: Promise<void> | null = null;
  return {
    socketPath: options.socketPath,
    events,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
