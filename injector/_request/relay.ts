/**
 * Phase 5, relay: the upstream's answer back to the program, through the
 * echo guard when a secret went out (headers, body, WebSocket frames), with
 * the framing the injector sets itself. And the exchange's failure: once a
 * request was forwarded, any error ends here, audited and answered (or the
 * connection closed, if a response head is already on its way).
 *
 * @module
 */

import { redactQuery } from "../audit.ts";
import { auditEvent } from "../_audit_event.ts";
import {
  chunkedWriter,
  guardableCoding,
  guardBody,
  rawWriter,
  readAhead,
  readBody,
} from "../_body.ts";
import { concat } from "../_channel.ts";
import { EchoRedactor, redactString } from "../echo_guard.ts";
import {
  getHeader,
  getHeaders,
  type Headers1,
  HttpParseError,
  parseResponseHead,
  removeHeader,
  responseFraming,
  type ResponseHead,
  serializeResponseHead,
} from "../http1.ts";
import { reasonPhrase, writeRefusal } from "../_responses.ts";
import { type Upstream, UpstreamError } from "../upstream.ts";
import { relayWebSocket } from "../_websocket.ts";
import { HOP_BY_HOP, wantsClose } from "../_upstream_request.ts";
import { type ProxyExchange, record } from "./exchange.ts";

/** Bodies up to this size are sent with their head in one write. */
const SMALL_BODY = 64 * 1024;

/** The upstream's final response head, its fields already guarded. */
interface Answer {
  /** The head as the upstream sent it. */
  head: ResponseHead;
  /** Its fields with echoed secrets redacted (names holding one dropped). */
  headers: Headers1;
  /** The echo guard, when a secret went out with the request. */
  redactor: EchoRedactor | null;
  /** Secret occurrences redacted from the header fields. */
  headerRedactions: number;
}

/**
 * Reads the upstream's answer and relays it to the program. Throws on any
 * failure; {@linkcode fail} turns that into the exchange's outcome.
 *
 * @param x The exchange, its request forwarded.
 * @param upstream The connection the request went out on.
 * @returns Whether the program's connection stays open.
 *
 * @example Usage
 * ```ts ignore
 * return await forward(x, upstream) ?? await relay(x, upstream);
 * ```
 */
export async function relay(
  x: ProxyExchange,
  upstream: Upstream,
): Promise<boolean> {
  const head = await readFinalResponseHead(upstream);
  if (head === null) {
    throw new UpstreamError(
      502,
      `'${x.target.host}' closed the connection without a response`,
    );
  }
  x.answered = head.status;
  const answer = guardHeaders(x, head);
  if (x.websocket && head.status === 101) {
    return await relayUpgrade(x, upstream, answer);
  }
  return await relayResponse(x, upstream, answer);
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

function guardHeaders(x: ProxyExchange, head: ResponseHead): Answer {
  const { secrets } = x;
  const redactor = secrets.length > 0 ? new EchoRedactor(secrets) : null;
  let headerRedactions = 0;
  const headers: Headers1 = [];
  for (const [name, value] of head.headers) {
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
      headers.push([name, text]);
    } else {
      headers.push([name, value]);
    }
  }
  return { head, headers, redactor, headerRedactions };
}

async function relayUpgrade(
  x: ProxyExchange,
  upstream: Upstream,
  answer: Answer,
): Promise<boolean> {
  const { redactor } = answer;
  if (
    redactor &&
    getHeaders(answer.head.headers, "sec-websocket-extensions").length > 0
  ) {
    // None was offered: an upstream that compresses anyway (RSV1) would
    // hand the program frames the guard cannot read and it can inflate.
    throw new UpstreamError(
      502,
      `cannot check the WebSocket from '${x.target.host}' for echoed secrets: unsupported extension`,
    );
  }
  const head = serializeResponseHead({
    ...answer.head,
    version: "HTTP/1.1",
    reason: reasonPhrase(101),
    headers: answer.headers,
  });
  x.headSent = true;
  await x.client.write(head);
  record(x, {
    decision: "allow",
    rule: x.decision.id,
    ...x.applied,
    status: 101,
    injected: x.injected,
    placeholders: x.placeholders,
    bytesOut: x.bytesOut,
  });
  const relayed = await relayWebSocket(
    x.reader,
    x.client,
    upstream,
    redactor,
    x.secrets,
  );
  reportEcho(x, answer.headerRedactions + relayed.redactions);
  return false;
}

