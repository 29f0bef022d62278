/**
 * One sandbox connection to the injector, from first byte to close.
 *
 * The sandbox speaks HTTP/1.1 proxy protocol: `CONNECT host:port` for https
 * and wss (the injector terminates TLS with a leaf from its own CA), or
 * absolute-form `GET http://host/…` for plain http and ws. Every request is
 * decided on the target the sandbox asked for at CONNECT or in the absolute
 * URL, and re-decided per request (a live policy update applies to the next
 * request). Nothing the sandbox says later (Host header, SNI) can move a
 * request to another host: a mismatch is refused.
 *
 * @module
 */

import tls from "node:tls";
import type { Socket } from "node:net";
import { type AuditSink, type EgressEvent, redactQuery } from "./audit.ts";
import {
  canGuard,
  chunkedWriter,
  guardBody,
  rawWriter,
  readBody,
  SCANNABLE_ENCODINGS,
} from "./_body.ts";
import type { CertificateAuthority } from "./ca.ts";
import {
  BufferedReader,
  type ByteChannel,
  concat,
  SocketChannel,
} from "./_channel.ts";
import { EchoRedactor, redactString } from "./echo_guard.ts";
import { canonicalHost, type HostPattern, matchHost } from "./host_pattern.ts";
import {
  type BodyFraming,
  getHeader,
  getHeaders,
  type Headers1,
  HttpParseError,
  parseRequestHead,
  parseResponseHead,
  removeHeader,
  requestFraming,
  type RequestHead,
  responseFraming,
  serializeRequestHead,
  serializeResponseHead,
  setHeader,
} from "./http1.ts";
import { type CompiledNetworkPolicy, selectRules } from "./network_policy.ts";
import {
  reasonPhrase,
  type RefusalCode,
  writeLocalResponse,
  writeRefusal,
} from "./_responses.ts";
import {
  type DialPolicy,
  type Upstream,
  UpstreamError,
  type UpstreamPool,
} from "./upstream.ts";
import { relayWebSocket } from "./_websocket.ts";

/** A placeholder secret: the sandbox holds `token`; `value` goes on the wire. */
export interface Placeholder {
  /** Environment variable name the sandbox sees it under. */
  name: string;
  /** The opaque stand-in the sandbox sees. */
  token: string;
  /** The real value (harness memory only). */
  value: string;
  /** Hosts the real value may be sent to. */
  hosts: { pattern: HostPattern; value: true }[];
}

/** The policy in force for one binding, re-read at every request. */
export interface ActivePolicy {
  /** Destinations and rules. */
  network: CompiledNetworkPolicy;
  /** Placeholder secrets. */
  placeholders: readonly Placeholder[];
  /** How to dial upstreams. */
  dial: DialPolicy;
}

/** What a connection needs from its binding. */
export interface SessionContext {
  /** The sandbox this socket belongs to (the socket is its identity). */
  sandboxId: string;
  /** The run, when known. */
  runId: string | undefined;
  /** The current policy (live). */
  policy: () => ActivePolicy;
  /** Audit sink. */
  audit: AuditSink;
  /** Issues leaf certificates. */
  ca: CertificateAuthority;
  /** Upstream connections. */
  pool: UpstreamPool;
}

// One SecureContext per leaf (leafFor returns the same object while the
// leaf is cached): parsing PEM on every tunnel costs more than the handshake.
const secureContexts = new WeakMap<object, tls.SecureContext>();

function secureContextFor(
  leaf: { certPem: string; keyPem: string },
): tls.SecureContext {
  let context = secureContexts.get(leaf);
  if (!context) {
    context = tls.createSecureContext({ cert: leaf.certPem, key: leaf.keyPem });
    secureContexts.set(leaf, context);
  }
  return context;
}

interface Tunnel {
  host: string;
  port: number;
  secure: boolean;
  /** SNI differed from the CONNECT host: every request gets 421. */
  sniMismatch: string | null;
}

/**
 * Whether a request path (query excluded) has `.` or `..` segments, also
 * percent-encoded (`%2e%2e`) or with backslashes some servers treat as '/'.
 */
