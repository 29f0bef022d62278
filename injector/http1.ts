/**
 * A strict HTTP/1.1 message parser for the injector: request and response
 * heads, body framing, and the chunked transfer coding.
 *
 * The injector sits between the sandbox and the internet and parses the
 * sandbox's requests itself. Every place where two HTTP implementations may
 * disagree about where a message ends (duplicate or odd `Content-Length`,
 * `Content-Length` with `Transfer-Encoding`, obs-fold, bare LF, chunk sizes
 * with signs or spaces) is a request-smuggling shape: the injector would
 * check one request while the upstream executes another. This module refuses
 * all of them instead of guessing, with an {@linkcode HttpParseError} carrying
 * the status to answer with. Only the framings it accepts are re-emitted
 * (heads are re-serialized, chunked bodies re-chunked), so what the upstream
 * sees is exactly what was checked.
 *
 * Bytes are handled as "latin1 strings": one char per byte (0-255), so
 * obs-text in header values survives a parse/serialize round trip unchanged.
 *
 * The file is longer than the usual ~400 lines on purpose: the head parser,
 * the framing rules and the chunked decoder form one security boundary and
 * must agree with each other, so they are reviewed together.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { findHeadEnd, parseRequestHead, requestFraming } from "./http1.ts";
 * const bytes = new TextEncoder().encode("GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n");
 * const end = findHeadEnd(bytes);
 * const head = parseRequestHead(bytes.subarray(0, end));
 * assert.equal(head.target, "http://a.example/");
 * assert.deepEqual(requestFraming(head), { kind: "none" });
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";

/** Header fields in wire order, names in their original letter case. */
export type Headers1 = [name: string, value: string][];

/** A parsed request line and its header fields. */
export interface RequestHead {
  /** The method, case-sensitive (`GET`, `CONNECT`, ...). */
  method: string;
  /** The request target as sent (origin, absolute, authority or `*` form). */
  target: string;
  /** The protocol version. */
  version: "HTTP/1.1" | "HTTP/1.0";
  /** Header fields, values trimmed of surrounding whitespace. */
  headers: Headers1;
}

/** A parsed status line and its header fields. */
export interface ResponseHead {
  /** The protocol version. */
  version: "HTTP/1.1" | "HTTP/1.0";
  /** The three-digit status code. */
  status: number;
  /** The reason phrase, possibly empty. */
  reason: string;
  /** Header fields, values trimmed of surrounding whitespace. */
  headers: Headers1;
}

/** How the body of a message is delimited. */
export type BodyFraming =
  /** No body at all. */
  | { kind: "none" }
  /** Exactly `length` bytes. */
  | { kind: "length"; length: number }
  /** The chunked transfer coding (see {@linkcode ChunkedDecoder}). */
  | { kind: "chunked" }
  /** Everything until the upstream closes the connection (responses only). */
  | { kind: "close" };

/**
 * A message the injector refuses to parse or forward. `status` is the
 * response to send to the sandbox (for a request) or the reason to fail the
 * exchange (for a response).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { HttpParseError, parseRequestHead } from "./http1.ts";
 * try {
 *   parseRequestHead(new TextEncoder().encode("GET / HTTP/3.0\r\n\r\n"));
 * } catch (error) {
 *   assert.ok(error instanceof HttpParseError);
 *   assert.equal(error.status, 505);
 * }
 * ```
 */
export class HttpParseError extends Error {
  /** The HTTP status that describes the problem. */
  readonly status: 400 | 413 | 431 | 501 | 505;

  /**
   * Creates the error.
   *
   * @param status The HTTP status that describes the problem.
   * @param message What was refused and why.
   */
  constructor(status: 400 | 413 | 431 | 501 | 505, message: string) {
    super(message);
    this.name = "HttpParseError";
    this.status = status;
  }
}

/**
 * Size limits for message heads (and chunked trailers). Bounded heads keep a
 * slow or hostile peer from making the injector buffer without end.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { LIMITS } from "./http1.ts";
 * assert.equal(LIMITS.headBytes, 65536);
 * ```
 */
export const LIMITS: { readonly headBytes: 65536; readonly headerCount: 200 } =
  Object
    .freeze({ headBytes: 65536, headerCount: 200 });

const HTAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const COLON = 0x3a;
const SEMICOLON = 0x3b;
/** A chunk-size line (size and extensions) longer than this is refused. */
const MAX_CHUNK_LINE = 16384;

/** RFC 9110 `tchar`: the characters of methods and header names. */
const TOKEN = new Uint8Array(256);
/** RFC 9110 field-value characters: HTAB, SP, VCHAR and obs-text. */
const FIELD = new Uint8Array(256);
/** Request-target characters: visible ASCII only. */
const TARGET = new Uint8Array(256);
/** Hex digit values plus one, 0 for non-hex. */
const HEX = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = TOKEN[c + 0x20] = 1;
for (let c = 0x21; c <= 0x7e; c++) FIELD[c] = TARGET[c] = 1;
for (let c = 0x80; c <= 0xff; c++) FIELD[c] = 1;
FIELD[HTAB] = FIELD[SP] = 1;
for (let d = 0; d < 16; d++) {
  HEX["0123456789abcdef".charCodeAt(d)] =
    HEX["0123456789ABCDEF".charCodeAt(d)] =
      d + 1;
}

