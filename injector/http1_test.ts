import assert from "node:assert/strict";
import {
  ChunkedDecoder,
  encodeChunk,
  findHeadEnd,
  getHeader,
  getHeaders,
  type Headers1,
  HttpParseError,
  LAST_CHUNK,
  LIMITS,
  parseRequestHead,
  parseResponseHead,
  removeHeader,
  requestFraming,
  type RequestHead,
  responseFraming,
  type ResponseHead,
  serializeRequestHead,
  serializeResponseHead,
  setHeader,
} from "./http1.ts";
import { runHttp1Fuzz } from "../tests/kits/http1_fuzz.ts";

/** Latin1 string to bytes (one byte per char). */
function bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

function text(data: Uint8Array): string {
  let out = "";
  for (const b of data) out += String.fromCharCode(b);
  return out;
}

function request(head: string): RequestHead {
  return parseRequestHead(bytes(head));
}

function response(head: string): ResponseHead {
  return parseResponseHead(bytes(head));
}

function refused(fn: () => unknown, status: number, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(
      error instanceof HttpParseError,
      `expected HttpParseError, got ${String(error)}`,
    );
    assert.equal(error.status, status, error.message);
    assert.match(error.message, /^Refusing /);
    if (message) assert.match(error.message, message);
    return true;
  });
}

const GET = "GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\n";

/** The request with extra header lines and the blank line. */
function withHeaders(...lines: string[]): string {
  return GET + lines.map((l) => l + "\r\n").join("") + "\r\n";
}

// ---- findHeadEnd ----------------------------------------------------------

Deno.test("findHeadEnd() returns the index just after CRLFCRLF", () => {
  const data = bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY");
  assert.equal(findHeadEnd(data), data.length - 4);
  assert.equal(findHeadEnd(bytes("GET / HTTP/1.1\r\n\r\n")), 18);
});

Deno.test("findHeadEnd() returns -1 for every proper prefix of a head", () => {
  const data = bytes(withHeaders("Accept: */*"));
  for (let i = 0; i < data.length; i++) {
    assert.equal(findHeadEnd(data.subarray(0, i)), -1, `prefix ${i}`);
  }
  assert.equal(findHeadEnd(data), data.length);
});

/** Scans like a connection reader: resume at the previous length - 3. */
function incrementalHeadEnd(data: Uint8Array, cuts: readonly number[]): number {
  let scanned = 0;
  for (const cut of [...cuts, data.length]) {
    const end = findHeadEnd(data.subarray(0, cut), Math.max(0, scanned - 3));
    if (end !== -1) return end;
    scanned = cut;
  }
  return -1;
}

Deno.test("findHeadEnd() resumed at 'start' agrees with a full scan for every split", () => {
  const data = bytes(withHeaders("Accept: */*", "X: y") + "BODY");
  const end = findHeadEnd(data);
  for (let i = 0; i <= data.length; i++) {
    for (let j = i; j <= data.length; j += 3) {
      assert.equal(incrementalHeadEnd(data, [i, j]), end, `cuts ${i}, ${j}`);
    }
  }
  assert.equal(incrementalHeadEnd(data, Array.from(data, (_, i) => i)), end);
});

Deno.test("findHeadEnd() resumed at 'start' still refuses a bare LF at any split", () => {
  const data = bytes("GET / HTTP/1.1\r\nA: b\nC: d\r\n\r\n");
  for (let i = 0; i <= data.length; i++) {
    refused(() => incrementalHeadEnd(data, [i]), 400, /bare LF/);
  }
});

Deno.test("findHeadEnd() measures the 431 limit from index 0, not from 'start'", () => {
  let buf = bytes("GET / HTTP/1.1\r\nX: ");
  let scanned = 0;
  const chunk = bytes("a".repeat(1000));
  const grow = () => {
    const next = new Uint8Array(buf.length + chunk.length);
    next.set(buf);
    next.set(chunk, buf.length);
    buf = next;
  };
  while (buf.length < LIMITS.headBytes) {
    assert.equal(findHeadEnd(buf, Math.max(0, scanned - 3)), -1);
    scanned = buf.length;
    grow();
  }
  refused(() => findHeadEnd(buf, Math.max(0, scanned - 3)), 431);
});

