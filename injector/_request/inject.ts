/**
 * Phase 3, inject: the request the upstream gets. The transform rules'
 * headers replace the program's, placeholder tokens become their values
 * (only toward their hosts, only over TLS), hop-by-hop headers go, and a
 * credentialed request asks only for what the echo guard can read.
 *
 * @module
 */

import { SCANNABLE_ENCODINGS } from "../_body.ts";
import { credentialForms } from "../echo_guard.ts";
import {
  getHeader,
  removeHeader,
  serializeRequestHead,
  setHeader,
} from "../http1.ts";
import {
  prepareUpstreamHeaders,
  substitutePlaceholders,
} from "../_upstream_request.ts";
import { type ProxyExchange, refuse } from "./exchange.ts";

/**
 * Builds the upstream request head.
 *
 * @param x The exchange (sets `headers`, `injected`, `secrets`,
 *   `placeholders`, `expectContinue` and `upstreamHead`).
 * @returns Undefined to carry on, or (refused) whether the program's
 *   connection stays open.
 *
 * @example Usage
 * ```ts ignore
 * const ended = await inject(x);
 * if (ended !== undefined) return ended;
 * ```
 */
export async function inject(x: ProxyExchange): Promise<boolean | undefined> {
  const { request, target, secure } = x;
  const headers = request.headers.map(([n, v]): [string, string] => [n, v]);
  const injected: string[] = [];
  const secrets: string[] = [];
  for (const rule of x.transforms) {
    if (!secure && rule.carriesSecret && !rule.allowInsecure) {
      // A credential over plain http is readable (and replayable) by
      // anyone on the path.
      return await refuse(x, {
        status: 403,
        code: "cleartext-credentials",
        message:
          `refusing to inject credentials into plain http to '${target.host}:${target.port}': use https, or set allowInsecure on the rule ${rule.id}`,
        rule: rule.id,
      });
    }
    for (const [name, value] of rule.headers ?? []) {
      // Replaces EVERY header of that name, in any letter case: the sandbox
      // cannot substitute its own credentials next to ours.
      setHeader(headers, name, value);
      if (!injected.includes(name.toLowerCase())) {
        injected.push(name.toLowerCase());
      }
    }
    secrets.push(...rule.secrets);
  }
  const substituted = substitutePlaceholders(
    headers,
    x.policy.placeholders,
    target,
    secure,
    injected,
  );
  for (const p of substituted) {
    secrets.push(p.value, ...credentialForms(p.value));
  }
  prepareUpstreamHeaders(headers, x.websocket, injected);
  if (secrets.length > 0 && !x.websocket) {
    // Only codings the echo guard can decode, so an echoed secret cannot
    // hide in a compressed body.
    setHeader(headers, "Accept-Encoding", SCANNABLE_ENCODINGS);
    // A byte range of an echoing response could hand the secret out in
    // slices too short to recognise; credentialed requests get whole bodies.
    removeHeader(headers, "range");
    removeHeader(headers, "if-range");
  }
  const expectContinue = /100-continue/i.test(
    getHeader(headers, "expect") ?? "",
  );
  removeHeader(headers, "expect");
  if (x.framing.kind === "chunked") {
    setHeader(headers, "Transfer-Encoding", "chunked");
  }
  if (x.framing.kind === "length") {
    setHeader(headers, "Content-Length", String(x.framing.length));
  }
  x.upstreamHead = serializeRequestHead({
    method: request.method,
    target: target.path,
    version: "HTTP/1.1",
    headers,
  });
  x.headers = headers;
  x.injected = injected;
  x.secrets = secrets;
  x.expectContinue = expectContinue;
  x.placeholders = substituted.map((p) => p.name);
  return undefined;
}
