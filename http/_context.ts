/**
 * What the HTTP API's route modules share: the hono environment (who is
 * calling, set by _auth.ts), the server's state made once by `createApp`,
 * the caller's sandbox by id ({@linkcode lookup}: another caller's is a
 * 404) and the validated body of a request ({@linkcode readBody}).
 *
 * @module
 */

import type { Context } from "hono";
import type { z } from "zod";
import { BundleError } from "../harness/bundle/bundle.ts";
import type { AuditEvent } from "../harness/run_result.ts";
import type { Sandbox, SandboxOptions } from "../harness/sandbox.ts";
import type { Ceilings, ClientRules } from "./ceilings.ts";
import type { RunScheduler } from "./_scheduler.ts";
import type { ServerMetrics } from "./metrics.ts";
import { nodeOfSandboxId } from "./node.ts";
import { ApiError, deleted } from "./_errors.ts";

/** Who is calling: one per token (or the anonymous loopback caller). */
export interface Caller {
  /** The token's name. */
  name: string;
  /** Its sandbox limit (`ceilings.sandboxes`). */
  maxSandboxes: number;
  /** Its ceilings. */
  ceilings: Ceilings;
  /** Sandboxes alive or being created. */
  count: number;
}

/** The app's hono environment. */
export type AppEnv = {
  Bindings: Partial<Deno.ServeHandlerInfo>;
  Variables: { caller: Caller };
};

/** A sandbox the app manages. */
export interface ManagedSandbox {
  /** The sandbox. */
  readonly sandbox: Sandbox;
  /** Name of the token that created it. */
  readonly owner: string;
  /** The label given at creation. */
  readonly name: string | null;
  /** ISO time of creation. */
  readonly createdAt: string;
}

/** A managed sandbox with what the routes keep about it. */
export interface Entry extends ManagedSandbox {
  /** Who created it (its count holds this sandbox). */
  caller: Caller;
  /** Audit listeners of streaming runs, by run id. */
  listeners: Map<string, (event: AuditEvent) => void>;
}

/** The server's state: made once by `createApp`, shared by every route. */
export interface AppState {
  /** Where internal errors are logged. */
  readonly log: (message: string) => void;
  /** The operator's sandbox options (`AppOptions.sandboxDefaults`). */
  readonly defaults: Partial<Omit<SandboxOptions, "secrets">>;
  /** Policy parts that reach the server which clients may use. */
  readonly rules: ClientRules;
  /** How `${env:NAME}` resolves; undefined: the server's environment. */
  readonly env: SandboxOptions["env"] | undefined;
  /** The operator's upstream CA files: in every policy, never shown. */
  readonly operatorCas: readonly string[];
  /** Run slots shared by every caller. */
  readonly scheduler: RunScheduler;
  /** Live sandboxes by id. */
  readonly registry: Map<string, Entry>;
  /** Sandboxes being created (shutdown waits for them). */
  readonly pending: Set<Promise<unknown>>;
  /** Set once shutdown has begun: no new sandboxes. */
  closing: Promise<void> | null;
  /** This node's name (in every sandbox id it makes), or null for none. */
  readonly node: string | null;
  /** Sandboxes alive at once on this node (Infinity: no node ceiling). */
  readonly maxNodeSandboxes: number;
  /** Set by `drain()`: no new sandboxes or runs; live runs finish. */
  draining: boolean;
  /** The node's counters (`GET /metrics`). */
  readonly metrics: ServerMetrics;
  /**
   * Where run answers past their in-memory share wait for their client:
   * made on first use, private to the server (0700), removed at shutdown.
   */
  spoolDirectory(): Promise<string>;
}

/**
 * The caller's sandbox named in the path (another caller's is a 404).
 *
 * @param state The server's state.
 * @param c The request's context (`:id` in its route).
 * @returns The sandbox's entry.
 *
 * @example Usage
 * ```ts ignore
 * import { lookup } from "./_context.ts";
 * app.get("/sandboxes/:id/audit", (c) =>
 *   c.json({ events: lookup(state, c).sandbox.auditTrail }));
 * ```
 */