function refuse(
  status: 400 | 413 | 431 | 501 | 505,
  what: string,
  problem: string,
): HttpParseError {
  return new HttpParseError(status, `Refusing ${what}: ${problem}`);
}

/** One char per byte; Deno's Buffer "latin1" is a true bijection (unlike TextDecoder's windows-1252). */
function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(
    "latin1",
  );
}

/**
 * Peer-controlled text for an error message: at most 40 chars, printable
 * ASCII only. Messages end up in logs and error pages; a raw quote could
 * forge log lines or carry an echoed secret out of a response head.
 */
function quote(value: string): string {
  const cut = value.length > 40 ? value.slice(0, 40) + "..." : value;
  return cut.replace(/[^\x20-\x7e]/g, "?");
}

function describeByte(byte: number): string {
  if (byte === 0) return "a NUL byte";
  if (byte === CR) return "a bare CR";
  if (byte === LF) return "a bare LF";
  if (byte === SP) return "a space";
  if (byte === HTAB) return "a tab";
  const hex = `0x${byte.toString(16).padStart(2, "0")}`;
  if (byte < SP || byte === 0x7f) return `the control character ${hex}`;
  if (byte >= 0x80) return `the non-ASCII byte ${hex}`;
  return `the character '${String.fromCharCode(byte)}'`;
}

/**
 * Finds the end of the message head that starts at `buf[0]`.
 *
 * Call it again as bytes arrive; pass `start` (the previous length minus 3)
 * to skip bytes already scanned. The head always begins at index 0: `start`
 * is only where scanning resumes, so the size limit and the line-ending
 * checks do not move with it.
 *
 * @param buf Bytes received so far, head first.
 * @param start Where to resume scanning: at most the length at the previous
 *   call minus 3 (so a CRLFCRLF split across calls is still seen). Default 0.
 * @returns The index just after the final CRLFCRLF, or -1 if it has not
 *   arrived yet.
 * @throws {HttpParseError} 400 on a bare LF line ending; 431 when the head
 *   exceeds {@linkcode LIMITS}`.headBytes`.
 * @throws {RangeError} If `start` is outside `buf`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { findHeadEnd } from "./http1.ts";
 * const bytes = new TextEncoder().encode("GET / HTTP/1.1\r\n\r\nbody");
 * assert.equal(findHeadEnd(bytes.subarray(0, 10)), -1);
 * assert.equal(findHeadEnd(bytes, 10 - 3), 18);
 * ```
 */
export function findHeadEnd(buf: Uint8Array, start = 0): number {
  if (!Number.isInteger(start) || start < 0 || start > buf.length) {
    throw new RangeError(
      `Cannot find the end of an HTTP head as 'start' must be an offset in the buffer: current value is ${start}`,
    );
  }
  const limit = LIMITS.headBytes;
  const view = buf.length > limit ? buf.subarray(0, limit) : buf;
  let lf = view.indexOf(LF, start);
  while (lf !== -1) {
    // A bare LF ends a line for lenient parsers but not for strict ones: the
    // two would split the head differently (header injection, smuggling).
    // Looks back before `start`: a CR may have arrived in an earlier read.
    if (lf === 0 || view[lf - 1] !== CR) {
      throw refuse(400, "message", "bare LF line ending (request smuggling)");
    }
    if (lf >= 3 && view[lf - 2] === LF && view[lf - 3] === CR) return lf + 1;
    lf = view.indexOf(LF, lf + 1);
  }
  // An endless head would make the injector buffer without bound. Measured
  // from index 0, never from `start`, so resumed scans cannot creep past it.
  if (buf.length >= limit) {
    throw refuse(431, "message", `head larger than ${LIMITS.headBytes} bytes`);
  }
  return -1;
}

/** Index of the CR ending the line that starts at `pos`. */
function lineEnd(head: Uint8Array, pos: number, what: string): number {
  const lf = head.indexOf(LF, pos);
  if (lf === -1) {
    throw refuse(400, what, "head does not end with an empty line");
  }
  // Bare LF: see findHeadEnd.
  if (lf === pos || head[lf - 1] !== CR) {
    throw refuse(400, what, "bare LF line ending (request smuggling)");
  }
  return lf - 1;
}

