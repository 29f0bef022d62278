/**
 * The one record a proxied request (or WebSocket upgrade) carries through
 * the phases of `handleRequest` (see `handle.ts`): the request as the program sent
 * it, the binding, the policy decision, what was injected and the audit
 * state. Each phase reads what the ones before it set and adds its own part.
 *
 * Also the two ways an exchange leaves a trace: `record` (an audit event for
 * this request, located where the program asked to go) and `refuse` (a
 * refusal to the program plus its record).
 *
 * @module
 */

import { type EgressEvent, redactQuery } from "../audit.ts";
import { auditEvent } from "../_audit_event.ts";
import type { BufferedReader, ByteChannel } from "../_channel.ts";
import type { BodyFraming, Headers1, RequestHead } from "../http1.ts";
import type { CompiledRule, Decision } from "../network_policy.ts";
import {
  resolveTarget,
  type Target,
  type TargetRefusal,
  type Tunnel,
} from "../_request_target.ts";
import { type RefusalCode, writeRefusal } from "../_responses.ts";
import type { ActivePolicy, SessionContext } from "../session_context.ts";
import { isWebSocketUpgrade, wantsClose } from "../_upstream_request.ts";

/** A request as it arrived, before anything was decided about it. */
export interface Received {
  /** The request head, as the program sent it. */
  readonly request: RequestHead;
  /** The program's connection, positioned at the request's body. */
  readonly reader: BufferedReader;
  /** Where answers to the program go. */
  readonly client: ByteChannel;
  /** The CONNECT tunnel the request came through, if any. */
  readonly tunnel: Tunnel | null;
  /** The binding (policy, audit, pool); its `exchange` holds the run's record. */
  readonly ctx: SessionContext;
  /** `performance.now()` when handling began (for the audit's timing). */
  readonly started: number;
  /** Whether the request is a WebSocket upgrade. */
  readonly websocket: boolean;
  /** The target the program asked for, or why it cannot be one. */
  readonly resolved: Target | TargetRefusal;
  /** The scheme the audit records (`ws`/`wss` for upgrades). */
  readonly scheme: EgressEvent["scheme"];
}

/** A request the policy allowed: what every later phase works on. */
export interface ProxyExchange extends Received {
  /** The decided target (the upstream is always this one). */
  readonly target: Target;
  /** The request body's framing. */
  readonly framing: BodyFraming;
  /** The policy in force when the request was decided. */
  readonly policy: ActivePolicy;
  /** The allowlist entry that allowed the target, with its rules. */
  readonly decision: Extract<Decision, { allowed: true }>;
  /** Whether the upstream is reached over TLS. */
  readonly secure: boolean;
  /** Set by the rules phase: the transform rules that apply. */
  transforms: CompiledRule[];
  /** Set by the rules phase: the audit names the rules that shaped it. */
  applied: { appliedRules?: string[] };
  /** Set by the inject phase: the headers sent upstream. */
  headers: Headers1;
  /** Set by the inject phase: lower-case names of the injected headers. */
  injected: string[];
  /** Set by the inject phase: what the echo guard looks for. */
  secrets: string[];
  /** Set by the inject phase: names of the placeholders substituted. */
  placeholders: string[];
  /** Set by the inject phase: whether the program asked for 100 Continue. */
  expectContinue: boolean;
  /** Set by the inject phase: the serialized request head for upstream. */
  upstreamHead: Uint8Array;
  /** Body bytes sent upstream so far. */
  bytesOut: number;
  /**
   * The upstream's status once its response head is in (recorded even if
   * the program is gone before it is relayed).
   */
  answered: number | null;
  /** Whether a response head is on its way to the program. */
  headSent: boolean;
  /** Whether the upstream connection can serve another request. */
  reusable: boolean;
}

/** The fields an audit event of an exchange adds to its location. */
export type EventFields =
  & Partial<EgressEvent>
  & Pick<EgressEvent, "decision" | "rule">;

/**
 * Starts an exchange: resolves the target the program asked for (nothing is
 * decided yet).
 *
 * @param request The parsed request head.
 * @param reader The program's connection.
 * @param client Where answers go.
 * @param tunnel The CONNECT tunnel, if any.
 * @param ctx The binding.
 * @returns The received request.
 *
 * @example Usage
 * ```ts ignore
 * const x = receive(request, reader, client, tunnel, ctx);
 * ```
 */
export function receive(
  request: RequestHead,
  reader: BufferedReader,
  client: ByteChannel,
  tunnel: Tunnel | null,
  ctx: SessionContext,
): Received {
  const started = performance.now();
  const websocket = isWebSocketUpgrade(request);
  const resolved = resolveTarget(request, tunnel);
  const scheme = !("path" in resolved)
    ? (tunnel?.secure ? "https" : "http")
    : resolved.scheme;
  return {
    request,
    reader,
    client,
    tunnel,
    ctx,
    started,
    websocket,
    resolved,
    scheme: websocket ? (scheme === "https" ? "wss" : "ws") : scheme,
  };
}

/**
 * An audit event of this exchange, located where the program asked to go
 * (the query's values redacted).
 *
 * @param x The exchange.
 * @param fields What happened.
 * @returns The event (not yet written).
 *
 * @example Usage
 * ```ts ignore
 * x.ctx.exchange?.hold(() => build(x, { decision: "error", rule }));
 * ```
 */
export function build(x: Received, fields: EventFields): EgressEvent {
  const target = x.resolved;
  return auditEvent(x.ctx, x.started, {
    kind: x.websocket ? "websocket" : "request",
    method: x.request.method,
    scheme: x.scheme,
    host: "path" in target
      ? target.host
      : (target.host ?? x.tunnel?.host ?? "?"),
    port: "path" in target ? target.port : (target.port ?? x.tunnel?.port ?? 0),
    path: redactQuery(
      "path" in target ? target.path : x.request.target.slice(0, 2048),
    ),
    ...fields,
  });
}

/**
 * Writes an audit event of this exchange.
 *
 * @param x The exchange.
 * @param fields What happened.
 *
 * @example Usage
 * ```ts ignore
 * record(x, { decision: "allow", rule: x.decision.id, status: 200 });
 * ```
 */
export function record(x: Received, fields: EventFields): void {
  x.ctx.audit(build(x, fields));
}

/** A refusal: what the program is told and what the audit says. */
export interface Refusal {
  /** HTTP status. */
  status: number;
  /** The `X-Airlock-Error` code. */
  code: RefusalCode;
  /** Why, in one line (never a secret). */
  message: string;
  /** The policy entry or check that refused. */
  rule: string;
  /** "error" for a failure rather than a decision; default "deny". */
  decision?: "deny" | "error";
}

/**
 * Refuses the request: records why and answers the program, and closes
 * the connection unless it can carry the next request.
 *
 * @param x The exchange, with its request framing known.
 * @param refusal What to say.
 * @returns Whether the program's connection stays open.
 *
 * @example Usage
 * ```ts ignore
 * return await refuse(x, { status: 403, code: "blocked-by-policy", message, rule: "x#0" });
 * ```
 */
export async function refuse(
  x: Received & { readonly framing: BodyFraming },
  refusal: Refusal,
): Promise<boolean> {
  const { status, code, message, rule, decision = "deny" } = refusal;
  record(x, { decision, rule, reason: message, status });
  // After a refusal, the request body (if any) is still in the stream; the
  // connection can only continue if there is none to skip.
  const close = x.framing.kind !== "none" || wantsClose(x.request);
  await writeRefusal(x.client, status, code, message, close);
  return !close;
}