Deno.test("findHeadEnd() refuses a bare LF line ending (smuggling)", () => {
  for (
    const head of [
      "GET / HTTP/1.1\n\n",
      "GET / HTTP/1.1\r\nX: y\n\r\n",
      "\nGET",
      "GET / HTTP/1.1\r\n\n",
    ]
  ) {
    refused(() => findHeadEnd(bytes(head)), 400, /bare LF/);
  }
});

Deno.test("findHeadEnd() refuses a head larger than LIMITS.headBytes with 431", () => {
  const prefix = "GET / HTTP/1.1\r\nX: ";
  const fits = prefix + "a".repeat(LIMITS.headBytes - prefix.length - 4) +
    "\r\n\r\n";
  assert.equal(findHeadEnd(bytes(fits)), LIMITS.headBytes);
  const tooBig = prefix + "a".repeat(LIMITS.headBytes - prefix.length - 3) +
    "\r\n\r\n";
  refused(() => findHeadEnd(bytes(tooBig)), 431);
  refused(() => findHeadEnd(bytes(prefix + "a".repeat(LIMITS.headBytes))), 431);
  // Short of the limit it keeps waiting.
  assert.equal(findHeadEnd(bytes(prefix + "a".repeat(1000))), -1);
});

Deno.test("findHeadEnd() throws RangeError for a start outside the buffer", () => {
  assert.throws(() => findHeadEnd(bytes("abc"), 4), RangeError);
  assert.throws(() => findHeadEnd(bytes("abc"), -1), RangeError);
});

// ---- request line ---------------------------------------------------------

Deno.test("parseRequestHead() keeps header case, order, and trims OWS", () => {
  const head = request(
    "POST /v1?q=1 HTTP/1.1\r\nHost: a.example\r\nX-Thing:  \t value \t\r\nx-thing: two\r\nEmpty:\r\nContent-Length: 3\r\n\r\n",
  );
  assert.equal(head.method, "POST");
  assert.equal(head.target, "/v1?q=1");
  assert.equal(head.version, "HTTP/1.1");
  assert.deepEqual(head.headers, [
    ["Host", "a.example"],
    ["X-Thing", "value"],
    ["x-thing", "two"],
    ["Empty", ""],
    ["Content-Length", "3"],
  ]);
});

Deno.test("parseRequestHead() accepts HTTP/1.0, CONNECT authority form and '*'", () => {
  assert.equal(request("GET / HTTP/1.0\r\n\r\n").version, "HTTP/1.0");
  assert.equal(
    request("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n")
      .target,
    "a.example:443",
  );
  assert.equal(request("OPTIONS * HTTP/1.1\r\n\r\n").target, "*");
});

Deno.test("parseRequestHead() keeps obs-text in values byte-exact", () => {
  const head = request(
    "GET / HTTP/1.1\r\nX-Name: caf\xe9 \x80\x9f\xff\r\n\r\n",
  );
  assert.equal(head.headers[0]![1], "caf\xe9 \x80\x9f\xff");
  assert.equal(
    text(serializeRequestHead(head)),
    "GET / HTTP/1.1\r\nX-Name: caf\xe9 \x80\x9f\xff\r\n\r\n",
  );
});

Deno.test("parseRequestHead() refuses request lines that are not METHOD SP TARGET SP VERSION", () => {
  for (
    const line of [
      "GET  / HTTP/1.1",
      " GET / HTTP/1.1",
      "GET\t/ HTTP/1.1",
      "GET / HTTP/1.1 ",
      "GET /a b HTTP/1.1",
      "GET /",
      "GET",
      "",
      "G@T / HTTP/1.1",
      "GET(x) / HTTP/1.1",
      "GET / http/1.1",
      "GET / HTTP/1.1x",
      "GET / HTTP/11",
    ]
  ) {
    refused(() => request(line + "\r\n\r\n"), 400);
  }
});