function parseFields(
  head: Uint8Array,
  text: string,
  pos: number,
  what: string,
): Headers1 {
  const headers: Headers1 = [];
  for (;;) {
    const end = lineEnd(head, pos, what);
    if (end === pos) {
      // Bytes after the blank line belong to the body: a caller that passed
      // them here has mis-framed the message.
      if (end + 2 !== head.length) {
        throw refuse(400, what, "bytes after the end of the head");
      }
      return headers;
    }
    const first = head[pos]!;
    // obs-fold continues the previous value for old parsers and starts a
    // bogus field for others: two views of one head (header smuggling).
    if (first === SP || first === HTAB) {
      throw refuse(
        400,
        what,
        "obs-fold line folding is not allowed (header smuggling)",
      );
    }
    // Bounds the work and memory one head can cost.
    if (headers.length === LIMITS.headerCount) {
      throw refuse(431, what, `more than ${LIMITS.headerCount} header fields`);
    }
    let i = pos;
    while (i < end && TOKEN[head[i]!] === 1) i++;
    if (i === end) {
      throw refuse(
        400,
        what,
        headers.length === 0
          ? "the first header line has no colon"
          : `the header line after '${quote(headers.at(-1)![0])}' has no colon`,
      );
    }
    const stop = head[i]!;
    if (stop !== COLON) {
      // "Content-Length : 5" is Content-Length to some parsers and an unknown
      // field to others (request smuggling).
      let k = i;
      while (k < end && (head[k] === SP || head[k] === HTAB)) k++;
      if (head[k] === COLON) {
        throw refuse(
          400,
          what,
          `whitespace between header name '${
            quote(text.slice(pos, i))
          }' and colon`,
        );
      }
      throw refuse(
        400,
        what,
        `header name contains ${
          describeByte(stop)
        }, which is not a token character`,
      );
    }
    if (i === pos) throw refuse(400, what, "empty header name");
    let from = i + 1;
    let to = end;
    while (from < to && (head[from] === SP || head[from] === HTAB)) from++;
    while (to > from && (head[to - 1] === SP || head[to - 1] === HTAB)) to--;
    for (let j = from; j < to; j++) {
      // NUL truncates values in C-based upstreams; a lone CR is a line break
      // to some of them (header injection); other controls confuse logs.
      if (FIELD[head[j]!] !== 1) {
        throw refuse(
          400,
          what,
          `header '${quote(text.slice(pos, i))}' contains ${
            describeByte(head[j]!)
          }`,
        );
      }
    }
    headers.push([text.slice(pos, i), text.slice(from, to)]);
    pos = end + 2;
  }
}

function parseVersion(
  text: string,
  from: number,
  to: number,
  what: string,
  preface: boolean,
): "HTTP/1.1" | "HTTP/1.0" {
  const version = text.slice(from, to);
  if (version === "HTTP/1.1" || version === "HTTP/1.0") return version;
  if (preface && version === "HTTP/2.0") {
    throw refuse(
      505,
      what,
      "HTTP/2 prior knowledge ('PRI * HTTP/2.0' preface) is not supported; speak HTTP/1.1 to the proxy",
    );
  }
  // HTTP-version = "HTTP/" DIGIT "." DIGIT (case-sensitive).
  if (/^HTTP\/\d\.\d$/.test(version)) {
    throw refuse(
      505,
      what,
      `HTTP version '${quote(version)}' is not supported; use HTTP/1.1`,
    );
  }
  throw refuse(400, what, `malformed HTTP version '${quote(version)}'`);
}

/**
 * Parses a request head: request line and header fields.
 *
 * Also checks the body framing ({@linkcode requestFraming}) and that at most
 * one `Host` is present, so an accepted head is never a smuggling shape.
 *
 * @param head The head, including its final CRLFCRLF (see {@linkcode findHeadEnd}).
 * @returns The parsed head.
 * @throws {HttpParseError} 400 for malformed or ambiguous heads, 431 for
 *   oversized ones, 501 for unsupported transfer codings, 505 for versions
 *   other than HTTP/1.0 and HTTP/1.1.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { getHeader, parseRequestHead } from "./http1.ts";
 * const head = parseRequestHead(new TextEncoder().encode(
 *   "POST /v1 HTTP/1.1\r\nHost: a.example\r\nContent-Length: 2\r\n\r\n",
 * ));
 * assert.equal(head.method, "POST");
 * assert.equal(getHeader(head.headers, "content-length"), "2");
 * ```
 */
export function parseRequestHead(head: Uint8Array): RequestHead {
  const what = "request";
  // The same bound as findHeadEnd, for callers that framed the head themselves.
  if (head.length > LIMITS.headBytes) {
    throw refuse(431, what, `head larger than ${LIMITS.headBytes} bytes`);
  }
  const text = latin1(head);
  const end = lineEnd(head, 0, what);
  const sp1 = text.indexOf(" ");
  if (sp1 === -1 || sp1 > end) {
    throw refuse(400, what, "request line is not 'METHOD TARGET VERSION'");
  }
  if (sp1 === 0) throw refuse(400, what, "empty method in request line");
  for (let i = 0; i < sp1; i++) {
    if (TOKEN[head[i]!] !== 1) {
      throw refuse(
        400,
        what,
        `method contains ${
          describeByte(head[i]!)
        }, which is not a token character`,
      );
    }
  }
  const sp2 = text.indexOf(" ", sp1 + 1);
  if (sp2 === -1 || sp2 > end) {
    throw refuse(400, what, "request line is not 'METHOD TARGET VERSION'");
  }
  // A second space or an empty target means the line splits differently for
  // a lenient parser (which might take "/a b" as the target).
  if (sp2 === sp1 + 1) {
    throw refuse(
      400,
      what,
      "empty request target or double space in request line",
    );
  }
  for (let i = sp1 + 1; i < sp2; i++) {
    if (TARGET[head[i]!] !== 1) {
      throw refuse(
        400,
        what,
        `request target contains ${describeByte(head[i]!)}`,
      );
    }
  }
  const method = text.slice(0, sp1);
  const target = text.slice(sp1 + 1, sp2);
  const version = parseVersion(
    text,
    sp2 + 1,
    end,
    what,
    method === "PRI" && target === "*",
  );
  const parsed: RequestHead = {
    method,
    target,
    version,
    headers: parseFields(head, text, end + 2, what),
  };
  let hosts = 0;
  for (const [name] of parsed.headers) {
    if (name.length === 4 && name.toLowerCase() === "host") hosts++;
  }
  // Two Hosts let the policy check one destination while the upstream (or a
  // virtual host behind it) routes by the other.
  if (hosts > 1) {
    throw refuse(400, what, "more than one Host header (policy bypass)");
  }
  requestFraming(parsed);
  return parsed;
}