function hasDotSegments(path: string): boolean {
  const end = path.search(/[?#]/);
  const raw = (end === -1 ? path : path.slice(0, end)).replace(/%2e/gi, ".");
  return raw.split(/\/|\\|%2f|%5c/i).some((segment) =>
    segment === "." || segment === ".."
  );
}

/** Bodies up to this size are sent with their head in one write. */
const SMALL_BODY = 64 * 1024;

async function collect(
  chunks: AsyncIterable<Uint8Array>,
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

/** Hop-by-hop headers (RFC 9110 7.6.1) plus proxy credentials. */
const HOP_BY_HOP = [
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

/**
 * Serves one accepted socket until it closes. Never throws: every failure
 * ends as a refusal to the sandbox and/or an audit record.
 *
 * @param socket The accepted unix-socket connection.
 * @param ctx The binding.
 *
 * @example Usage
 * ```ts ignore
 * net.createServer((socket) => serveConnection(socket, ctx)).listen(path);
 * ```
 */
export async function serveConnection(
  socket: Socket,
  ctx: SessionContext,
): Promise<void> {
  const client = new SocketChannel(socket);
  try {
    await serveRequests(new BufferedReader(client), client, null, ctx);
  } catch {
    // A broken client connection: nothing to answer to.
  } finally {
    client.destroy();
  }
}

async function serveRequests(
  reader: BufferedReader,
  client: ByteChannel,
  tunnel: Tunnel | null,
  ctx: SessionContext,
): Promise<void> {
  while (true) {
    let head: Uint8Array | null;
    let request: RequestHead;
    try {
      head = await reader.readHead();
      if (head === null) return;
      request = parseRequestHead(head);
    } catch (error) {
      if (error instanceof HttpParseError) {
        // Malformed and smuggling-shaped requests leave a trace too.
        ctx.audit(event(ctx, performance.now(), {
          kind: "request",
          method: "?",
          scheme: tunnel?.secure ? "https" : "http",
          host: tunnel?.host ?? "?",
          port: tunnel?.port ?? 0,
          path: "",
          decision: "deny",
          rule: "malformed",
          reason: error.message,
          status: error.status,
        }));
        await writeRefusal(
          client,
          error.status,
          "bad-request",
          error.message,
          true,
        );
      }
      return;
    }
    if (!tunnel && request.method === "CONNECT") {
      await handleConnect(request, reader, client as SocketChannel, ctx);
      return;
    }
    const keepOpen = await handleRequest(request, reader, client, tunnel, ctx);
    if (!keepOpen) return;
  }
}

/** Splits an authority-form target `host:port` / `[v6]:port`. */
function parseAuthority(target: string): { host: string; port: number } | null {
  const match = target.match(/^(\[[^\]]+\]|[^:\[\]]+):(\d{1,5})$/);
  if (!match) return null;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return null;
  try {
    return { host: canonicalHost(match[1]!), port };
  } catch {
    return null;
  }
}

async function handleConnect(
  request: RequestHead,
  reader: BufferedReader,
  client: SocketChannel,
  ctx: SessionContext,
): Promise<void> {
  const started = performance.now();
  const authority = parseAuthority(request.target);
  const base = {
    kind: "connect" as const,
    method: "CONNECT",
    scheme: "https" as const,
    path: "",
  };
  if (!authority) {
    ctx.audit(event(ctx, started, {
      ...base,
      host: request.target.slice(0, 255),
      port: 0,
      decision: "deny",
      rule: "bad-target",
      reason: "CONNECT target is not host:port",
      status: 400,
    }));
    await writeRefusal(
      client,
      400,
      "bad-request",
      `CONNECT target '${request.target.slice(0, 255)}' is not host:port`,
      true,
    );
    return;
  }
  const { host, port } = authority;
  // Decided on the CONNECT target: the one thing the sandbox cannot change
  // later in the tunnel.
  const decision = ctx.policy().network.decide(host, port);
  if (!decision.allowed) {
    ctx.audit(event(ctx, started, {
      ...base,
      host,
      port,
      decision: "deny",
      rule: decision.id,
      reason: decision.reason,
      status: 403,
    }));
    await writeRefusal(
      client,
      403,
      "blocked-by-policy",
      `CONNECT to '${host}:${port}' refused: ${decision.reason}`,
      true,
    );
    return;
  }
  await client.write(
    new TextEncoder().encode("HTTP/1.1 200 Connection Established\r\n\r\n"),
  );
  ctx.audit(
    event(ctx, started, {
      ...base,
      host,
      port,
      decision: "allow",
      rule: decision.id,
      status: 200,
    }),
  );
  let pending = reader.takePending();
  if (pending.length === 0) {
    const first = await client.read();
    if (first === null) return;
    pending = first;
  }
  if (pending[0] !== 0x16) {
    // Not a TLS ClientHello: plain HTTP (or ws) inside the tunnel.
    reader.unread(pending);
    await serveRequests(reader, client, {
      host,
      port,
      secure: false,
      sniMismatch: null,
    }, ctx);
    return;
  }
  const leaf = await ctx.ca.leafFor(host);
  const socket = client.detach(pending);
  const secure = new tls.TLSSocket(socket, {
    isServer: true,
    secureContext: secureContextFor(leaf),
    // HTTP/1.1 only: our parser is the smuggling gate; h2 would bypass it.
    ALPNProtocols: ["http/1.1"],
  });
  const handshake = await new Promise<boolean>((resolve) => {
    secure.once("secure", () => resolve(true));
    secure.once("error", () => resolve(false));
    secure.once("close", () => resolve(false));
  });
  if (!handshake) {
    secure.destroy();
    return;
  }
  const sni =
    (secure as unknown as { servername?: string | false }).servername || null;
  let sniMismatch: string | null = null;
  if (sni) {
    let canonical: string | null = null;
    try {
      canonical = canonicalHost(sni);
    } catch {
      // unparseable SNI: treated as a mismatch
    }
    // Domain fronting: a tunnel opened to an allowed host whose TLS names
    // another host. The certificate is for the CONNECT host either way.
    if (canonical !== host) sniMismatch = sni;
  }
  const inner = new SocketChannel(secure);
  try {
    await serveRequests(new BufferedReader(inner), inner, {
      host,
      port,
      secure: true,
      sniMismatch,
    }, ctx);
  } finally {
    inner.destroy();
  }
}

interface Target {
  host: string;
  port: number;
  scheme: "http" | "https";
  /** Origin-form target sent upstream. */
  path: string;
}

/** Returns the request's target, or a refusal. */
function resolveTarget(
  request: RequestHead,
  tunnel: Tunnel | null,
): Target | {
  status: number;
  code: RefusalCode;
  message: string;
  host?: string;
  port?: number;
} {
  const hosts = getHeaders(request.headers, "host");
  if (hosts.length > 1) {
    return {
      status: 400,
      code: "bad-request",
      message: "more than one Host header",
    };
  }
  const hostHeader = hosts[0];
  if (tunnel) {
    let path = request.target;
    if (!path.startsWith("/") && path !== "*") {
      const url = safeUrl(path);
      if (!url || url.username || url.password) {
        return {
          status: 400,
          code: "bad-request",
          message: "request target must be a path inside a tunnel",
        };
      }
      if (hostOf(url) !== tunnel.host || portOf(url) !== tunnel.port) {
        return {
          status: 421,
          code: "misdirected",
          message:
            `request for '${url.host}' inside a tunnel to '${tunnel.host}:${tunnel.port}'`,
        };
      }
      path = url.pathname + url.search;
    }
    if (tunnel.sniMismatch) {
      return {
        status: 421,
        code: "misdirected",
        message: `TLS server name '${
          tunnel.sniMismatch.slice(0, 255)
        }' differs from the CONNECT host '${tunnel.host}'`,
      };
    }
    if (hostHeader === undefined) {
      if (request.version === "HTTP/1.1") {
        return {
          status: 400,
          code: "bad-request",
          message: "missing Host header",
        };
      }
    } else if (
      !sameAuthority(
        hostHeader,
        tunnel.host,
        tunnel.port,
        tunnel.secure ? 443 : 80,
      )
    ) {
      // The Host header names another host than the tunnel: a fronting or
      // confused-deputy attempt. The upstream stays the CONNECT target.
      return {
        status: 421,
        code: "misdirected",
        message: `Host '${
          hostHeader.slice(0, 255)
        }' differs from the CONNECT host '${tunnel.host}:${tunnel.port}'`,
      };
    }
    return {
      host: tunnel.host,
      port: tunnel.port,
      scheme: tunnel.secure ? "https" : "http",
      path,
    };
  }
  // Outside a tunnel only absolute-form http:// (and ws://) is proxied.
  const url = safeUrl(request.target);
  if (!url || !/^(http|ws):$/.test(url.protocol)) {
    const https = url && /^(https|wss):$/.test(url.protocol);
    return {
      status: 400,
      code: "bad-request",
      message: https
        ? "https requests must use CONNECT"
        : "only absolute-form http:// requests and CONNECT are proxied",
    };
  }
  if (url.username || url.password) {
    return {
      status: 400,
      code: "bad-request",
      message: "credentials in the request URL are refused",
    };
  }
  let host: string;
  try {
    host = hostOf(url);
  } catch {
    return {
      status: 400,
      code: "bad-request",
      message: "invalid host in the request URL",
    };
  }
  const port = portOf(url);
  if (hostHeader === undefined || !sameAuthority(hostHeader, host, port, 80)) {
    // Smuggling shape: the proxy would decide on one host while a
    // Host-routed upstream serves another.
    return {
      status: 400,
      code: "bad-request",
      message: `Host header '${
        (hostHeader ?? "").slice(0, 255)
      }' does not match the request URL host '${host}:${port}'`,
      host,
      port,
    };
  }
  return { host, port, scheme: "http", path: url.pathname + url.search };
}

function safeUrl(text: string): URL | null {
  try {
    return new URL(text);
  } catch {
    return null;
  }
}

function hostOf(url: URL): string {
  return canonicalHost(url.hostname.replace(/^\[|\]$/g, ""));
}

function portOf(url: URL): number {
  if (url.port) return Number(url.port);
  return url.protocol === "https:" || url.protocol === "wss:" ? 443 : 80;
}

function sameAuthority(
  value: string,
  host: string,
  port: number,
  defaultPort: number,
): boolean {
  const match = value.trim().match(/^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/);
  if (!match) return false;
  let candidate: string;
  try {
    candidate = canonicalHost(match[1]!);
  } catch {
    return false;
  }
  const candidatePort = match[2] === undefined ? defaultPort : Number(match[2]);
  return candidate === host && candidatePort === port;
}

/** Handles one request; returns whether the client connection stays open. */
async function handleRequest(
  request: RequestHead,
  reader: BufferedReader,
  client: ByteChannel,
  tunnel: Tunnel | null,
  ctx: SessionContext,
): Promise<boolean> {
  const started = performance.now();
  const websocket = isWebSocketUpgrade(request);
  const target = resolveTarget(request, tunnel);
  const scheme = !("path" in target)
    ? (tunnel?.secure ? "https" : "http")
    : target.scheme;
  const eventScheme = websocket ? (scheme === "https" ? "wss" : "ws") : scheme;
  const record = (
    fields: Partial<EgressEvent> & Pick<EgressEvent, "decision" | "rule">,
  ) =>
    ctx.audit(event(ctx, started, {
      kind: websocket ? "websocket" : "request",
      method: request.method,
      scheme: eventScheme,
      host: "path" in target
        ? target.host
        : (target.host ?? tunnel?.host ?? "?"),
      port: "path" in target ? target.port : (target.port ?? tunnel?.port ?? 0),
      path: redactQuery(
        "path" in target ? target.path : request.target.slice(0, 2048),
      ),
      ...fields,
    }));
  let framing: BodyFraming;
  try {
    framing = requestFraming(request);
  } catch (error) {
    const e = error as HttpParseError;
    record({
      decision: "deny",
      rule: "malformed",
      reason: e.message,
      status: e.status,
    });
    await writeRefusal(client, e.status, "bad-request", e.message, true);
    return false;
  }
  // After a refusal, the request body (if any) is still in the stream; the
  // connection can only continue if there is none to skip.
  const refuse = async (
    status: number,
    code: RefusalCode,
    message: string,
    rule: string,
    decision: "deny" | "error" = "deny",
  ) => {
    record({ decision, rule, reason: message, status });
    const close = framing.kind !== "none" || wantsClose(request);
    await writeRefusal(client, status, code, message, close);
    return !close;
  };
  if (!("path" in target)) {
    return await refuse(
      target.status,
      target.code,
      target.message,
      target.code,
    );
  }
  if (hasDotSegments(target.path)) {
    // "/public/../admin" would match a rule for "/public/" here and reach
    // "/admin" upstream (after the upstream normalises it).
    return await refuse(
      400,
      "bad-request",
      "request paths with '.' or '..' segments are refused (they could bypass path rules)",
      "dot-segments",
    );
  }
  const method = request.method.toUpperCase();
  if (method === "TRACE" || method === "TRACK") {
    // TRACE echoes the request, injected credentials included (XST).
    return await refuse(
      405,
      "method-not-allowed",
      `${method} is not allowed through the injector`,
      "trace",
    );
  }
  const active = ctx.policy();
  const decision = active.network.decide(target.host, target.port);
  if (!decision.allowed) {
    return await refuse(
      403,
      "blocked-by-policy",
      `request to '${target.host}:${target.port}' refused: ${decision.reason}`,
      decision.id,
    );
  }
  const queryAt = target.path.indexOf("?");
  const { transforms, response } = selectRules(decision.rules, {
    method: request.method,
    path: queryAt === -1 ? target.path : target.path.slice(0, queryAt),
    query: queryAt === -1 ? "" : target.path.slice(queryAt + 1),
    headers: request.headers,
  });
  if (response?.response) {
    // Drain the request body so the connection can carry the next request.
    for await (const _ of readBody(reader, framing)) { /* discarded */ }
    const close = wantsClose(request);
    const bytes = await writeLocalResponse(client, response.response, close);
    record({
      decision: "respond",
      rule: response.id,
      status: response.response.statusCode,
      bytesIn: bytes,
    });
    return !close;
  }
  // The audit names the entry that decided, and the rules that shaped it.
  const applied = transforms.length > 0
    ? { appliedRules: transforms.map((r) => r.id) }
    : {};
  const secure = target.scheme === "https";
  const headers: Headers1 = request.headers.map(([n, v]) => [n, v]);
  const injected: string[] = [];
  const secrets: string[] = [];
  for (const rule of transforms) {
    if (!secure && rule.carriesSecret && !rule.allowInsecure) {
      return await refuse(
        403,
        "cleartext-credentials",
        `refusing to inject credentials into plain http to '${target.host}:${target.port}': use https, or set allowInsecure on the rule ${rule.id}`,
        rule.id,
      );
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
    active.placeholders,
    target,
    secure,
    injected,
  );
  for (const p of substituted) secrets.push(p.value);
  prepareUpstreamHeaders(headers, websocket);
  if (secrets.length > 0 && !websocket) {
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
  if (framing.kind === "chunked") {
    setHeader(headers, "Transfer-Encoding", "chunked");
  }
  if (framing.kind === "length") {
    setHeader(headers, "Content-Length", String(framing.length));
  }
  const upstreamHead = serializeRequestHead({
    method: request.method,
    target: target.path,
    version: "HTTP/1.1",
    headers,
  });

  let upstream: Upstream;
  try {
    upstream = await ctx.pool.acquire(
      { host: target.host, port: target.port, tls: secure },
      active.dial,
    );
  } catch (error) {
    const e = error instanceof UpstreamError
      ? error
      : new UpstreamError(502, String(error));
    return await refuse(
      e.status,
      e.status === 403 ? "blocked-address" : "upstream-error",
      e.message,
      decision.id,
      // The guard refusing an address is a decision; a failed connect or
      // TLS verification is an error.
      e.status === 403 ? "deny" : "error",
    );
  }
  let bytesOut = 0;
  let reusable = false;
  // Once a response head is on its way, a failure can only end the
  // connection: a second status line would be read as body bytes.
  let headSent = false;
  try {
    if (expectContinue) {
      await client.write(
        new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n"),
      );
    }
    await upstream.channel.write(upstreamHead);
    bytesOut = framing.kind === "chunked"
      ? await chunkedWriter((b) => upstream.channel.write(b))(
        readBody(reader, framing),
      )
      : await rawWriter((b) => upstream.channel.write(b))(
        readBody(reader, framing),
      );
    const responseHead = await readFinalResponseHead(upstream);
    if (responseHead === null) {
      throw new UpstreamError(
        502,
        `'${target.host}' closed the connection without a response`,
      );
    }
    const redactor = secrets.length > 0 ? new EchoRedactor(secrets) : null;
    let headerRedactions = 0;
    const responseHeaders: Headers1 = [];
    for (const [name, value] of responseHead.headers) {
      if (redactor) {
        const { text, count } = redactString(value, secrets);
        headerRedactions += count;
        responseHeaders.push([name, text]);
      } else {
        responseHeaders.push([name, value]);
      }
    }
    if (websocket && responseHead.status === 101) {
      const head = serializeResponseHead({
        ...responseHead,
        version: "HTTP/1.1",
        reason: reasonPhrase(101),
        headers: responseHeaders,
      });
      headSent = true;
      await client.write(head);
      record({
        decision: "allow",
        rule: decision.id,
        ...applied,
        status: 101,
        injected,
        placeholders: substituted.map((p) => p.name),
        bytesOut,
      });
      const relayed = await relayWebSocket(
        reader,
        client,
        upstream,
        redactor,
        secrets,
      );
      reportEcho(
        ctx,
        started,
        target,
        eventScheme,
        request.method,
        headerRedactions + relayed.redactions,
        decision.id,
      );
      return false;
    }
    const responseBody = responseFraming(responseHead, request.method);
    for (const name of HOP_BY_HOP) removeHeader(responseHeaders, name);
    removeHeader(responseHeaders, "content-length");
    const close = wantsClose(request);
    const guarded = redactor !== null && responseBody.kind !== "none";
    const coding = getHeader(responseHead.headers, "content-encoding");
    if (guarded && !canGuard(coding)) {
      // Decided before any byte goes out: never a 200 the guard cannot see into.
      throw new UpstreamError(
        502,
        `cannot check a '${
          coding?.slice(0, 40)
        }'-encoded response from '${target.host}' for echoed secrets`,
      );
    }
    if (guarded) removeHeader(responseHeaders, "content-encoding");
    if (close) responseHeaders.push(["Connection", "close"]);
    const head = {
      version: "HTTP/1.1" as const,
      status: responseHead.status,
      // The upstream's reason phrase is its own text: it could quote the
      // credential ("401 Token Bearer sk-... expired"). Only standard ones.
      reason: reasonPhrase(responseHead.status),
      headers: responseHeaders,
    };
    const body = readBody(upstream.reader, responseBody);
    let bytesIn = 0;
    if (responseBody.kind === "length" && responseBody.length <= SMALL_BODY) {
      // Small bodies (most API answers) go out with their head in one
      // write: one TLS record and one wake-up instead of three.
      let bytes = concat(await collect(body));
      if (guarded) {
        bytes = concat(
          await collect(
            guardBody(ReadableStream.from([bytes]), coding, redactor!),
          ),
        );
      }
      responseHeaders.push(["Content-Length", String(bytes.length)]);
      headSent = true;
      await client.write(concat([serializeResponseHead(head), bytes]));
      bytesIn = bytes.length;
    } else if (responseBody.kind === "none") {
      const original = getHeader(responseHead.headers, "content-length");
      if (original !== undefined && method === "HEAD") {
        responseHeaders.push(["Content-Length", original]);
      }
      headSent = true;
      await client.write(serializeResponseHead(head));
    } else if (!guarded && responseBody.kind === "length") {
      responseHeaders.push(["Content-Length", String(responseBody.length)]);
      headSent = true;
      await client.write(serializeResponseHead(head));
      bytesIn = await rawWriter((b) => client.write(b))(body);
    } else {
      // Chunked, close-delimited or guarded (a redaction changes lengths).
      responseHeaders.push(["Transfer-Encoding", "chunked"]);
      headSent = true;
      await client.write(serializeResponseHead(head));
      bytesIn = await chunkedWriter((b) => client.write(b))(
        guarded ? guardBody(body, coding, redactor!) : body,
      );
    }
    reusable = responseBody.kind !== "close" &&
      !/\bclose\b/i.test(getHeader(responseHead.headers, "connection") ?? "");
    record({
      decision: "allow",
      rule: decision.id,
      ...applied,
      status: responseHead.status,
      injected,
      placeholders: substituted.map((p) => p.name),
      bytesOut,
      bytesIn,
      ...(redactor
        ? { redactions: headerRedactions + redactor.redactions }
        : {}),
    });
    reportEcho(
      ctx,
      started,
      target,
      eventScheme,
      request.method,
      headerRedactions + (redactor?.redactions ?? 0),
      decision.id,
    );
    if (close) client.close();
    return !close;
  } catch (error) {
    const e = error instanceof UpstreamError
      ? error
      : error instanceof HttpParseError
      // Not the parser's message: it quotes upstream bytes, which could hold
      // an echoed secret.
      ? new UpstreamError(502, `invalid HTTP response from '${target.host}'`)
      : new UpstreamError(
        502,
        `exchange with '${target.host}' failed: ${(error as Error).message}`,
      );
    record({
      decision: "error",
      rule: decision.id,
      reason: e.message,
      status: e.status,
      injected,
      bytesOut,
    });
    if (headSent) client.close();
    else {await writeRefusal(
        client,
        e.status,
        "upstream-error",
        e.message,
        true,
      );}
    return false;
  } finally {
    ctx.pool.release(upstream, reusable);
  }
}

async function readFinalResponseHead(upstream: Upstream) {
  while (true) {
    const head = await upstream.reader.readHead();
    if (head === null) return null;
    const parsed = parseResponseHead(head);
    // Interim 1xx responses (other than 101) are consumed here; the client
    // already got our own 100 Continue when it asked for one.
    if (parsed.status >= 100 && parsed.status < 200 && parsed.status !== 101) {
      continue;
    }
    return parsed;
  }
}

function isWebSocketUpgrade(request: RequestHead): boolean {
  return request.method.toUpperCase() === "GET" &&
    /^websocket$/i.test(getHeader(request.headers, "upgrade")?.trim() ?? "") &&
    /\bupgrade\b/i.test(getHeader(request.headers, "connection") ?? "");
}

function wantsClose(request: RequestHead): boolean {
  const connection = getHeader(request.headers, "connection") ?? "";
  if (/\bclose\b/i.test(connection)) return true;
  return request.version === "HTTP/1.0" && !/\bkeep-alive\b/i.test(connection);
}

/** Strips hop-by-hop headers (and those Connection names) before forwarding. */
function prepareUpstreamHeaders(headers: Headers1, websocket: boolean): void {
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
function substitutePlaceholders(
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

function reportEcho(
  ctx: SessionContext,
  started: number,
  target: Target,
  scheme: EgressEvent["scheme"],
  method: string,
  redactions: number,
  rule: string,
): void {
  if (redactions === 0) return;
  ctx.audit(event(ctx, started, {
    kind: "secret-echo",
    method,
    scheme,
    host: target.host,
    port: target.port,
    path: redactQuery(target.path),
    decision: "allow",
    rule,
    reason:
      `the response echoed an injected secret ${redactions} time(s); replaced before reaching the sandbox`,
    redactions,
    status: null,
  }));
}

function event(
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
