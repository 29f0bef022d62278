/**
 * One proxied HTTP exchange (or WebSocket upgrade): decide, apply the rules,
 * inject, forward to the upstream, and relay the response through the echo
 * guard. Never throws: failures become refusals and audit records.
 *
 * `handleRequest` is one long function on purpose: its phases (decide,
 * apply rules, inject, forward, relay) share the request's headers, the
 * secrets it carries and the audit record; split up, each piece would take
 * and return a dozen of those, and the order of the security checks would be
 * harder to read.
 *
 * @module
 */

import { type EgressEvent, redactQuery } from "./audit.ts";
import { auditEvent as event } from "./_audit_event.ts";
import {
  chunkedWriter,
  guardableCoding,
  guardBody,
  rawWriter,
  readAhead,
  readBody,
  SCANNABLE_ENCODINGS,
} from "./_body.ts";
import { type BufferedReader, type ByteChannel, concat } from "./_channel.ts";
import { credentialForms, EchoRedactor, redactString } from "./echo_guard.ts";
import {
  type BodyFraming,
  getHeader,
  getHeaders,
  type Headers1,
  HttpParseError,
  parseResponseHead,
  removeHeader,
  requestFraming,
  type RequestHead,
  responseFraming,
  serializeRequestHead,
  serializeResponseHead,
  setHeader,
} from "./http1.ts";
import { selectRules } from "./network_policy.ts";
import {
  hasDotSegments,
  resolveTarget,
  type Target,
  type Tunnel,
} from "./_request_target.ts";
import {
  reasonPhrase,
  type RefusalCode,
  writeLocalResponse,
  writeRefusal,
} from "./_responses.ts";
import type { SessionContext } from "./session_context.ts";
import { type Upstream, UpstreamError } from "./upstream.ts";
import { relayWebSocket } from "./_websocket.ts";
import {
  HOP_BY_HOP,
  isWebSocketUpgrade,
  prepareUpstreamHeaders,
  substitutePlaceholders,
  wantsClose,
} from "./_upstream_request.ts";

/** Bodies up to this size are sent with their head in one write. */
const SMALL_BODY = 64 * 1024;

async function collect(
  chunks: AsyncIterable<Uint8Array>,
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

export async function handleRequest(
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
  const build = (
    fields: Partial<EgressEvent> & Pick<EgressEvent, "decision" | "rule">,
  ) =>
    event(ctx, started, {
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
    });
  const record = (
    fields: Partial<EgressEvent> & Pick<EgressEvent, "decision" | "rule">,
  ) => ctx.audit(build(fields));
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
  for (const p of substituted) {
    secrets.push(p.value, ...credentialForms(p.value));
  }
  prepareUpstreamHeaders(headers, websocket, injected);
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

  const placeholders = substituted.map((p) => p.name);
  // The run has ended: nothing more is dialled or sent for it.
  if (ctx.exchange?.cancelled) return false;
  // If the run ends while this request waits for a connection, the audit
  // says so (and nothing is sent: see the `cancelled` check below).
  ctx.exchange?.hold(() =>
    build({
      decision: "error",
      rule: decision.id,
      ...applied,
      reason: "the run ended before the request was forwarded",
      status: null,
      injected,
      placeholders,
    })
  );
  let upstream: Upstream;
  try {
    upstream = await ctx.pool.acquire(
      { host: target.host, port: target.port, tls: secure },
      active.dial,
      {
        // Never a connection of another sandbox, and one that carried a
        // credential only for that same credential (connection-bound auth:
        // NTLM, Negotiate, sessions keyed on the first request).
        owner: ctx.poolOwner,
        injected: headers.filter(([name, value]) =>
          injected.includes(name.toLowerCase()) ||
          secrets.some((secret) => secret !== "" && value.includes(secret))
        ),
      },
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
  // The upstream's status once its response head is in (recorded even if
  // the program is gone before it is relayed).
  let answered: number | null = null;
  try {
    if (ctx.exchange?.cancelled) {
      // The run ended (and its record was written) while this request
      // waited: nothing goes out for a run that is over.
      return false;
    }
    // From here the request is on its way: if the run ends before the
    // answer, the record says what was sent, with what was injected.
    ctx.exchange?.hold(
      () =>
        build({
          decision: "allow",
          rule: decision.id,
          ...applied,
          reason: "the run ended before the upstream answered",
          status: null,
          injected,
          placeholders,
          bytesOut,
        }),
      () => upstream.channel.close(),
    );
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
    answered = responseHead.status;
    const redactor = secrets.length > 0 ? new EchoRedactor(secrets) : null;
    let headerRedactions = 0;
    const responseHeaders: Headers1 = [];
    for (const [name, value] of responseHead.headers) {
      if (redactor) {
        // A name can carry the secret too ("X-Seen-<token>: 1"); a name
        // cannot hold the marker, so such a field is dropped.
        const inName = redactString(name, secrets).count;
        if (inName > 0) {
          headerRedactions += inName;
          continue;
        }
        const { text, count } = redactString(value, secrets);
        headerRedactions += count;
        responseHeaders.push([name, text]);
      } else {
        responseHeaders.push([name, value]);
      }
    }
    if (websocket && responseHead.status === 101) {
      if (
        redactor &&
        getHeaders(responseHead.headers, "sec-websocket-extensions").length > 0
      ) {
        // None was offered: an upstream that compresses anyway (RSV1) would
        // hand the program frames the guard cannot read and it can inflate.
        throw new UpstreamError(
          502,
          `cannot check the WebSocket from '${target.host}' for echoed secrets: unsupported extension`,
        );
      }
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
        placeholders,
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
    const coding = guardableCoding(
      getHeaders(responseHead.headers, "content-encoding"),
    ) ?? undefined;
    if (guarded && coding === undefined) {
      // Decided before any byte goes out: never a 200 the guard cannot see
      // into (an unknown coding, a list, or two lines: the guard would
      // decode one way, the program another). The value is not quoted: it
      // is the upstream's text and may hold the echoed secret.
      throw new UpstreamError(
        502,
        `cannot check the response from '${target.host}' for echoed secrets: unsupported content-encoding`,
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
    // Streamed bodies are read ahead: fewer, larger chunks (see readAhead).
    // On an early exit the upstream is released as not reusable, which ends
    // a read still pending.
    const streamed = () => readAhead(body);
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
      bytesIn = await rawWriter((b) => client.write(b))(streamed());
    } else {
      // Chunked, close-delimited or guarded (a redaction changes lengths).
      responseHeaders.push(["Transfer-Encoding", "chunked"]);
      headSent = true;
      await client.write(serializeResponseHead(head));
      bytesIn = await chunkedWriter((b) => client.write(b))(
        guarded ? guardBody(streamed(), coding, redactor!) : streamed(),
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
      placeholders,
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
        // Redacted: no message may carry an echoed secret onwards.
        `exchange with '${target.host}' failed: ${
          redactString(String((error as Error)?.message), secrets).text
        }`,
      );
    if (answered !== null && client.closed) {
      // The upstream answered but the program had gone: the request WAS
      // served (and credentialed); say so, not "502".
      record({
        decision: "allow",
        rule: decision.id,
        ...applied,
        reason:
          "the program closed its connection before the response reached it",
        status: answered,
        injected,
        placeholders,
        bytesOut,
      });
    } else {
      record({
        decision: "error",
        rule: decision.id,
        ...applied,
        reason: e.message,
        status: e.status,
        injected,
        placeholders,
        bytesOut,
      });
    }
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