/**
 * Parses a response head: status line and header fields.
 *
 * @param head The head, including its final CRLFCRLF.
 * @returns The parsed head.
 * @throws {HttpParseError} 400 for malformed heads, 431 for oversized ones,
 *   505 for versions other than HTTP/1.0 and HTTP/1.1.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseResponseHead } from "./http1.ts";
 * const head = parseResponseHead(new TextEncoder().encode("HTTP/1.1 404 Not Found\r\n\r\n"));
 * assert.equal(head.status, 404);
 * assert.equal(head.reason, "Not Found");
 * ```
 */
export function parseResponseHead(head: Uint8Array): ResponseHead {
  const what = "response";
  if (head.length > LIMITS.headBytes) {
    throw refuse(431, what, `head larger than ${LIMITS.headBytes} bytes`);
  }
  const text = latin1(head);
  const end = lineEnd(head, 0, what);
  const sp = text.indexOf(" ");
  if (sp === -1 || sp > end) {
    throw refuse(400, what, "status line is not 'VERSION STATUS REASON'");
  }
  const version = parseVersion(text, 0, sp, what, false);
  // status-code = 3DIGIT; the SP before an empty reason is often omitted.
  const d0 = head[sp + 1]! - 0x30;
  const d1 = head[sp + 2]! - 0x30;
  const d2 = head[sp + 3]! - 0x30;
  const after = sp + 4;
  if (
    after > end || d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9 ||
    (after < end && head[after] !== SP)
  ) {
    throw refuse(400, what, "status code is not three digits");
  }
  for (let i = after + 1; i < end; i++) {
    // Same characters as a field value: a CR here would split the line.
    if (FIELD[head[i]!] !== 1) {
      throw refuse(
        400,
        what,
        `reason phrase contains ${describeByte(head[i]!)}`,
      );
    }
  }
  return {
    version,
    status: d0 * 100 + d1 * 10 + d2,
    reason: after < end ? text.slice(after + 1, end) : "",
    headers: parseFields(head, text, end + 2, what),
  };
}

/** Reads the framing headers once, refusing every ambiguous combination. */
function framingHeaders(
  headers: Headers1,
  version: string,
  what: "request" | "response",
): { length: number | undefined; chunked: boolean } {
  let length: number | undefined;
  let lengths = 0;
  let codings: string | undefined;
  let codingHeaders = 0;
  for (const [name, value] of headers) {
    if (name.length === 14 && name.toLowerCase() === "content-length") {
      lengths++;
      // Two lengths (even equal ones) are two candidate message ends to
      // whoever picks the other one (request smuggling).
      if (lengths > 1) {
        throw refuse(
          400,
          what,
          "more than one Content-Length header (request smuggling)",
        );
      }
      length = parseContentLength(value, what);
    } else if (
      name.length === 17 && name.toLowerCase() === "transfer-encoding"
    ) {
      codingHeaders++;
      codings = value;
    }
  }
  if (codings === undefined) return { length, chunked: false };
  // CL.TE / TE.CL desync: the two headers give two different message ends.
  if (length !== undefined) {
    throw refuse(
      400,
      what,
      "Content-Length and Transfer-Encoding together (request smuggling)",
    );
  }
  // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty;
  // a 1.0 hop would read the body up to the connection close instead.
  if (version === "HTTP/1.0") {
    throw refuse(
      400,
      what,
      "Transfer-Encoding in an HTTP/1.0 message (request smuggling)",
    );
  }
  // "chunked, identity", "xchunked", a second header line: parsers disagree
  // on which coding ends the body, so only one exact "chunked" is accepted.
  if (
    codingHeaders !== 1 || codings.length !== 7 ||
    codings.toLowerCase() !== "chunked"
  ) {
    throw refuse(
      501,
      what,
      `Transfer-Encoding other than a single 'chunked' is not supported: '${
        quote(codings)
      }'`,
    );
  }
  return { length: undefined, chunked: true };
}

function parseContentLength(value: string, what: string): number {
  // 1*DIGIT only: "+5", "5 5", "5,5", "0x5" or "" each mean something else
  // (or nothing) to another parser (request smuggling). 15 digits stay exact
  // as a JavaScript number.
  if (value.length === 0 || value.length > 15) {
    throw refuse(
      400,
      what,
      `Content-Length '${
        quote(value)
      }' is not 1 to 15 decimal digits (request smuggling)`,
    );
  }
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const d = value.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) {
      throw refuse(
        400,
        what,
        `Content-Length '${
          quote(value)
        }' is not a decimal number (request smuggling)`,
      );
    }
    n = n * 10 + d;
  }
  return n;
}

