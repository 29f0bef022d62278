/**
 * Audit records of the proxy sessions, filled with the binding's identity
 * and the request's timing.
 *
 * @module
 */

import type { EgressEvent } from "./audit.ts";
import type { SessionContext } from "./session_context.ts";

export function auditEvent(
  ctx: SessionContext,
  started: number,
  fields:
    & Partial<EgressEvent>
    & Pick<
      EgressEvent,
      | "kind"
      | "method"
      | "scheme"
      | "host"
      | "port"
      | "path"
      | "decision"
      | "rule"
    >,
): EgressEvent {
  return {
    time: new Date(Date.now() - (performance.now() - started)).toISOString(),
    source: "injector",
    sandboxId: ctx.sandboxId,
    ...(ctx.runId ? { runId: ctx.runId } : {}),
    injected: [],
    placeholders: [],
    status: null,
    bytesOut: 0,
    bytesIn: 0,
    durationMs: Math.round((performance.now() - started) * 100) / 100,
    ...fields,
  };
}
