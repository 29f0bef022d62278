/**
 * Test helper for the egress suites: local upstream servers on 127.0.0.1
 * that stand in for public hosts (`api.example.test`...), each with a TLS
 * leaf from a test CA, each recording every request it receives. Sandboxes
 * reach them only through the injector, via `upstream.connectTo`.
 *
 * Every upstream answers:
 *
 * - `/ws`: a WebSocket upgrade; each text message comes back as
 *   `echo:<message>`; `auth` is answered with the upgrade request's
 *   Authorization value, `auth-binary` with it as a binary message, and
 *   `auth-big` with a ~140 KB message holding it twice;
 * - `/bare-token`: the Authorization value after its scheme word
 *   (`Bearer x` -> `x`), as an API's "token x is invalid" page would;
 * - `/gzip...`: the JSON echo, gzip-compressed (`Content-Encoding: gzip`);
 * - `/redirect?to=URL`: 302 to URL;
 * - `/drip`: `auth=<Authorization>;` one byte per chunk;
 * - `/zstd-echo`: `auth=<Authorization>` labelled `Content-Encoding: zstd`;
 * - anything else: the JSON echo `{ method, path, host, headers, body }`
 *   with every request header (as a list) and the request body.
 *
 * Nothing here reaches beyond loopback.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CertificateAuthority } from "../../injector/ca.ts";
import type { AuditEvent, EgressEvent } from "../../harness/run_result.ts";

/** The echo guard's replacement text (README, "Echo guard"). */
export const MARKER = "[airlock:redacted]";

/** One request an upstream received. */
export interface SeenRequest {
  method: string;
  /** Path and query. */
  path: string;
  /** The Host header. */
  host: string | null;
  /** Every header, lower-case names, in the order Deno reports them. */
  headers: [string, string][];
  body: string;
  /** Whether it was a WebSocket upgrade. */
  websocket: boolean;
}

/** One local server standing in for `name`. */
export interface Upstream {
  /** The public name it stands in for. */
  readonly name: string;
  /** Its real port on 127.0.0.1. */
  readonly port: number;
  /** Whether it speaks TLS. */
  readonly tls: boolean;
  /** Every request received, in order. */
  readonly seen: SeenRequest[];
  /** Messages its WebSocket endpoint received. */
  readonly wsMessages: string[];
  /** The value of `name` in the request headers of request `i`. */
  header(i: number, name: string): string | null;
}

/** A set of upstreams sharing one test CA. */
export interface Upstreams extends AsyncDisposable {
  /** The test CA (upstreams' issuer, NOT the injector's). */
  readonly ca: CertificateAuthority;
  /** Host path of the CA certificate (for `upstream.caCerts`). */
  readonly caFile: string;
  /** By name (the first one started for that name). */
  get(name: string): Upstream;
  /** Every upstream started for `name`, in start order. */
  servers(name: string): Upstream[];
  /** Starts one more upstream. */
  add(spec: UpstreamSpec): Promise<Upstream>;
  /**
   * Starts a hand-written TLS upstream for `name` (port 443): for each
   * connection it reads one request head and writes `respond(head)` as the
   * raw response bytes (a string is sent as UTF-8), then closes. Request
   * heads are recorded in `seen` (headers parsed, body not read).
   */
  addRaw(
    name: string,
    respond: (head: string) => string | Uint8Array,
  ): Promise<Upstream>;
  /** `connectTo` entries: `name:publicPort:127.0.0.1:realPort` for each. */
  readonly connectTo: string[];
  /** Every request any upstream saw. */
  allSeen(): SeenRequest[];
  close(): Promise<void>;
}

/** What to start. */
export interface UpstreamSpec {
  /** Name it stands in for (the TLS leaf is issued for it). */
  name: string;
  /** The port the sandbox asks for (for `connectTo`); default 443 / 80. */
  publicPort?: number;
  /** TLS (default) or plain http. */
  tls?: boolean;
  /** Subject of the TLS leaf when it differs from `name` (IP literals). */
  leafFor?: string;
}

