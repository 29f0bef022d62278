/**
 * What the injector records about each request: enough to see what a program
 * tried and why it was allowed or refused, never a secret value (header
 * NAMES only; query VALUES redacted).
 *
 * One record per request, written when its outcome is known. A run's end
 * does not lose one: closing the run's binding waits (about a second) for
 * requests in flight, then records each one still open as what was sent so
 * far (forwarded, with the injected header names, `status: null`).
 *
 * @module
 */

/**
 * One egress event.
 *
 * @example Usage
 * ```ts
 * import type { EgressEvent } from "./audit.ts";
 *
 * const event: EgressEvent = {
 *   time: "2025-01-01T00:00:00.000Z",
 *   source: "injector",
 *   kind: "request",
 *   sandboxId: "sandbox-1",
 *   method: "GET",
 *   scheme: "https",
 *   host: "api.example.com",
 *   port: 443,
 *   path: "/v1/models?key=<redacted>",
 *   decision: "allow",
 *   rule: "api.example.com",
 *   appliedRules: ["api.example.com#0"],
 *   injected: ["authorization"],
 *   placeholders: [],
 *   status: 200,
 *   bytesOut: 0,
 *   bytesIn: 512,
 *   durationMs: 41.5,
 * };
 * console.log(`${event.decision} ${event.host}${event.path}`);
 * ```
 */
export interface EgressEvent {
  /** ISO time the request started. */
  time: string;
  /** Always "injector". */
  source: "injector";
  /** `connect` for CONNECT tunnels (and transparent connections to HTTP
   * ports), `request` for HTTP exchanges, `websocket` for upgraded
   * connections, `secret-echo` when the echo guard redacted a secret from a
   * response, `tcp` for a plain TCP tunnel (a TCP rule), `dns` for a name
   * the program looked up inside the sandbox (answered there, from the
   * policy alone: nothing is sent). */
  kind: "connect" | "request" | "websocket" | "secret-echo" | "tcp" | "dns";
  /** The sandbox. */
  sandboxId: string;
  /** The run, when known. */
  runId?: string;
  /** HTTP method (CONNECT for tunnels, TCP for TCP tunnels, the record
   * type for lookups: A, AAAA...). */
  method: string;
  /** Scheme of the request (`tcp` and `dns` for those kinds). */
  scheme: "http" | "https" | "ws" | "wss" | "tcp" | "dns";
  /** Target host, canonical (as decided). */
  host: string;
  /** Target port. */
  port: number;
  /** Path with query values redacted. */
  path: string;
  /** What the injector did. */
  decision: "allow" | "deny" | "respond" | "error";
  /** The policy entry or rule that decided (`api.example.com#0`, `not-in-allowlist`). */
  rule: string;
  /** The transform rules that set headers on the request (`host#index`). */
  appliedRules?: string[];
  /**
   * Why, for refusals and errors; and for a request whose answer the
   * program did not receive (the run ended first, or the program closed its
   * connection).
   */
  reason?: string;
  /** Names of headers the injector set (never values). */
  injected: string[];
  /** Names of placeholder secrets substituted. */
  placeholders: string[];
  /**
   * Status returned to the sandbox; the upstream's status when the program
   * had gone before the answer reached it; null when no answer came before
   * the run ended (the request WAS forwarded if `decision` is "allow").
   */
  status: number | null;
  /** Body bytes from the sandbox to the upstream. */
  bytesOut: number;
  /** Body bytes from the upstream to the sandbox. */
  bytesIn: number;
  /** Time from request to end of response. */
  durationMs: number;
  /** Secret occurrences the echo guard replaced. */
  redactions?: number;
  /**
   * How a connection reached the injector: `transparent` when the program
   * dialled a name without the proxy (through the in-sandbox bridge).
   */
  via?: "proxy" | "transparent";
  /** For `dns`: the address the name was answered with inside the sandbox. */
  answer?: string;
}

/**
 * Receives audit events.
 *
 * @example Usage
 * ```ts
 * import type { AuditSink, EgressEvent } from "./audit.ts";
 *
 * const events: EgressEvent[] = [];
 * const sink: AuditSink = (event) => events.push(event);
 * console.log(typeof sink);
 * ```
 */
export type AuditSink = (event: EgressEvent) => void;

/**
 * Redacts query values: `/a?token=abc&x=1` becomes
 * `/a?token=<redacted>&x=<redacted>` (keys stay, for what was tried).
 *
 * @param path A request path with optional query.
 * @returns The path with every query value replaced.
 *
 * @example Usage
 * ```ts
 * import { redactQuery } from "./audit.ts";
 * console.log(redactQuery("/search?q=secret&page=2"));
 * ```
 */
export function redactQuery(path: string): string {
  const at = path.indexOf("?");
  if (at === -1) return path;
  const query = path.slice(at + 1).split("&").map((pair) => {
    const eq = pair.indexOf("=");
    return eq === -1 ? pair : `${pair.slice(0, eq)}=<redacted>`;
  });
  return `${path.slice(0, at)}?${query.join("&")}`;
}