Deno.test("parseRequestHead() refuses spaces, controls and non-ASCII in the target", () => {
  for (
    const target of [
      "/a\x00b",
      "/a\x7fb",
      "/a\x1bb",
      "/caf\xe9",
      "/a\rb",
      "/a\tb",
    ]
  ) {
    refused(() => request(`GET ${target} HTTP/1.1\r\n\r\n`), 400);
  }
});

Deno.test("parseRequestHead() answers other HTTP versions with 505", () => {
  refused(() => request("GET / HTTP/1.2\r\n\r\n"), 505, /HTTP\/1\.2/);
  refused(() => request("GET / HTTP/2.0\r\n\r\n"), 505);
  refused(() => request("GET / HTTP/0.9\r\n\r\n"), 505);
});

Deno.test("parseRequestHead() answers the HTTP/2 preface with 505 naming prior knowledge", () => {
  const preface = bytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  const end = findHeadEnd(preface);
  refused(
    () => parseRequestHead(preface.subarray(0, end)),
    505,
    /HTTP\/2 prior knowledge/,
  );
});

// ---- header fields --------------------------------------------------------

Deno.test("parseRequestHead() refuses whitespace between a header name and the colon (smuggling)", () => {
  refused(
    () => request(withHeaders("Content-Length : 5")),
    400,
    /whitespace between header name/,
  );
  refused(
    () => request(withHeaders("Transfer-Encoding\t: chunked")),
    400,
    /whitespace/,
  );
});

Deno.test("parseRequestHead() refuses non-token header names, empty names and lines without a colon", () => {
  for (
    const line of [
      "Bad Name: x",
      "Bad\x00Name: x",
      "Na\xe9me: x",
      ": empty",
      "NoColon",
      "X(y): z",
      "X/y: z",
    ]
  ) {
    refused(() => request(withHeaders(line)), 400);
  }
});

Deno.test("parseRequestHead() refuses NUL, lone CR and C0 controls in values, allows HTAB", () => {
  for (
    const value of ["a\x00b", "a\rb", "a\x0bb", "a\x1fb", "a\x7fb", "\x00"]
  ) {
    refused(() => request(withHeaders(`X-V: ${value}`)), 400);
  }
  assert.equal(
    getHeader(request(withHeaders("X-V: a\tb")).headers, "x-v"),
    "a\tb",
  );
});