const NONE: BodyFraming = Object.freeze({ kind: "none" });
const CHUNKED: BodyFraming = Object.freeze({ kind: "chunked" });
const CLOSE: BodyFraming = Object.freeze({ kind: "close" });

/**
 * Decides how a request's body is delimited.
 *
 * @param head A request head (parsed or edited).
 * @returns The framing; `none` when neither Content-Length nor
 *   Transfer-Encoding is present.
 * @throws {HttpParseError} 400 for a duplicate or malformed Content-Length,
 *   Content-Length with Transfer-Encoding, or Transfer-Encoding in HTTP/1.0;
 *   501 for a Transfer-Encoding other than a single `chunked`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { requestFraming } from "./http1.ts";
 * const head = { method: "POST", target: "/", version: "HTTP/1.1" as const, headers: [["Content-Length", "3"]] as [string, string][] };
 * assert.deepEqual(requestFraming(head), { kind: "length", length: 3 });
 * ```
 */
export function requestFraming(head: RequestHead): BodyFraming {
  const { length, chunked } = framingHeaders(
    head.headers,
    head.version,
    "request",
  );
  if (chunked) return CHUNKED;
  return length === undefined ? NONE : { kind: "length", length };
}

/**
 * Decides how a response's body is delimited.
 *
 * @param head A response head.
 * @param requestMethod The method of the request it answers.
 * @returns `none` for 1xx, 204, 304, any answer to HEAD and a 2xx to CONNECT
 *   (the connection becomes a tunnel); else chunked, length, or close.
 * @throws {HttpParseError} The same framing errors as
 *   {@linkcode requestFraming} (unsupported codings are 501 too).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { responseFraming } from "./http1.ts";
 * const head = { version: "HTTP/1.1" as const, status: 200, reason: "OK", headers: [["Content-Length", "5"]] as [string, string][] };
 * assert.deepEqual(responseFraming(head, "GET"), { kind: "length", length: 5 });
 * assert.deepEqual(responseFraming(head, "HEAD"), { kind: "none" });
 * ```
 */
export function responseFraming(
  head: ResponseHead,
  requestMethod: string,
): BodyFraming {
  // Validated even when unused: an ambiguous response on a kept-alive
  // connection is a response-splitting shape.
  const { length, chunked } = framingHeaders(
    head.headers,
    head.version,
    "response",
  );
  const status = head.status;
  if (
    status < 200 || status === 204 || status === 304 || requestMethod === "HEAD"
  ) return NONE;
  if (requestMethod === "CONNECT" && status < 300) return NONE;
  if (chunked) return CHUNKED;
  return length === undefined ? CLOSE : { kind: "length", length };
}

/**
 * The first value of a header, by case-insensitive name.
 *
 * @param headers Header fields.
 * @param name The name, any letter case.
 * @returns The first value, or undefined.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { getHeader } from "./http1.ts";
 * assert.equal(getHeader([["Host", "a.example"]], "host"), "a.example");
 * ```
 */
export function getHeader(headers: Headers1, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [n, v] of headers) {
    if (n.length === lower.length && n.toLowerCase() === lower) return v;
  }
  return undefined;
}

/**
 * Every value of a header, by case-insensitive name, in order.
 *
 * @param headers Header fields.
 * @param name The name, any letter case.
 * @returns The values (empty if absent).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { getHeaders } from "./http1.ts";
 * assert.deepEqual(getHeaders([["Via", "a"], ["via", "b"]], "VIA"), ["a", "b"]);
 * ```
 */
export function getHeaders(headers: Headers1, name: string): string[] {
  const lower = name.toLowerCase();
  const values: string[] = [];
  for (const [n, v] of headers) {
    if (n.length === lower.length && n.toLowerCase() === lower) values.push(v);
  }
  return values;
}

/**
 * Sets a header: removes every header of that name (any letter case), then
 * appends one. Removing all spellings matters for injected credentials: a
 * sandbox-sent `authorization` must not survive next to the injected
 * `Authorization`.
 *
 * @param headers Header fields, changed in place.
 * @param name The name.
 * @param value The value.
 * @throws {TypeError} If the name is not a token or the value contains CR,
 *   LF, NUL or another control character (header injection).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { setHeader } from "./http1.ts";
 * const headers: [string, string][] = [["authorization", "fake"], ["Accept", "*\/*"]];
 * setHeader(headers, "Authorization", "Bearer real");
 * assert.deepEqual(headers, [["Accept", "*\/*"], ["Authorization", "Bearer real"]]);
 * ```
 */
export function setHeader(
  headers: Headers1,
  name: string,
  value: string,
): void {
  checkField(name, value, "set header");
  removeHeader(headers, name);
  headers.push([name, value]);
}

