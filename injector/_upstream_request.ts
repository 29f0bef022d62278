/**
 * The request the injector sends upstream: hop-by-hop headers stripped,
 * WebSocket upgrades kept plain (no compression the echo guard could not
 * see through), and placeholder secrets swapped in only where allowed.
 *
 * @module
 */

import {
  getHeader,
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

/** Strips hop-by-hop headers (and those Connection names) before forwarding. */
export function prepareUpstreamHeaders(
  headers: Headers1,
  websocket: boolean,
): void {
  const listed = (getHeader(headers, "connection") ?? "").split(",").map((s) =>
    s.trim().toLowerCase()
  )
    .filter((s) => s && s !== "close" && s !== "keep-alive" && s !== "upgrade");
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
