/**
 * The request the injector sends upstream: hop-by-hop headers stripped,
 * WebSocket upgrades kept plain (no compression the echo guard could not
 * see through), and placeholder secrets swapped in only where allowed.
 *
 * @module
 */

import {
  getHeader,
  getHeaders,
  type Headers1,
  removeHeader,
  type RequestHead,
  setHeader,
} from "./http1.ts";
import { matchHost } from "./host_pattern.ts";
import type { Target } from "./_request_target.ts";
import type { Placeholder } from "./session_context.ts";

/** Hop-by-hop headers (RFC 9110 7.6.1) plus proxy credentials. */
export const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];

/** Handles one request; returns whether the client connection stays open. */

export function isWebSocketUpgrade(request: RequestHead): boolean {
  return request.method.toUpperCase() === "GET" &&
    /^websocket$/i.test(getHeader(request.headers, "upgrade")?.trim() ?? "") &&
    /\bupgrade\b/i.test(getHeader(request.headers, "connection") ?? "");
}

export function wantsClose(request: RequestHead): boolean {
  const connection = getHeader(request.headers, "connection") ?? "";
  if (/\bclose\b/i.test(connection)) return true;
  return request.version === "HTTP/1.0" && !/\bkeep-alive\b/i.test(connection);
}

/**
 * Headers a `Connection` field may never remove: `Host` (without it a
 * shared upstream serves its default site, with our credential on the
 * request) and the framing the injector sets itself after this.
 */
const NEVER_HOP_BY_HOP = ["host", "content-length"];

/**
 * Strips hop-by-hop headers before forwarding: the fixed list and the names
 * the request's `Connection` fields list (RFC 9110 7.6.1), except `Host`,
 * the framing and the injected headers.
 *
 * @param headers The request's headers (changed in place).
 * @param websocket Whether the request is a WebSocket upgrade (its
 *   `Connection`/`Upgrade` are set again, without extensions).
 * @param injected Lower-case names of the headers the policy injected.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { prepareUpstreamHeaders } from "./_upstream_request.ts";
 * const headers: [string, string][] = [["Host", "a.example"], ["Connection", "HOST, Authorization, x-trace"], ["Authorization", "Bearer s3cr3t-t0ken"], ["X-Trace", "1"]];
 * prepareUpstreamHeaders(headers, false, ["authorization"]);
 * assert.deepEqual(headers, [["Host", "a.example"], ["Authorization", "Bearer s3cr3t-t0ken"]]);
 * ```
 */
export function prepareUpstreamHeaders(
  headers: Headers1,
  websocket: boolean,
  injected: readonly string[] = [],
): void {
  // Every Connection line counts (a second one is no less hop-by-hop).
  const listed = getHeaders(headers, "connection").join(",").split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) =>
      s && s !== "close" && s !== "keep-alive" && s !== "upgrade" &&
      // "Connection: host, authorization" would strip the Host the
      // decision was checked against, or the credential just injected.
      !NEVER_HOP_BY_HOP.includes(s) && !injected.includes(s)
    );
  for (const name of [...HOP_BY_HOP, ...listed]) removeHeader(headers, name);
  if (websocket) {
    setHeader(headers, "Connection", "Upgrade");
    setHeader(headers, "Upgrade", "websocket");
    // permessage-deflate would hide an echoed secret from the echo guard.
    removeHeader(headers, "sec-websocket-extensions");
  }
}

/**
 * Swaps placeholder tokens for real values in header values, only toward the
 * placeholder's hosts and only over TLS. Toward any other host the token
 * goes out unchanged: the injector never launders a secret to a host the
 * operator did not name.
 */
export function substitutePlaceholders(
  headers: Headers1,
  placeholders: readonly Placeholder[],
  target: Target,
  secure: boolean,
  injected: readonly string[],
): Placeholder[] {
  if (placeholders.length === 0 || !secure) return [];
  const used: Placeholder[] = [];
  for (const placeholder of placeholders) {
    if (!matchHost(placeholder.hosts, target.host, target.port)) continue;
    for (const entry of headers) {
      if (injected.includes(entry[0].toLowerCase())) continue;
      if (entry[1].includes(placeholder.token)) {
        entry[1] = entry[1].split(placeholder.token).join(placeholder.value);
        if (!used.includes(placeholder)) used.push(placeholder);
      }
    }
  }
  return used;
}