/**
 * Removes every header of a name (any letter case).
 *
 * @param headers Header fields, changed in place.
 * @param name The name.
 * @returns How many were removed.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { removeHeader } from "./http1.ts";
 * const headers: [string, string][] = [["Cookie", "a"], ["cookie", "b"], ["Host", "h"]];
 * assert.equal(removeHeader(headers, "COOKIE"), 2);
 * assert.deepEqual(headers, [["Host", "h"]]);
 * ```
 */
export function removeHeader(headers: Headers1, name: string): number {
  const lower = name.toLowerCase();
  let kept = 0;
  for (let i = 0; i < headers.length; i++) {
    const field = headers[i]!;
    if (field[0].length === lower.length && field[0].toLowerCase() === lower) {
      continue;
    }
    headers[kept++] = field;
  }
  const removed = headers.length - kept;
  headers.length = kept;
  return removed;
}

function checkField(name: string, value: string, action: string): void {
  if (name.length === 0) {
    throw new TypeError(`Cannot ${action} as the header name is empty`);
  }
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    // A space, colon or CRLF in a name forges a different field on the wire.
    if (c > 0xff || TOKEN[c] !== 1) {
      throw new TypeError(
        `Cannot ${action} as the header name is not a token: current value is '${name}'`,
      );
    }
  }
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    // CR/LF would end the field and inject new ones (header injection).
    if (c > 0xff || FIELD[c] !== 1) {
      throw new TypeError(
        `Cannot ${action} '${name}' as its value contains CR, LF, NUL, a control character or a non-latin1 character`,
      );
    }
  }
}

function encodeHead(
  startLine: string,
  headers: Headers1,
  action: string,
): Uint8Array<ArrayBuffer> {
  let text = startLine + "\r\n";
  for (const [name, value] of headers) {
    checkField(name, value, action);
    text += name + ": " + value + "\r\n";
  }
  text += "\r\n";
  const bytes = new Uint8Array(text.length);
  // Every char is <= 0xff here (checked above and by the start-line checks).
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/**
 * Serializes a request head (request line, fields, blank line).
 *
 * @param head The head.
 * @returns The bytes to send upstream.
 * @throws {TypeError} If the method is not a token, the target is empty or
 *   contains spaces, controls or non-ASCII, the version is unknown, or a
 *   field is invalid (see {@linkcode setHeader}).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { serializeRequestHead } from "./http1.ts";
 * const bytes = serializeRequestHead({ method: "GET", target: "/", version: "HTTP/1.1", headers: [["Host", "a"]] });
 * assert.equal(new TextDecoder().decode(bytes), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
 * ```
 */
export function serializeRequestHead(
  head: RequestHead,
): Uint8Array<ArrayBuffer> {
  const action = "serialize request head";
  if (!allIn(TOKEN, head.method)) {
    throw new TypeError(
      `Cannot ${action} as the method is not a token: current value is '${head.method}'`,
    );
  }
  // A space or CRLF in the target would rewrite the request line upstream.
  if (!allIn(TARGET, head.target)) {
    throw new TypeError(
      `Cannot ${action} as the target is empty or has spaces, controls or non-ASCII: current value is '${head.target}'`,
    );
  }
  checkVersion(head.version, action);
  return encodeHead(
    `${head.method} ${head.target} ${head.version}`,
    head.headers,
    action,
  );
}

/** Whether `text` is non-empty and every char is marked in `table`. */
function allIn(table: Uint8Array, text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff || table[c] !== 1) return false;
  }
  return text.length > 0;
}

function checkVersion(version: string, action: string): void {
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") {
    throw new TypeError(
      `Cannot ${action} as the version must be HTTP/1.1 or HTTP/1.0: current value is '${version}'`,
    );
  }
}

/**
 * Serializes a response head (status line, fields, blank line).
 *
 * @param head The head.
 * @returns The bytes to send to the sandbox.
 * @throws {TypeError} If the status is not 100-999, the reason contains
 *   controls, or a field is invalid.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { serializeResponseHead } from "./http1.ts";
 * const bytes = serializeResponseHead({ version: "HTTP/1.1", status: 204, reason: "No Content", headers: [] });
 * assert.equal(new TextDecoder().decode(bytes), "HTTP/1.1 204 No Content\r\n\r\n");
 * ```
 */
export function serializeResponseHead(
  head: ResponseHead,
): Uint8Array<ArrayBuffer> {
  const action = "serialize response head";
  checkVersion(head.version, action);
  if (
    !Number.isInteger(head.status) || head.status < 100 || head.status > 999
  ) {
    throw new TypeError(
      `Cannot ${action} as the status must be an integer 100-999: current value is ${head.status}`,
    );
  }
  for (let i = 0; i < head.reason.length; i++) {
    const c = head.reason.charCodeAt(i);
    // CRLF in the reason would inject header fields (response splitting).
    if (c > 0xff || FIELD[c] !== 1) {
      throw new TypeError(
        `Cannot ${action} as the reason contains CR, LF, NUL or a control character`,
      );
    }
  }
  return encodeHead(
    `${head.version} ${head.status} ${head.reason}`,
    head.headers,
    action,
  );
}