const encoder = new TextEncoder();

/**
 * Starts upstreams for `specs` (names, or full specs).
 *
 * @param specs What to start.
 * @returns The running upstreams; `await using` closes them.
 */
export async function startUpstreams(
  specs: readonly (string | UpstreamSpec)[],
): Promise<Upstreams> {
  const ca = await CertificateAuthority.create({
    commonName: "airlock test upstream CA",
  });
  const dir = await Deno.makeTempDir({ prefix: "airlock-test-upstream-" });
  const caFile = `${dir}/upstream-ca.pem`;
  await Deno.writeTextFile(caFile, ca.certificatePem);
  const servers: { server: Deno.HttpServer; upstream: Upstream }[] = [];
  const connectTo: string[] = [];
  const controllers = new AbortController();

  const add = async (spec: UpstreamSpec): Promise<Upstream> => {
    const tls = spec.tls ?? true;
    const seen: SeenRequest[] = [];
    const wsMessages: string[] = [];
    const handler = (req: Request) => handle(req, seen, wsMessages);
    const base = {
      hostname: "127.0.0.1",
      port: 0,
      signal: controllers.signal,
      onListen() {},
    };
    let server: Deno.HttpServer;
    if (tls) {
      const leaf = await ca.leafFor(spec.leafFor ?? spec.name);
      server = Deno.serve(
        { ...base, cert: leaf.certPem, key: leaf.keyPem },
        handler,
      );
    } else {
      server = Deno.serve(base, handler);
    }
    const port = (server.addr as Deno.NetAddr).port;
    const upstream: Upstream = {
      name: spec.name,
      port,
      tls,
      seen,
      wsMessages,
      header(i, name) {
        const request = seen[i];
        assert.ok(request, `${spec.name} saw no request #${i}`);
        const values = request.headers.filter(([n]) =>
          n === name.toLowerCase()
        );
        return values.length === 0 ? null : values.map(([, v]) => v).join(
          ", ",
        );
      },
    };
    servers.push({ server, upstream });
    connectTo.push(
      `${spec.name}:${spec.publicPort ?? (tls ? 443 : 80)}:127.0.0.1:${port}`,
    );
    return upstream;
  };

  const rawListeners: { listener: Deno.Listener; loop: Promise<void> }[] = [];
  const addRaw = async (
    name: string,
    respond: (head: string) => string | Uint8Array,
  ): Promise<Upstream> => {
    const leaf = await ca.leafFor(name);
    const listener = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: leaf.certPem,
      key: leaf.keyPem,
    });
    const port = (listener.addr as Deno.NetAddr).port;
    const seen: SeenRequest[] = [];
    const serveOne = async (conn: Deno.Conn) => {
      try {
        const buf = new Uint8Array(65536);
        let head = "";
        while (!head.includes("\r\n\r\n")) {
          const n = await conn.read(buf);
          if (n === null) return;
          head += new TextDecoder().decode(buf.subarray(0, n));
        }
        const [line = "", ...fields] = head.split("\r\n\r\n")[0]!.split(
          "\r\n",
        );
        const headers = fields.map((f): [string, string] => {
          const at = f.indexOf(":");
          return [f.slice(0, at).trim().toLowerCase(), f.slice(at + 1).trim()];
        });
        seen.push({
          method: line.split(" ")[0] ?? "",
          path: line.split(" ")[1] ?? "",
          host: headers.find(([n]) => n === "host")?.[1] ?? null,
          headers,
          body: "",
          websocket: false,
        });
        const response = respond(head);
        await conn.write(
          typeof response === "string" ? encoder.encode(response) : response,
        );
      } catch {
        // the client went away
      } finally {
        try {
          conn.close();
        } catch { /* closed */ }
      }
    };
    const loop = (async () => {
      try {
        for await (const conn of listener) serveOne(conn);
      } catch {
        // listener closed
      }
    })();
    rawListeners.push({ listener, loop });
    const upstream: Upstream = {
      name,
      port,
      tls: true,
      seen,
      wsMessages: [],
      header(i, header) {
        const request = seen[i];
        assert.ok(request, `${name} saw no request #${i}`);
        const values = request.headers.filter(([n]) =>
          n === header.toLowerCase()
        );
        return values.length === 0 ? null : values.map(([, v]) => v).join(", ");
      },
    };
    connectTo.push(`${name}:443:127.0.0.1:${port}`);
    rawUpstreams.push(upstream);
    return upstream;
  };
  const rawUpstreams: Upstream[] = [];

  for (const spec of specs) {
    await add(typeof spec === "string" ? { name: spec } : spec);
  }

  const close = async () => {
    controllers.abort();
    for (const { listener } of rawListeners) {
      try {
        listener.close();
      } catch { /* closed */ }
    }
    await Promise.all(rawListeners.map(({ loop }) => loop));
    await Promise.all(servers.map(({ server }) => server.finished));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  return {
    ca,
    caFile,
    connectTo,
    add,
    addRaw,
    get(name) {
      const found = servers.find(({ upstream }) => upstream.name === name)
        ?.upstream ?? rawUpstreams.find((u) => u.name === name);
      assert.ok(found, `no upstream named ${name}`);
      return found;
    },
    servers: (name) =>
      servers.filter(({ upstream }) => upstream.name === name).map((s) =>
        s.upstream
      ),
    allSeen: () => [
      ...servers.flatMap(({ upstream }) => upstream.seen),
      ...rawUpstreams.flatMap((u) => u.seen),
    ],
    close,
    [Symbol.asyncDispose]: close,
  };
}

