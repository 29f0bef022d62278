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
 * Everything in a request is the program's choice (Deno passes on the value
 * the program wrote), so the broker holds each line to {@link MAX_LINE}
 * characters without buffering more (a longer check is denied and recorded,
 * cut), records values cut to 1,024 characters, and keeps a run's records
 * within the run's audit bound (`_audit_bounds.ts`).
 *
 * Relative paths are resolved against the directory the Deno process is
 * in when it asks (read from its `/proc` entry), not the one it started
 * in: after `Deno.chdir("/inputs/data")`, `creds.txt` is
 * `/inputs/data/creds.txt`.
 *
 * @module
 */

import net from "node:net";
import { readSandboxPid } from "../runtime/launcher.ts";
import { boundedValue, detached, RunAuditLog } from "./_audit_bounds.ts";
import {
  type BrokerDecision,
  type BrokerGrants,
  type BrokerMode,
  decidePermission,
  resolvePath,
  shown,
} from "./permission_decision.ts";
import type {
  AuditEvent,
  PermissionEvent,
  PermissionKind,
} from "./run_result.ts";

// The decision itself lives in permission_decision.ts; re-exported for
// existing imports.
export {
  type BrokerDecision,
  type BrokerGrants,
  type BrokerMode,
  decidePermission,
} from "./permission_decision.ts";

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
  /**
   * Called once per new (kind, value, decision) record kept, with the live
   * record, and once per "and N more like this" summary. Not used when
   * `log` is given (the log's sink receives them).
   */
  onEvent?: (event: AuditEvent) => void;
  /**
   * The run's audit log, shared with the run's other recorders so one
   * bound covers them all; default: a log of the broker's own around
   * `onEvent`.
   */
  log?: RunAuditLog;
  /**
   * The directory the asking Deno process is in, given the pid from its
   * request (a pid in the sandbox's namespace, so the program's choice if
   * anyone but Deno writes to the socket); null when it cannot be told,
   * which denies relative paths. Default: `grants.cwd` (see
   * {@linkcode sandboxProcessCwd}).
   */
  processCwd?: (pid: number) => string | null;
}

/** A running broker. */
export interface PermissionBroker {
  /** The socket's host path. */
  readonly socketPath: string;
  /**
   * Records kept so far (live objects; counts grow until the run ends).
   * Emptied by `close()`: the run's log has them.
   */
  readonly events: readonly PermissionEvent[];
  /** Stops the broker. */
  close(): Promise<void>;
}

/**
 * Longest request line read whole, in characters. A path is at most 4,096
 * bytes, and Deno's JSON escapes a control byte as six characters: 64 KiB
 * holds any check a real path can make.
 *
 * @example Usage
 * ```ts
 * import { MAX_LINE } from "./permission_broker.ts";
 * console.log(MAX_LINE); // 65536
 * ```
 */
export const MAX_LINE = 64 * 1024;

/** What is kept of a longer line: the fields before the value, its start. */
const HEAD_CHARS = 8 * 1024;

/**
 * Replies the broker may have queued for a client that does not read them.
 * Deno asks one question at a time and waits for each answer; a backlog
 * means something else is writing (a flood meant to grow harness memory).
 */
const MAX_PENDING_REPLIES = 1024 * 1024;

const KINDS: ReadonlySet<string> = new Set<PermissionKind>([
  "read",
  "write",
  "net",
  "env",
  "run",
  "sys",
  "ffi",
  "import",
]);

/**
 * Reads the working directory of a process of a running sandbox, as the
 * sandbox sees it, from the host: the sandbox's own `/proc`, reached through
 * its pid 1 (whose host pid bwrap writes to the status file), names its
 * processes by the pids Deno puts in its requests. The sandbox cannot move
 * its `/proc` (read-only root, no mount syscalls).
 *
 * @param statusPath The run's bwrap status file.
 * @returns A reader for `BrokerOptions.processCwd`.
 *
 * @example Usage
 * ```ts ignore
 * const cwdOf = sandboxProcessCwd(statusPath);
 * console.log(cwdOf(2)); // "/inputs/data" after Deno.chdir("/inputs/data")
 * ```
 */