const S_SIZE = 0;
const S_SIZE_MORE = 1;
const S_EXT = 2;
const S_SIZE_LF = 3;
const S_DATA = 4;
const S_DATA_CR = 5;
const S_DATA_LF = 6;
const S_TRAILER_START = 7;
const S_TRAILER_NAME = 8;
const S_TRAILER_VALUE = 9;
const S_TRAILER_LF = 10;
const S_FINAL_LF = 11;
const S_DONE = 12;

const CHUNKED_BODY = "chunked body";

/**
 * An incremental decoder for the chunked transfer coding (RFC 9112 7.1).
 * Input may be split at any byte. Chunk extensions and trailer fields are
 * validated and dropped; the injector re-chunks what it forwards, so the
 * upstream only ever sees framing this decoder agreed with.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ChunkedDecoder } from "./http1.ts";
 * const decoder = new ChunkedDecoder();
 * const parts = decoder.push(new TextEncoder().encode("3\r\nabc\r\n0\r\n\r\nNEXT"));
 * assert.equal(parts.map((p) => new TextDecoder().decode(p)).join(""), "abc");
 * assert.ok(decoder.done);
 * assert.equal(new TextDecoder().decode(decoder.rest), "NEXT");
 * ```
 */
export class ChunkedDecoder {
  #state = S_SIZE;
  #remaining = 0;
  #digits = 0;
  #lineBytes = 0;
  #trailerBytes = 0;
  #trailerCount = 0;
  #rest: Uint8Array<ArrayBuffer> = new Uint8Array(0);

  /** Whether the last chunk and the trailer section have been read. */
  get done(): boolean {
    return this.#state === S_DONE;
  }

  /** Bytes received after the end of the body (a pipelined message). */
  get rest(): Uint8Array<ArrayBuffer> {
    return this.#rest;
  }