export function lookup(state: AppState, c: Context<AppEnv>): Entry {
  const id = c.req.param("id") ?? "";
  const node = nodeOfSandboxId(id);
  if (state.node !== null && node !== null && node !== state.node) {
    // Said from the id alone (no existence oracle): the router sent it to
    // the wrong node, or the client called a node directly.
    throw new ApiError(
      421,
      "wrong_node",
      `Cannot find sandbox '${id}' here: it lives on node '${node}', this is '${state.node}'; send its requests through the router, which routes by the node in the id`,
    );
  }
  const entry = state.registry.get(id);
  // The same answer for "absent" and "someone else's": no existence oracle.
  if (!entry || entry.caller !== c.get("caller")) {
    throw new ApiError(404, "not_found", `Cannot find sandbox '${id}'`);
  }
  return entry;
}

/**
 * Runs `fn`; a sandbox deleted meanwhile is a 404, not an internal error.
 *
 * @param entry The sandbox `fn` uses.
 * @param fn The operation.
 * @returns What `fn` returns.
 *
 * @example Usage
 * ```ts ignore
 * import { whileOpen } from "./_context.ts";
 * const child = await whileOpen(entry, () => entry.sandbox.spawn({ code }));
 * ```
 */
export async function whileOpen<T>(
  entry: Entry,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (entry.sandbox.closed && !(error instanceof BundleError)) {
      throw deleted(entry.sandbox.id);
    }
    throw error;
  }
}

/**
 * Reads and validates a JSON body. Problems inside `deferred` (the policy)
 * are left to the Sandbox API, whose PolicyError lists them by path with
 * clearer messages than the raw schema issues.
 *
 * @param c The request's context.
 * @param schema The body's schema (schemas.ts).
 * @param deferred The field whose problems the Sandbox API reports, if any.
 * @returns The body; `deferred` as sent, without the schema's defaults.
 *
 * @example Usage
 * ```ts ignore
 * import { readBody } from "./_context.ts";
 * import { RunRequestSchema } from "./schemas.ts";
 * const body = await readBody(c, RunRequestSchema, null);
 * ```
 */
export async function readBody<S extends z.ZodType>(
  c: Context<AppEnv>,
  schema: S,
  deferred: string | null,
): Promise<z.output<S>> {
  const text = await c.req.text();
  let value: unknown = {};
  if (text.trim() !== "") {
    // Requiring a JSON type makes every cross-site browser request a
    // preflighted one, which this server never approves (CSRF).
    const type = c.req.header("content-type") ?? "";
    if (!/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(type)) {
      throw new ApiError(
        415,
        "unsupported_media_type",
        "Send the body as JSON with 'Content-Type: application/json'",
      );
    }
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new ApiError(
        400,
        "invalid_json",
        `The body is not valid JSON: ${(error as Error).message}`,
      );
    }
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) {
    if (!deferred || !isRecord(value) || !(deferred in value)) {
      return parsed.data;
    }
    // The deferred part as sent, not with the schema's defaults filled in:
    // limits the client left out take the server's defaults, not the
    // policy's.
    return {
      ...(parsed.data as Record<string, unknown>),
      [deferred]: value[deferred],
    } as z.output<S>;
  }
  const issues = parsed.error.issues;
  if (deferred && issues.every((i) => i.path[0] === deferred)) {
    // Every other field is valid as sent (they have no defaults).
    return value as z.output<S>;
  }
  throw new ApiError(400, "invalid_request", "The request body is invalid", {
    issues: issues.map((i) => ({
      path: i.path.map(String).join("."),
      message: i.message,
    })),
  });
}

/**
 * Whether `value` is a plain JSON object (not null, not an array).
 *
 * @param value Anything parsed from JSON.
 * @returns Whether it is a record.
 *
 * @example Usage
 * ```ts
 * import { isRecord } from "./_context.ts";
 * console.log(isRecord({}), isRecord([])); // true false
 * ```
 */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