async function handle(
  req: Request,
  seen: SeenRequest[],
  wsMessages: string[],
): Promise<Response> {
  const url = new URL(req.url);
  const websocket = req.headers.get("upgrade")?.toLowerCase() === "websocket";
  const record: SeenRequest = {
    method: req.method,
    path: url.pathname + url.search,
    host: req.headers.get("host"),
    headers: [...req.headers],
    body: websocket ? "" : await req.text(),
    websocket,
  };
  seen.push(record);
  const authorization = req.headers.get("authorization") ?? "";
  if (url.pathname === "/ws" && websocket) {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (e) => {
      const text = String(e.data);
      wsMessages.push(text);
      if (text === "auth") socket.send(authorization);
      else if (text === "auth-binary") {
        socket.send(encoder.encode(authorization));
      } else if (text === "auth-big") {
        // Large enough to span many TCP reads and WebSocket frame headers
        // of 64-bit length: the secret straddles read boundaries.
        const filler = "x".repeat(70_000);
        socket.send(`${filler}${authorization}${filler}${authorization}`);
      } else socket.send(`echo:${text}`);
    };
    socket.onerror = () => {};
    return response;
  }
  if (url.pathname === "/redirect") {
    return new Response(null, {
      status: 302,
      headers: { location: url.searchParams.get("to") ?? "/" },
    });
  }
  if (url.pathname === "/drip") {
    // The Authorization value, one byte per chunk, each flushed apart.
    const bytes = encoder.encode(`auth=${authorization};`);
    let i = 0;
    return new Response(
      new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (i >= bytes.length) return controller.close();
          await new Promise((r) => setTimeout(r, 2));
          controller.enqueue(bytes.slice(i, ++i));
        },
      }),
      { headers: { "content-type": "text/plain" } },
    );
  }
  if (url.pathname === "/zstd-echo") {
    // Claims a coding the echo guard cannot decode; the bytes are the
    // plain secret, so a proxy passing it through would leak it.
    return new Response(`auth=${authorization}`, {
      headers: { "content-encoding": "zstd", "content-type": "text/plain" },
    });
  }
  if (url.pathname === "/bare-token") {
    const token = authorization.split(" ").slice(1).join(" ");
    return new Response(`token ${token} is not valid for this endpoint\n`, {
      status: 401,
      headers: { "content-type": "text/plain" },
    });
  }
  const echo = JSON.stringify({
    method: record.method,
    path: record.path,
    host: record.host,
    headers: record.headers,
    body: record.body,
  });
  if (url.pathname.startsWith("/gzip")) {
    const gzipped = await new Response(
      ReadableStream.from([encoder.encode(echo)]).pipeThrough(
        new CompressionStream("gzip"),
      ),
    ).arrayBuffer();
    return new Response(gzipped, {
      headers: {
        "content-type": "application/json",
        "content-encoding": "gzip",
        "x-echo-authorization": authorization,
      },
    });
  }
  return new Response(echo, {
    headers: {
      "content-type": "application/json",
      // Response headers are echoed too, the way debug endpoints do.
      "x-echo-authorization": authorization,
    },
  });
}