export function sandboxProcessCwd(
  statusPath: string,
): (pid: number) => string | null {
  let pid1: number | null = null;
  return (pid) => {
    if (!Number.isSafeInteger(pid) || pid < 1) return null;
    pid1 ??= readSandboxPid(statusPath);
    if (pid1 === null) return null;
    let cwd: string;
    try {
      cwd = Deno.readLinkSync(`/proc/${pid1}/root/proc/${pid}/cwd`);
    } catch {
      return null;
    }
    // A removed directory reads as "/path (deleted)": no path to decide on.
    return cwd.startsWith("/") && !cwd.endsWith(" (deleted)") ? cwd : null;
  };
}

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
  const log = options.log ??
    new RunAuditLog(options.onEvent ?? (() => {}), {
      sandboxId: options.sandboxId,
      runId: options.runId,
    });
  const events: PermissionEvent[] = [];
  // (kind, decision) -> value -> record. The value is the map key and the
  // record's field at once: one string, never a second copy.
  const index = new Map<string, Map<string | null, PermissionEvent>>();
  const record = (
    permission: string,
    value: string | null,
    answer: BrokerDecision,
    valueLength?: number,
  ) => {
    const now = new Date().toISOString();
    const kind =
      (KINDS.has(permission) ? permission : "unknown") as PermissionKind;
    const group = `${kind}\0${answer.decision}`;
    let values = index.get(group);
    if (!values) index.set(group, values = new Map());
    const bounded: { value: string | null; valueLength?: number } =
      value === null ? { value: null } : boundedValue(value);
    const existing = values.get(bounded.value);
    if (existing) {
      existing.count++;
      existing.lastTime = now;
      return;
    }
    const length = valueLength ?? bounded.valueLength;
    const event: PermissionEvent = {
      time: now,
      source: "broker",
      kind: "permission",
      sandboxId: options.sandboxId,
      runId: options.runId,
      permission: kind,
      value: bounded.value,
      ...(length !== undefined ? { valueLength: length } : {}),
      decision: answer.decision,
      reason: answer.reason,
      count: 1,
      firstTime: now,
      lastTime: now,
    };
    // Past the run's bound the attempt is counted, not kept.
    if (!log.record(event)) return;
    values.set(bounded.value, event);
    events.push(event);
  };
  const decide = (request: Record<string, unknown>): BrokerDecision => {
    const permission = typeof request.permission === "string"
      ? request.permission
      : "unknown";
    const value = typeof request.value === "string" ? request.value : null;
    let target = value;
    if (
      (permission === "read" || permission === "write") && value !== null &&
      !value.startsWith("/")
    ) {
      // Recorded and decided as the absolute path it refers to: "a.txt"
      // alone does not say which directory the program touched.
      const cwd = value.startsWith("<")
        ? "/"
        : options.processCwd
        ? options.processCwd(Number(request.pid))
        : options.grants.cwd ?? "/";
      if (cwd === null) {
        // Attack: after Deno.chdir, resolving against the starting
        // directory audits (and decides) a path the program did not touch.
        const answer: BrokerDecision = {
          decision: "deny",
          reason: `${permission} access to '${
            shown(value)
          }' is refused: the sandbox cannot tell which directory it is relative to; use an absolute path`,
        };
        record(permission, value, answer);
        return answer;
      }
      const tmp = options.grants.tmp;
      target = resolvePath(value, { cwd, ...(tmp ? { tmp } : {}) }) ??
        // Unresolvable (a placeholder, or climbing above "/"): decided as
        // it stands. A relative one keeps its directory in front: decided
        // bare, it would be resolved against the starting directory, not
        // the one the kernel resolves it against (after Deno.chdir).
        (value.startsWith("<") ? value : `${cwd === "/" ? "" : cwd}/${value}`);
    }
    const answer = decidePermission(
      options.grants,
      permission,
      target,
      options.mode,
    );
    record(permission, target, answer);
    return answer;
  };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.setEncoding("utf8");
    const reply = (id: unknown, answer: BrokerDecision) => {
      socket.write(
        JSON.stringify({ id, result: answer.decision, reason: answer.reason }) +
          "\n",
      );
      if (socket.writableLength > MAX_PENDING_REPLIES) socket.destroy();
    };
    socket.on(
      "data",
      lineReader((line) => {
        // Lines after a refused one in the same chunk are not answered.
        if (socket.destroyed) return;
        let request: unknown;
        try {
          request = JSON.parse(line);
        } catch {
          request = null;
        }
        if (typeof request !== "object" || request === null) {
          // Not from Deno, which writes JSON objects only: recorded, then
          // the connection ends (Deno would fail closed, exit 87).
          record("unknown", line, {
            decision: "deny",
            reason: "the broker cannot read this request: not a JSON object",
          });
          socket.destroy();
          return;
        }
        const fields = request as Record<string, unknown>;
        reply(fields.id, decide(fields));
      }, (head, length) => {
        if (socket.destroyed) return;
        // Attack: a multi-megabyte path (or name) in a permission check. It
        // ended the run with no record while lines were read whole; now only
        // the head is kept, the check is denied and recorded, cut, with its
        // length, and the program carries on (NotCapable).
        const over = readHead(head, length);
        const answer: BrokerDecision = {
          decision: "deny",
          reason:
            `${over.permission} access is refused: the check is ${length} characters long, over the ${MAX_LINE} a permission check may have`,
        };
        record(over.permission, over.value, answer, over.valueLength);
        if (over.id === null) socket.destroy();
        else reply(over.id, answer);
      }),
    );
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
        // A destroyed socket's handle can outlive it (Deno's node:net,
        // with a write pending), and with it these closures: they must
        // not keep the run's records alive.
        index.clear();
        events.length = 0;
      });
      return closing;
    },
  };
}