Deno.test("parseRequestHead() refuses obs-fold line folding (header smuggling)", () => {
  refused(() => request(withHeaders("X-A: one", " two")), 400, /obs-fold/);
  refused(() => request(withHeaders("X-A: one", "\ttwo")), 400, /obs-fold/);
  refused(() => request("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400, /obs-fold/);
});

Deno.test("parseRequestHead() refuses a bare LF inside the head even without findHeadEnd", () => {
  refused(
    () => request("GET / HTTP/1.1\r\nX: y\nZ: w\r\n\r\n"),
    400,
    /bare LF/,
  );
  refused(() => request("GET / HTTP/1.1\n\r\n"), 400, /bare LF/);
});

Deno.test("parseRequestHead() allows LIMITS.headerCount headers and answers one more with 431", () => {
  const lines = Array.from(
    { length: LIMITS.headerCount },
    (_, i) => `X-${i}: v`,
  );
  assert.equal(
    request("GET / HTTP/1.1\r\n" + lines.join("\r\n") + "\r\n\r\n").headers
      .length,
    LIMITS.headerCount,
  );
  refused(
    () =>
      request(
        "GET / HTTP/1.1\r\n" + [...lines, "X-Last: v"].join("\r\n") +
          "\r\n\r\n",
      ),
    431,
  );
});

Deno.test("parseRequestHead() answers a head larger than LIMITS.headBytes with 431", () => {
  refused(
    () => request(withHeaders("X: " + "a".repeat(LIMITS.headBytes))),
    431,
  );
});

Deno.test("parseRequestHead() refuses heads without the blank line or with bytes after it", () => {
  refused(() => request("GET / HTTP/1.1\r\nHost: a\r\n"), 400, /empty line/);
  refused(() => request("GET / HTTP/1.1\r\n\r\nBODY"), 400, /after the end/);
  refused(() => request("GET / HTTP/1.1\r\n\r\n\r\n"), 400);
});

Deno.test("parseRequestHead() refuses two Host headers (policy bypass)", () => {
  refused(() => request(withHeaders("host: b.example")), 400, /Host/);
});

// ---- request framing ------------------------------------------------------

Deno.test("requestFraming() gives none without Content-Length and Transfer-Encoding", () => {
  assert.deepEqual(requestFraming(request(withHeaders())), { kind: "none" });
  assert.deepEqual(requestFraming(request("POST / HTTP/1.1\r\n\r\n")), {
    kind: "none",
  });
});

Deno.test("requestFraming() reads Content-Length as 1 to 15 decimal digits", () => {
  assert.deepEqual(requestFraming(request(withHeaders("Content-Length: 42"))), {
    kind: "length",
    length: 42,
  });
  assert.deepEqual(requestFraming(request(withHeaders("content-length: 0"))), {
    kind: "length",
    length: 0,
  });
  assert.deepEqual(
    requestFraming(request(withHeaders("Content-Length: 007"))),
    { kind: "length", length: 7 },
  );
  assert.deepEqual(
    requestFraming(request(withHeaders("Content-Length:  5 \t"))),
    { kind: "length", length: 5 },
  );
  assert.deepEqual(
    requestFraming(request(withHeaders("Content-Length: 999999999999999"))),
    {
      kind: "length",
      length: 999999999999999,
    },
  );
});

Deno.test("parseRequestHead() refuses a Content-Length that is not plain digits (smuggling)", () => {
  for (
    const value of [
      "+5",
      "-5",
      "5 5",
      "5,5",
      "5, 5",
      "0x5",
      "",
      "5.0",
      "1e3",
      "\uff15",
      "1000000000000000",
    ]
  ) {
    refused(
      () => request(withHeaders(`Content-Length: ${value}`)),
      400,
      /Content-Length/,
    );
  }
});

Deno.test("parseRequestHead() refuses two Content-Length headers, even equal ones (smuggling)", () => {
  refused(
    () => request(withHeaders("Content-Length: 5", "content-length: 5")),
    400,
    /more than one Content-Length header \(request smuggling\)/,
  );
  refused(
    () => request(withHeaders("Content-Length: 5", "Content-Length: 6")),
    400,
  );
});

Deno.test("parseRequestHead() refuses Content-Length with Transfer-Encoding (CL.TE smuggling)", () => {
  const message =
    "Refusing request: Content-Length and Transfer-Encoding together (request smuggling)";
  for (
    const lines of [["Content-Length: 5", "Transfer-Encoding: chunked"], [
      "Transfer-Encoding: chunked",
      "Content-Length: 0",
    ]]
  ) {
    assert.throws(
      () => request(withHeaders(...lines)),
      (e: unknown) => e instanceof HttpParseError && e.message === message,
    );
  }
});

Deno.test("requestFraming() accepts exactly one 'chunked', in any letter case", () => {
  for (
    const value of ["chunked", "Chunked", "CHUNKED", " chunked", "chunked \t"]
  ) {
    assert.deepEqual(
      requestFraming(request(withHeaders(`Transfer-Encoding: ${value}`))),
      { kind: "chunked" },
    );
  }
});

Deno.test("parseRequestHead() answers any other Transfer-Encoding with 501", () => {
  for (
    const value of [
      "chunked, identity",
      "identity, chunked",
      "gzip, chunked",
      "identity",
      "gzip",
      "chunked;q=1",
      "xchunked",
      "",
    ]
  ) {
    refused(
      () => request(withHeaders(`Transfer-Encoding: ${value}`)),
      501,
      /Transfer-Encoding/,
    );
  }
  refused(
    () =>
      request(
        withHeaders("Transfer-Encoding: chunked", "transfer-encoding: chunked"),
      ),
    501,
  );
});

Deno.test("parseRequestHead() refuses Transfer-Encoding in HTTP/1.0 (faulty framing)", () => {
  refused(
    () => request("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
    400,
    /HTTP\/1\.0/,
  );
});

Deno.test("requestFraming() re-checks a head edited after parsing", () => {
  const head = request(withHeaders("Content-Length: 5"));
  head.headers.push(["Transfer-Encoding", "chunked"]);
  refused(() => requestFraming(head), 400, /together/);
  setHeader(head.headers, "content-length", "7");
  removeHeader(head.headers, "transfer-encoding");
  assert.deepEqual(requestFraming(head), { kind: "length", length: 7 });
});

// ---- responses ------------------------------------------------------------

Deno.test("parseResponseHead() reads version, status, reason and headers", () => {
  const head = response(
    "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\n",
  );
  assert.deepEqual(head, {
    version: "HTTP/1.1",
    status: 404,
    reason: "Not Found",
    headers: [["Content-Type", "text/plain"]],
  });
  assert.equal(response("HTTP/1.0 200 OK\r\n\r\n").version, "HTTP/1.0");
  assert.equal(response("HTTP/1.1 200\r\n\r\n").reason, "");
  assert.equal(response("HTTP/1.1 200 \r\n\r\n").reason, "");
  assert.equal(
    response("HTTP/1.1 999 Odd but \xe9 fine\r\n\r\n").reason,
    "Odd but \xe9 fine",
  );
});

Deno.test("parseResponseHead() refuses malformed status lines", () => {
  for (
    const line of [
      "HTTP/1.1 20 OK",
      "HTTP/1.1 2000 OK",
      "HTTP/1.1 099 X",
      "HTTP/1.1  200 OK",
      "HTTP/1.1 2x0 OK",
      "HTTP/1.1 200\tOK",
      "HTTP/1.1 200 O\rK",
      "HTTP/1.1 200 O\x00K",
      "HTTP/1.1",
      "http/1.1 200 OK",
    ]
  ) {
    refused(() => response(line + "\r\n\r\n"), 400);
  }
  refused(() => response("HTTP/2.0 200 OK\r\n\r\n"), 505);
});

Deno.test("parseResponseHead() applies the header rules of requests", () => {
  refused(
    () => response("HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n"),
    400,
    /obs-fold/,
  );
  refused(() => response("HTTP/1.1 200 OK\r\nX : a\r\n\r\n"), 400);
  refused(() => response("HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n"), 400);
});

Deno.test("responseFraming() gives none for 1xx, 204, 304, HEAD and a 2xx to CONNECT", () => {
  const withLength = (status: number) =>
    response(`HTTP/1.1 ${status} X\r\nContent-Length: 10\r\n\r\n`);
  for (const status of [100, 101, 103, 204, 304]) {
    assert.deepEqual(responseFraming(withLength(status), "GET"), {
      kind: "none",
    });
  }
  assert.deepEqual(responseFraming(withLength(200), "HEAD"), { kind: "none" });
  assert.deepEqual(
    responseFraming(
      response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
      "HEAD",
    ),
    { kind: "none" },
  );
  assert.deepEqual(responseFraming(withLength(200), "CONNECT"), {
    kind: "none",
  });
  assert.deepEqual(responseFraming(withLength(407), "CONNECT"), {
    kind: "length",
    length: 10,
  });
});

Deno.test("responseFraming() gives chunked, length or close", () => {
  assert.deepEqual(
    responseFraming(
      response("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"),
      "GET",
    ),
    { kind: "chunked" },
  );
  assert.deepEqual(
    responseFraming(
      response("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"),
      "POST",
    ),
    { kind: "length", length: 12 },
  );
  assert.deepEqual(
    responseFraming(response("HTTP/1.1 200 OK\r\n\r\n"), "GET"),
    { kind: "close" },
  );
  assert.deepEqual(
    responseFraming(response("HTTP/1.0 200 OK\r\n\r\n"), "GET"),
    { kind: "close" },
  );
});

Deno.test("responseFraming() refuses ambiguous response framing (response splitting)", () => {
  const framing = (lines: string) =>
    responseFraming(response(`HTTP/1.1 200 OK\r\n${lines}\r\n`), "GET");
  refused(
    () => framing("Content-Length: 5\r\nContent-Length: 5\r\n"),
    400,
    /more than one/,
  );
  refused(
    () => framing("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
    400,
    /together/,
  );
  refused(() => framing("Content-Length: -1\r\n"), 400);
  refused(() => framing("Transfer-Encoding: gzip, chunked\r\n"), 501);
  refused(
    () =>
      responseFraming(
        response("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        "GET",
      ),
    400,
  );
  // Checked even when the status has no body.
  refused(
    () =>
      responseFraming(
        response(
          "HTTP/1.1 204 X\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ),
        "GET",
      ),
    400,
  );
});

// ---- header helpers -------------------------------------------------------

Deno.test("getHeader() and getHeaders() match names case-insensitively", () => {
  const headers: Headers1 = [["Accept", "a"], ["ACCEPT", "b"], ["Host", "h"]];
  assert.equal(getHeader(headers, "accept"), "a");
  assert.deepEqual(getHeaders(headers, "Accept"), ["a", "b"]);
  assert.equal(getHeader(headers, "missing"), undefined);
  assert.deepEqual(getHeaders(headers, "missing"), []);
});

Deno.test("setHeader() removes every spelling of the name so a sandbox copy cannot survive", () => {
  const headers: Headers1 = [["authorization", "fake"], ["Host", "h"], [
    "AUTHORIZATION",
    "fake2",
  ]];
  setHeader(headers, "Authorization", "Bearer real");
  assert.deepEqual(headers, [["Host", "h"], ["Authorization", "Bearer real"]]);
});

Deno.test("setHeader() refuses CR, LF and NUL in values and non-tokens in names (header injection)", () => {
  const headers: Headers1 = [];
  for (const value of ["a\r\nX-Evil: 1", "a\nb", "a\rb", "a\x00", "\u0100"]) {
    assert.throws(() => setHeader(headers, "X", value), TypeError);
  }
  for (const name of ["", "X Y", "X:Y", "X\r\nY", "X\u0100"]) {
    assert.throws(() => setHeader(headers, name, "v"), TypeError);
  }
  assert.deepEqual(headers, []);
});

Deno.test("removeHeader() removes every spelling and returns the count", () => {
  const headers: Headers1 = [["Cookie", "a"], ["Host", "h"], ["cookie", "b"]];
  assert.equal(removeHeader(headers, "COOKIE"), 2);
  assert.deepEqual(headers, [["Host", "h"]]);
  assert.equal(removeHeader(headers, "cookie"), 0);
});

// ---- serialization --------------------------------------------------------

Deno.test("serializeRequestHead() output parses back to the same head", () => {
  const original =
    "PUT /x?y=1 HTTP/1.1\r\nHost: a.example\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n";
  const head = request(original);
  const data = serializeRequestHead(head);
  assert.equal(text(data), original);
  assert.deepEqual(parseRequestHead(data), head);
});

Deno.test("serializeRequestHead() refuses fields that would rewrite the request line or inject headers", () => {
  const base: RequestHead = {
    method: "GET",
    target: "/",
    version: "HTTP/1.1",
    headers: [],
  };
  assert.throws(
    () => serializeRequestHead({ ...base, target: "/ HTTP/1.1\r\nX: y" }),
    TypeError,
  );
  assert.throws(() => serializeRequestHead({ ...base, target: "" }), TypeError);
  assert.throws(
    () => serializeRequestHead({ ...base, target: "/caf\xe9" }),
    TypeError,
  );
  assert.throws(
    () => serializeRequestHead({ ...base, method: "GET /" }),
    TypeError,
  );
  assert.throws(() => serializeRequestHead({ ...base, method: "" }), TypeError);
  assert.throws(
    () => serializeRequestHead({ ...base, version: "HTTP/2.0" as "HTTP/1.1" }),
    TypeError,
  );
  assert.throws(
    () => serializeRequestHead({ ...base, headers: [["X", "a\r\nEvil: 1"]] }),
    TypeError,
  );
});

Deno.test("serializeResponseHead() writes the status line and refuses CRLF in the reason", () => {
  const head: ResponseHead = {
    version: "HTTP/1.1",
    status: 200,
    reason: "OK",
    headers: [["Content-Length", "0"]],
  };
  assert.equal(
    text(serializeResponseHead(head)),
    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
  );
  assert.throws(
    () => serializeResponseHead({ ...head, reason: "OK\r\nSet-Cookie: x" }),
    TypeError,
  );
  assert.throws(
    () => serializeResponseHead({ ...head, status: 99 }),
    TypeError,
  );
  assert.throws(
    () => serializeResponseHead({ ...head, status: 200.5 }),
    TypeError,
  );
});

// ---- chunked coding -------------------------------------------------------

function decodeAll(
  pieces: readonly Uint8Array[],
): { payload: string; decoder: ChunkedDecoder } {
  const decoder = new ChunkedDecoder();
  let payload = "";
  for (const piece of pieces) {
    for (const part of decoder.push(piece)) payload += text(part);
  }
  return { payload, decoder };
}

const SAMPLE =
  "5;ext=1\r\nhello\r\nA\r\n, chunked \r\n00001\r\n!\r\n0;last\r\nX-Sum: 1\r\nX-T: a\tb\r\n\r\nNEXT";
const SAMPLE_PAYLOAD = "hello, chunked !";

Deno.test("ChunkedDecoder decodes chunks, ignores extensions and trailers, keeps the rest", () => {
  const { payload, decoder } = decodeAll([bytes(SAMPLE)]);
  assert.equal(payload, SAMPLE_PAYLOAD);
  assert.ok(decoder.done);
  assert.equal(text(decoder.rest), "NEXT");
});

Deno.test("ChunkedDecoder gives the same result for every split into two and three pieces", () => {
  const data = bytes(SAMPLE);
  for (let i = 0; i <= data.length; i++) {
    for (let j = i; j <= data.length; j++) {
      const { payload, decoder } = decodeAll([
        data.subarray(0, i),
        data.subarray(i, j),
        data.subarray(j),
      ]);
      assert.equal(payload, SAMPLE_PAYLOAD, `split ${i}/${j}`);
      assert.ok(decoder.done);
      assert.equal(text(decoder.rest), "NEXT", `split ${i}/${j}`);
    }
  }
});

Deno.test("ChunkedDecoder decodes input fed one byte at a time", () => {
  const data = bytes(SAMPLE);
  const { payload, decoder } = decodeAll(
    Array.from(data, (_, i) => data.subarray(i, i + 1)),
  );
  assert.equal(payload, SAMPLE_PAYLOAD);
  assert.equal(text(decoder.rest), "NEXT");
});

Deno.test("ChunkedDecoder is not done before the final CRLF and appends later bytes to rest", () => {
  const { decoder } = decodeAll([bytes("3\r\nabc\r\n0\r\n\r")]);
  assert.equal(decoder.done, false);
  assert.deepEqual(decoder.push(bytes("\n")), []);
  assert.ok(decoder.done);
  assert.equal(decoder.rest.length, 0);
  decoder.push(bytes("GET "));
  decoder.push(bytes("/"));
  assert.equal(text(decoder.rest), "GET /");
});

Deno.test("ChunkedDecoder accepts upper-case hex and 16 digits with leading zeros", () => {
  assert.equal(
    decodeAll([bytes("A\r\n0123456789\r\n0\r\n\r\n")]).payload,
    "0123456789",
  );
  assert.equal(
    decodeAll([bytes("000000000000000a\r\n0123456789\r\n0\r\n\r\n")]).payload,
    "0123456789",
  );
});

Deno.test("ChunkedDecoder refuses chunk sizes other parsers read differently (smuggling)", () => {
  for (
    const wire of [
      "\r\nabc\r\n",
      "+3\r\nabc\r\n",
      "-3\r\n",
      " 3\r\nabc\r\n",
      "3 \r\nabc\r\n",
      "3\t;x\r\nabc\r\n",
      "0x3\r\nabc\r\n",
      "3x\r\nabc\r\n",
      "3\nabc\r\n",
      "3\r\rabc\r\n",
      "00000000000000003\r\nabc\r\n",
    ]
  ) {
    refused(() => decodeAll([bytes(wire)]), 400);
  }
});

Deno.test("ChunkedDecoder answers a chunk size above 2^53-1 with 413", () => {
  refused(() => decodeAll([bytes("20000000000000\r\n")]), 413);
  refused(() => decodeAll([bytes("ffffffffffffffff\r\n")]), 413);
});

Deno.test("ChunkedDecoder refuses LF, NUL and bare CR in chunk extensions", () => {
  for (const ext of [";a\nb", ";a\x00", ";a\rb", ";\x1b"]) {
    refused(() => decodeAll([bytes(`3${ext}\r\nabc\r\n`)]), 400);
  }
  refused(() => decodeAll([bytes("3;" + "x".repeat(20000) + "\r\n")]), 413);
});

Deno.test("ChunkedDecoder refuses chunk data not followed by exactly CRLF (smuggling)", () => {
  for (
    const wire of [
      "3\r\nabcd\r\n",
      "3\r\nabc\n",
      "3\r\nabc\r\r",
      "3\r\nabc\r0\r\n\r\n",
    ]
  ) {
    refused(() => decodeAll([bytes(wire)]), 400, /CRLF/);
  }
});

Deno.test("ChunkedDecoder validates trailers like header fields", () => {
  for (
    const trailer of [
      " folded",
      "\tfolded",
      "No colon",
      ": x",
      "X : y",
      "X: a\x00b",
      "X: a\rb",
      "X: a\nb",
    ]
  ) {
    refused(() => decodeAll([bytes(`0\r\nA: 1\r\n${trailer}\r\n\r\n`)]), 400);
  }
  refused(() => decodeAll([bytes("0\r\n\n")]), 400);
  refused(() => decodeAll([bytes("0\r\n\r\r")]), 400);
  const many = Array.from(
    { length: LIMITS.headerCount + 1 },
    (_, i) => `X-${i}: v\r\n`,
  ).join("");
  refused(() => decodeAll([bytes(`0\r\n${many}\r\n`)]), 431);
  refused(
    () => decodeAll([bytes(`0\r\nX: ${"v".repeat(LIMITS.headBytes)}\r\n\r\n`)]),
    431,
  );
});

Deno.test("ChunkedDecoder stays refused after an error", () => {
  const decoder = new ChunkedDecoder();
  refused(() => decoder.push(bytes("z")), 400);
  refused(() => decoder.push(bytes("0\r\n\r\n")), 400);
  assert.equal(decoder.done, false);
});

Deno.test("encodeChunk() writes hex size, data, CRLF and never an empty (last) chunk", () => {
  assert.equal(text(encodeChunk(bytes("hello"))), "5\r\nhello\r\n");
  assert.equal(text(encodeChunk(new Uint8Array(300))).slice(0, 5), "12c\r\n");
  assert.equal(encodeChunk(new Uint8Array(0)).length, 0);
  assert.equal(text(LAST_CHUNK), "0\r\n\r\n");
});

Deno.test("encodeChunk() output decodes back to the payload", () => {
  const payload = Uint8Array.from(
    { length: 5000 },
    (_, i) => (i * 7919) & 0xff,
  );
  const pieces = [
    encodeChunk(payload.subarray(0, 1)),
    encodeChunk(payload.subarray(1, 4096)),
    encodeChunk(payload.subarray(4096)),
    LAST_CHUNK,
  ];
  const decoder = new ChunkedDecoder();
  const out: number[] = [];
  for (const piece of pieces) {
    for (const part of decoder.push(piece)) out.push(...part);
  }
  assert.ok(decoder.done);
  assert.deepEqual(new Uint8Array(out), payload);
});

// ---- fuzz -----------------------------------------------------------------

Deno.test("runHttp1Fuzz(1, 20000) finds no invariant violation", () => {
  const { inputs, failures } = runHttp1Fuzz(1, 20000);
  assert.ok(inputs >= 20000, `only ${inputs} inputs`);
  assert.deepEqual(failures, []);
});

Deno.test("runHttp1Fuzz() is deterministic for a seed", () => {
  assert.deepEqual(runHttp1Fuzz(7, 300), runHttp1Fuzz(7, 300));
});