  /**
   * Feeds bytes.
   *
   * @param bytes The next bytes of the body. After {@linkcode done}, they are
   *   appended to {@linkcode rest}.
   * @returns The payload bytes they contained, as views of `bytes` (copy or
   *   write them before reusing `bytes`'s buffer).
   * @throws {HttpParseError} 400 for any framing violation (and on every call
   *   after one), 413 for a chunk size above 2^53-1 or an overlong chunk line,
   *   431 for an oversized trailer section.
   */
  push<T extends ArrayBufferLike>(bytes: Uint8Array<T>): Uint8Array<T>[] {
    const out: Uint8Array<T>[] = [];
    if (this.#state === S_DONE) {
      if (bytes.length > 0) {
        const rest = new Uint8Array(this.#rest.length + bytes.length);
        rest.set(this.#rest);
        rest.set(bytes, this.#rest.length);
        this.#rest = rest;
      }
      return out;
    }
    if (this.#state < 0) {
      throw refuse(400, CHUNKED_BODY, "the body was already refused");
    }
    try {
      this.#consume(bytes, out);
    } catch (error) {
      this.#state = -1; // a decoder never resynchronizes after an error
      throw error;
    }
    return out;
  }

  #consume<T extends ArrayBufferLike>(
    bytes: Uint8Array<T>,
    out: Uint8Array<T>[],
  ): void {
    const n = bytes.length;
    let i = 0;
    while (i < n) {
      const state = this.#state;
      if (state === S_DATA) {
        const take = Math.min(this.#remaining, n - i);
        out.push(bytes.subarray(i, i + take));
        i += take;
        this.#remaining -= take;
        if (this.#remaining === 0) this.#state = S_DATA_CR;
        continue;
      }
      const b = bytes[i++]!;
      switch (state) {
        case S_SIZE:
        case S_SIZE_MORE: {
          const hex = HEX[b]!;
          if (hex !== 0) {
            // "0000...01" with 1000 zeros or a 2^64 size: bounded digits keep
            // the value exact (a wrapped size is a smuggling desync).
            if (++this.#digits > 16) {
              throw refuse(
                400,
                CHUNKED_BODY,
                "chunk size has more than 16 hex digits",
              );
            }
            // Parenthesised: "x * 16 + hex - 1" rounds 2^53 + 1 - 1 down to
            // 2^53 - 1 and would let a 2^53 size slip past the check.
            const next = this.#remaining * 16 + (hex - 1);
            if (next > Number.MAX_SAFE_INTEGER) {
              throw refuse(413, CHUNKED_BODY, "chunk size above 2^53-1");
            }
            this.#remaining = next;
            this.#state = S_SIZE_MORE;
          } else if (state === S_SIZE) {
            // "+5", " 5", "0x5", "" parse differently elsewhere (smuggling).
            throw refuse(
              400,
              CHUNKED_BODY,
              `chunk size does not start with a hex digit (found ${
                describeByte(b)
              })`,
            );
          } else if (b === CR) {
            this.#state = S_SIZE_LF;
          } else if (b === SEMICOLON) {
            this.#state = S_EXT;
            this.#lineBytes = this.#digits + 1;
          } else {
            // "5 ;x", "5x": trailing junk some parsers ignore (smuggling).
            throw refuse(
              400,
              CHUNKED_BODY,
              "chunk size followed by something other than ';' or CRLF",
            );
          }
          break;
        }
        case S_EXT:
          if (b === CR) {
            this.#state = S_SIZE_LF;
          } else if (b !== HTAB && (b < SP || b === 0x7f)) {
            // LF, NUL and controls in an extension end the line early for
            // some parsers and not for others (smuggling).
            throw refuse(
              400,
              CHUNKED_BODY,
              `chunk extension contains ${describeByte(b)}`,
            );
          } else if (++this.#lineBytes > MAX_CHUNK_LINE) {
            // Endless extensions cost CPU with no payload (CVE-2024-22019).
            throw refuse(
              413,
              CHUNKED_BODY,
              `chunk line longer than ${MAX_CHUNK_LINE} bytes`,
            );
          }
          break;
        case S_SIZE_LF:
          if (b !== LF) {
            throw refuse(400, CHUNKED_BODY, "chunk size line has a bare CR");
          }
          this.#digits = 0;
          this.#state = this.#remaining === 0 ? S_TRAILER_START : S_DATA;
          break;
        case S_DATA_CR:
          // Data longer than announced: the excess would be a new request to
          // a parser that trusted the size (smuggling).
          if (b !== CR) {
            throw refuse(400, CHUNKED_BODY, "chunk data not followed by CRLF");
          }
          this.#state = S_DATA_LF;
          break;
        case S_DATA_LF:
          if (b !== LF) {
            throw refuse(400, CHUNKED_BODY, "chunk data not followed by CRLF");
          }
          this.#state = S_SIZE;
          break;
        case S_TRAILER_START:
          if (b === CR) {
            this.#state = S_FINAL_LF;
            break;
          }
          // Trailers are checked like header fields: see parseFields.
          if (b === SP || b === HTAB) {
            throw refuse(400, CHUNKED_BODY, "obs-fold in trailer section");
          }
          if (TOKEN[b] !== 1) {
            throw refuse(
              400,
              CHUNKED_BODY,
              `trailer name starts with ${
                describeByte(b)
              }, which is not a token character`,
            );
          }
          if (++this.#trailerCount > LIMITS.headerCount) {
            throw refuse(
              431,
              CHUNKED_BODY,
              `more than ${LIMITS.headerCount} trailer fields`,
            );
          }
          this.#countTrailerByte();
          this.#state = S_TRAILER_NAME;
          break;
        case S_TRAILER_NAME:
          this.#countTrailerByte();
          if (b === COLON) this.#state = S_TRAILER_VALUE;
          else if (TOKEN[b] !== 1) {
            throw refuse(
              400,
              CHUNKED_BODY,
              `trailer name contains ${
                describeByte(b)
              }, which is not a token character`,
            );
          }
          break;
        case S_TRAILER_VALUE:
          this.#countTrailerByte();
          if (b === CR) this.#state = S_TRAILER_LF;
          else if (FIELD[b] !== 1) {
            throw refuse(
              400,
              CHUNKED_BODY,
              `trailer value contains ${describeByte(b)}`,
            );
          }
          break;
        case S_TRAILER_LF:
          if (b !== LF) {
            throw refuse(400, CHUNKED_BODY, "trailer line has a bare CR");
          }
          this.#state = S_TRAILER_START;
          break;
        case S_FINAL_LF:
          if (b !== LF) {
            throw refuse(
              400,
              CHUNKED_BODY,
              "chunked body does not end with CRLF",
            );
          }
          this.#state = S_DONE;
          this.#rest = bytes.slice(i);
          return;
      }
    }
  }

  #countTrailerByte(): void {
    if (++this.#trailerBytes > LIMITS.headBytes) {
      throw refuse(
        431,
        CHUNKED_BODY,
        `trailer section larger than ${LIMITS.headBytes} bytes`,
      );
    }
  }
}

/**
 * Encodes one chunk of the chunked transfer coding.
 *
 * @param data The payload; empty data gives empty output, never a
 *   zero-size chunk (that would be the last chunk and end the body early).
 * @returns `hex-size CRLF data CRLF`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeChunk } from "./http1.ts";
 * assert.equal(new TextDecoder().decode(encodeChunk(new TextEncoder().encode("hello"))), "5\r\nhello\r\n");
 * assert.equal(encodeChunk(new Uint8Array(0)).length, 0);
 * ```
 */
export function encodeChunk(data: Uint8Array): Uint8Array<ArrayBuffer> {
  if (data.length === 0) return new Uint8Array(0);
  const size = data.length.toString(16);
  const out = new Uint8Array(size.length + data.length + 4);
  for (let i = 0; i < size.length; i++) out[i] = size.charCodeAt(i);
  out[size.length] = CR;
  out[size.length + 1] = LF;
  out.set(data, size.length + 2);
  out[out.length - 2] = CR;
  out[out.length - 1] = LF;
  return out;
}

/**
 * The last chunk with an empty trailer section: `0\r\n\r\n`. Shared; do not
 * modify.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { LAST_CHUNK } from "./http1.ts";
 * assert.equal(new TextDecoder().decode(LAST_CHUNK), "0\r\n\r\n");
 * ```
 */
export const LAST_CHUNK: Uint8Array<ArrayBuffer> = new Uint8Array([
  0x30,
  CR,
  LF,
  CR,
  LF,
]);