/**
 * Splits a socket's data into lines of at most {@link MAX_LINE}
 * characters. A longer line is not buffered: its first `HEAD_CHARS`
 * characters and its length go to `onOverlong` once it ends.
 */
function lineReader(
  onLine: (line: string) => void,
  onOverlong: (head: string, length: number) => void,
): (chunk: string) => void {
  let buffer = "";
  let overlong: { head: string; length: number } | null = null;
  return (chunk) => {
    while (chunk.length > 0) {
      const newline = chunk.indexOf("\n");
      const piece = newline === -1 ? chunk : chunk.slice(0, newline);
      chunk = newline === -1 ? "" : chunk.slice(newline + 1);
      if (overlong) {
        overlong.length += piece.length;
      } else if (buffer.length + piece.length > MAX_LINE) {
        overlong = {
          head: detached((buffer + piece).slice(0, HEAD_CHARS)),
          length: buffer.length + piece.length,
        };
        buffer = "";
      } else {
        buffer += piece;
      }
      if (newline === -1) return;
      if (overlong) {
        const { head, length } = overlong;
        overlong = null;
        onOverlong(head, length);
      } else {
        const line = buffer;
        buffer = "";
        onLine(line);
      }
    }
  };
}

/**
 * What can be read from the head of an overlong request: Deno writes `id`
 * and `permission` before `value`, so they are whole; the value is its
 * decoded start. `valueLength` counts the value's characters as sent.
 */
function readHead(head: string, length: number): {
  id: number | null;
  permission: string;
  value: string | null;
  valueLength?: number;
} {
  const id = head.match(/"id":(\d{1,15})[,}]/)?.[1];
  const permission = head.match(/"permission":"([a-z]{1,16})"/)?.[1] ??
    "unknown";
  const marker = '"value":"';
  const at = head.indexOf(marker);
  if (at === -1) {
    return { id: id ? Number(id) : null, permission, value: null };
  }
  // Up to the last complete character or escape: a cut `\u00` would not
  // parse.
  const start = at + marker.length;
  let end = start;
  for (let i = start; i < head.length;) {
    const ch = head[i];
    if (ch === '"') break;
    const step = ch === "\\" ? (head[i + 1] === "u" ? 6 : 2) : 1;
    if (i + step > head.length) break;
    i += step;
    end = i;
  }
  let value: string | null = null;
  try {
    value = JSON.parse(`"${head.slice(start, end)}"`);
  } catch {
    // not a JSON string after all: recorded without a value
  }
  return {
    id: id ? Number(id) : null,
    permission,
    value,
    // Everything after the value's opening quote but its closing `"}`.
    valueLength: length - start - 2,
  };
}