/** Only the injector's egress events of a trail. */
export function egressEvents(audit: readonly AuditEvent[]): EgressEvent[] {
  return audit.filter((e): e is EgressEvent => e.source === "injector");
}

/** Asserts `needle` occurs in no byte of `haystack`. */
export function assertNoBytes(
  haystack: Uint8Array | string,
  needle: string,
  where: string,
): void {
  const text = typeof haystack === "string"
    ? haystack
    : new TextDecoder("latin1").decode(haystack);
  const bytes = typeof haystack === "string"
    ? encoder.encode(haystack)
    : haystack;
  assert.ok(needle.length > 0);
  assert.ok(!text.includes(needle), `${where} contains the secret`);
  assert.ok(
    indexOfBytes(bytes, encoder.encode(needle)) === -1,
    `${where} contains the secret's bytes`,
  );
}

function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

/** Every regular file under `dir` (recursively), with its bytes. */
export async function filesUnder(
  dir: string,
): Promise<{ path: string; bytes: Uint8Array }[]> {
  const out: { path: string; bytes: Uint8Array }[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...await filesUnder(path));
    else if (entry.isFile) out.push({ path, bytes: await Deno.readFile(path) });
  }
  return out;
}

/** A random secret of the given prefix, long enough for the echo guard. */
export function randomSecret(prefix = "sk-test"): string {
  const hex = Array.from(crypto.getRandomValues(new Uint8Array(16)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${prefix}-${hex}`;
}

/**
 * The last line of stdout parsed as JSON (programs print their findings as
 * one JSON line last).
 */
export function lastJson<T = Record<string, unknown>>(
  result: { stdout: string; stderr: string },
): T {
  const line = result.stdout.trim().split("\n").at(-1);
  assert.ok(
    line,
    `no output; stderr: ${result.stderr.slice(0, 2000)}`,
  );
  try {
    return JSON.parse(line) as T;
  } catch {
    assert.fail(
      `last stdout line is not JSON: ${line.slice(0, 500)}; stderr: ${
        result.stderr.slice(0, 2000)
      }`,
    );
  }
}

/**
 * Program text: `attempts` maps a name to an async expression; the program
 * awaits each and prints one JSON line mapping names to
 * `{ ok: true, value }` or `{ ok: false, error }`.
 */
export function tryEach(attempts: Record<string, string>): string {
  const lines = Object.entries(attempts).map(([name, expr]) => {
    const key = JSON.stringify(name);
    return `try { out[${key}] = { ok: true, value: await (${expr}) }; } catch (e) { out[${key}] = { ok: false, error: String(e?.name) + ": " + String(e?.message) }; }`;
  });
  return `const out = {};\n${
    lines.join("\n")
  }\nconsole.log(JSON.stringify(out));`;
}

/** Outcome of one `tryEach` attempt. */
export type Attempt =
  | { ok: true; value: unknown }
  | { ok: false; error: string };

/**
 * A program snippet (an async function expression) that fetches `url` and
 * resolves to `{ status, airlockError, body }`.
 */
export function fetchExpr(url: string, init: RequestInit = {}): string {
  return `(async () => {
    const r = await fetch(${JSON.stringify(url)}, ${JSON.stringify(init)});
    return { status: r.status, airlockError: r.headers.get("x-airlock-error"), body: await r.text() };
  })()`;
}

/**
 * Program source defining `rawProxy(lines, { tls?: host, connect?: authority })`:
 * opens a TCP connection to the injector at 127.0.0.1:3128 by hand,
 * optionally sends CONNECT and starts TLS (verified against the injector's
 * CA, with SNI `tls`), writes `request` and returns everything read until
 * the connection closes or 3 s of silence.
 */
export const RAW_PROXY_PRELUDE = `
function concatBytes(a, b) {
  const x = new Uint8Array(a.length + b.length); x.set(a); x.set(b, a.length); return x;
}
// Reads one HTTP response (head + body by Content-Length or chunked), or
// everything until the peer closes or is silent for idleMs.
async function readResponse(conn, idleMs = 3000) {
  let bytes = new Uint8Array();
  const buf = new Uint8Array(65536);
  const text = () => new TextDecoder().decode(bytes);
  const complete = () => {
    const t = text();
    const end = t.indexOf("\\r\\n\\r\\n");
    if (end === -1) return false;
    const head = t.slice(0, end);
    if (/^HTTP\\/1\\.1 (1\\d\\d|204|304)/.test(head) && !/^HTTP\\/1\\.1 101/.test(head)) return true;
    const length = head.match(/\\r\\ncontent-length: *(\\d+)/i);
    if (length) return bytes.length >= end + 4 + Number(length[1]);
    if (/\\r\\ntransfer-encoding: *chunked/i.test(head)) return t.endsWith("\\r\\n0\\r\\n\\r\\n") || t.slice(end + 4).startsWith("0\\r\\n\\r\\n");
    return false;
  };
  while (!complete()) {
    let timer;
    const n = await Promise.race([
      conn.read(buf).catch(() => null),
      new Promise((r) => { timer = setTimeout(() => r("idle"), idleMs); }),
    ]).finally(() => clearTimeout(timer));
    if (n === "idle" || n === null) break;
    bytes = concatBytes(bytes, buf.slice(0, n));
    if (bytes.length > 1 << 20) break;
  }
  return text();
}
async function readHead(conn) {
  let text = "";
  const buf = new Uint8Array(1);
  while (!text.endsWith("\\r\\n\\r\\n")) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += String.fromCharCode(buf[0]);
  }
  return text;
}
// Opens a TCP connection to the injector at 127.0.0.1:3128 by hand;
// optionally sends CONNECT (options.connect) and starts TLS with SNI
// options.tls (verified against the injector's CA); writes each request of
// requests (a string or a list) and reads one response after each.
async function rawProxy(requests, options = {}) {
  let conn = await Deno.connect({ hostname: "127.0.0.1", port: 3128 });
  try {
    let connectReply = null;
    if (options.connect) {
      await conn.write(new TextEncoder().encode(
        "CONNECT " + options.connect + " HTTP/1.1\\r\\nHost: " + options.connect + "\\r\\n\\r\\n",
      ));
      connectReply = await readHead(conn);
      if (!connectReply.startsWith("HTTP/1.1 200")) {
        return { connectReply, response: "", responses: [] };
      }
      if (options.tls) {
        conn = await Deno.startTls(conn, { hostname: options.tls });
        await conn.handshake();
      }
    }
    const responses = [];
    for (const request of typeof requests === "string" ? [requests] : requests) {
      if (request === "") continue;
      try {
        await conn.write(new TextEncoder().encode(request));
      } catch (e) {
        responses.push("WRITE FAILED: " + e.name);
        break;
      }
      responses.push(await readResponse(conn));
    }
    return { connectReply, response: responses.join(""), responses };
  } finally {
    try { conn.close(); } catch {}
  }
}
`;

/** Status code of a raw HTTP response text, or null. */
export function statusOf(response: string): number | null {
  const match = response.match(/^HTTP\/1\.[01] (\d{3})/);
  return match ? Number(match[1]) : null;
}

/** The `upstream` policy section that routes every name to its server. */
export function upstreamPolicy(
  upstreams: Upstreams,
): { connectTo: string[]; caCerts: string[] } {
  return { connectTo: [...upstreams.connectTo], caCerts: [upstreams.caFile] };
}

/** Which wall stopped a request. */
export type Layer = "deno" | "injector";

/**
 * Asserts an attempt was refused, by Deno's `--allow-net` (a NotCapable
 * error and no allowed egress event for `host:port`) or by the injector (a
 * `deny` egress event for `host:port`, and the program got an error or a
 * refusal with `X-Airlock-Error`). Returns which wall it was.
 */
export function assertRefused(
  outcome: Attempt | undefined,
  host: string,
  port: number,
  audit: readonly AuditEvent[],
  label = `${host}:${port}`,
): Layer {
  assert.ok(outcome, `${label}: no outcome`);
  const events = egressEvents(audit).filter((e) =>
    e.host === host && e.port === port
  );
  assert.ok(
    !events.some((e) => e.decision === "allow" && e.kind !== "connect"),
    `${label}: an allowed request was audited: ${JSON.stringify(events)}`,
  );
  if (!outcome.ok && /NotCapable|Requires net access/.test(outcome.error)) {
    assert.deepEqual(
      events.filter((e) => e.decision === "allow"),
      [],
      `${label}: stopped by Deno yet the injector allowed it`,
    );
    return "deno";
  }
  assert.ok(
    events.some((e) => e.decision === "deny"),
    `${label}: not stopped by Deno (${
      JSON.stringify(outcome)
    }) and no deny event in ${JSON.stringify(egressEvents(audit))}`,
  );
  if (outcome.ok) {
    const value = outcome.value as { status?: number; airlockError?: string };
    assert.ok(
      typeof value.status === "number" && value.status >= 400 &&
        typeof value.airlockError === "string",
      `${label}: the program got ${JSON.stringify(value)}, not a refusal`,
    );
  }
  return "injector";
}

/** Asserts an attempt reached its upstream with status 200. */
export function assertReached(
  outcome: Attempt | undefined,
  label: string,
): { status: number; airlockError: string | null; body: string } {
  assert.ok(outcome, `${label}: no outcome`);
  assert.ok(outcome.ok, `${label}: failed: ${JSON.stringify(outcome)}`);
  const value = outcome.value as {
    status: number;
    airlockError: string | null;
    body: string;
  };
  assert.equal(value.status, 200, `${label}: ${JSON.stringify(value)}`);
  assert.equal(value.airlockError, null, label);
  return value;
}

/** Reads a byte stream line by line. */
export function lines(
  stream: ReadableStream<Uint8Array>,
): { next(): Promise<string | null>; rest(): Promise<string> } {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let done = false;
  return {
    async next() {
      while (true) {
        const at = buffer.indexOf("\n");
        if (at !== -1) {
          const line = buffer.slice(0, at);
          buffer = buffer.slice(at + 1);
          return line;
        }
        if (done) return null;
        const chunk = await reader.read();
        if (chunk.done) done = true;
        else buffer += chunk.value;
      }
    },
    async rest() {
      while (!done) {
        const chunk = await reader.read();
        if (chunk.done) done = true;
        else buffer += chunk.value;
      }
      const text = buffer;
      buffer = "";
      return text;
    },
  };
}