async function relayResponse(
  x: ProxyExchange,
  upstream: Upstream,
  answer: Answer,
): Promise<boolean> {
  const { client, request } = x;
  const { redactor, headers } = answer;
  const responseBody = responseFraming(answer.head, request.method);
  for (const name of HOP_BY_HOP) removeHeader(headers, name);
  removeHeader(headers, "content-length");
  const close = wantsClose(request);
  const guarded = redactor !== null && responseBody.kind !== "none";
  const coding = guardableCoding(
    getHeaders(answer.head.headers, "content-encoding"),
  ) ?? undefined;
  if (guarded && coding === undefined) {
    // Decided before any byte goes out: never a 200 the guard cannot see
    // into (an unknown coding, a list, or two lines: the guard would
    // decode one way, the program another). The value is not quoted: it
    // is the upstream's text and may hold the echoed secret.
    throw new UpstreamError(
      502,
      `cannot check the response from '${x.target.host}' for echoed secrets: unsupported content-encoding`,
    );
  }
  if (guarded) removeHeader(headers, "content-encoding");
  if (close) headers.push(["Connection", "close"]);
  const head = {
    version: "HTTP/1.1" as const,
    status: answer.head.status,
    // The upstream's reason phrase is its own text: it could quote the
    // credential ("401 Token Bearer sk-... expired"). Only standard ones.
    reason: reasonPhrase(answer.head.status),
    headers,
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
    headers.push(["Content-Length", String(bytes.length)]);
    x.headSent = true;
    await client.write(concat([serializeResponseHead(head), bytes]));
    bytesIn = bytes.length;
  } else if (responseBody.kind === "none") {
    const original = getHeader(answer.head.headers, "content-length");
    if (original !== undefined && request.method.toUpperCase() === "HEAD") {
      headers.push(["Content-Length", original]);
    }
    x.headSent = true;
    await client.write(serializeResponseHead(head));
  } else if (!guarded && responseBody.kind === "length") {
    headers.push(["Content-Length", String(responseBody.length)]);
    x.headSent = true;
    await client.write(serializeResponseHead(head));
    bytesIn = await rawWriter((b) => client.write(b))(streamed());
  } else {
    // Chunked, close-delimited or guarded (a redaction changes lengths).
    headers.push(["Transfer-Encoding", "chunked"]);
    x.headSent = true;
    await client.write(serializeResponseHead(head));
    bytesIn = await chunkedWriter((b) => client.write(b))(
      guarded ? guardBody(streamed(), coding, redactor!) : streamed(),
    );
  }
  x.reusable = responseBody.kind !== "close" &&
    !/\bclose\b/i.test(getHeader(answer.head.headers, "connection") ?? "");
  record(x, {
    decision: "allow",
    rule: x.decision.id,
    ...x.applied,
    status: answer.head.status,
    injected: x.injected,
    placeholders: x.placeholders,
    bytesOut: x.bytesOut,
    bytesIn,
    ...(redactor
      ? { redactions: answer.headerRedactions + redactor.redactions }
      : {}),
  });
  reportEcho(x, answer.headerRedactions + (redactor?.redactions ?? 0));
  if (close) client.close();
  return !close;
}

async function collect(
  chunks: AsyncIterable<Uint8Array>,
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

/**
 * The exchange failed after its request was forwarded (or while it was):
 * records what happened and tells the program, in words that cannot carry
 * an echoed secret.
 *
 * @param x The exchange.
 * @param error What was thrown.
 * @returns False: the program's connection is closed.
 *
 * @example Usage
 * ```ts ignore
 * try { ... } catch (error) { return await fail(x, error); }
 * ```
 */
export async function fail(x: ProxyExchange, error: unknown): Promise<false> {
  const { client, target } = x;
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
        redactString(String((error as Error)?.message), x.secrets).text
      }`,
    );
  if (x.answered !== null && client.closed) {
    // The upstream answered but the program had gone: the request WAS
    // served (and credentialed); say so, not "502".
    record(x, {
      decision: "allow",
      rule: x.decision.id,
      ...x.applied,
      reason:
        "the program closed its connection before the response reached it",
      status: x.answered,
      injected: x.injected,
      placeholders: x.placeholders,
      bytesOut: x.bytesOut,
    });
  } else {
    record(x, {
      decision: "error",
      rule: x.decision.id,
      ...x.applied,
      reason: e.message,
      status: e.status,
      injected: x.injected,
      placeholders: x.placeholders,
      bytesOut: x.bytesOut,
    });
  }
  // Once a response head is on its way, a failure can only end the
  // connection: a second status line would be read as body bytes.
  if (x.headSent) client.close();
  else {
    await writeRefusal(client, e.status, "upstream-error", e.message, true);
  }
  return false;
}

function reportEcho(x: ProxyExchange, redactions: number): void {
  if (redactions === 0) return;
  x.ctx.audit(auditEvent(x.ctx, x.started, {
    kind: "secret-echo",
    method: x.request.method,
    scheme: x.scheme,
    host: x.target.host,
    port: x.target.port,
    path: redactQuery(x.target.path),
    decision: "allow",
    rule: x.decision.id,
    reason:
      `the response echoed an injected secret ${redactions} time(s); replaced before reaching the sandbox`,
    redactions,
    status: null,
  }));
}
