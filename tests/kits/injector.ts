/**
 * Test-only helpers for driving the injector without a sandbox: a proxy
 * harness (injector + compiled policy + binding + audit capture), raw
 * HTTP/1.1 clients over the binding's unix socket (plain, CONNECT tunnels,
 * TLS inside tunnels through `node:tls`), scriptable upstream servers on
 * 127.0.0.1 (plain or TLS, counting connections), throwaway upstream PKI
 * made with openssl, minimal client-side WebSocket framing, and RSS
 * sampling.
 *
 * Nothing here reaches beyond loopback: upstream names are mapped to local
 * servers with `connectTo` (or a fixed resolver).
 *
 * @module
 */

import net from "node:net";
import tls from "node:tls";
import { createHash } from "node:crypto";
import v8 from "node:v8";
import vm from "node:vm";
import type { EgressEvent } from "../../injector/audit.ts";
import {
  compileEgressPolicy,
  PlaceholderSecretsSchema,
} from "../../injector/egress_policy.ts";
import { Injector } from "../../injector/injector.ts";
import type { EgressBinding } from "../../injector/injector.ts";
import {
  type NetworkPolicyInput,
  NetworkPolicySchema,
} from "../../injector/network_policy.ts";
import type { ActivePolicy } from "../../injector/proxy_session.ts";
import type { Resolver } from "../../injector/resolver.ts";

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** Header fields in wire order, names as sent. */
export type HeaderList = [name: string, value: string][];

/** Encodes text as bytes, one byte per char (chars above 0xff throw). */
export function latin1Bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`char ${c} is not latin1`);
    out[i] = c;
  }
  return out;
}

/** Decodes bytes as latin1 (one char per byte). */
export function latin1Text(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return s;
}

/** Concatenates byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `probe` every 10 ms until it returns a truthy value; rejects after
 * `timeoutMs` naming `what` (a guard against hangs, not a timing assertion).
 */
export async function waitFor<T>(
  probe: () => T | null | undefined | false,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

// ---- byte streams -----------------------------------------------------------

/** A bidirectional byte stream, pull-style. */
export interface ByteStream {
  /**
   * The next chunk, or null at end of stream (or after an error). The chunk
   * may be overwritten by the next `read()`: copy what must be kept.
   */
  read(): Promise<Uint8Array | null>;
  /** Writes everything; strings are encoded as latin1 (one byte per char). */
  write(data: Uint8Array | string): Promise<void>;
  /** Closes (idempotent). */
  close(): void;
}

function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" ? latin1Bytes(data) : data;
}

/**
 * Wraps a Deno conn (unix, TCP or TLS) as a {@linkcode ByteStream}. Reads go
 * into one reused buffer: a chunk is valid until the next `read()` (so bulk
 * transfers make no garbage; {@linkcode HttpReader} copies what it keeps).
 */
export function denoStream(conn: Deno.Conn): ByteStream {
  let closed = false;
  const buffer = new Uint8Array(64 * 1024);
  return {
    async read() {
      if (closed) return null;
      try {
        const n = await conn.read(buffer);
        return n === null ? null : buffer.subarray(0, n);
      } catch {
        return null;
      }
    },
    async write(data) {
      const bytes = toBytes(data);
      let offset = 0;
      while (offset < bytes.length) {
        offset += await conn.write(bytes.subarray(offset));
      }
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch {
        // already closed
      }
    },
  };
}

/**
 * Wraps a node socket (plain or TLS) as a {@linkcode ByteStream}, with
 * backpressure (the socket is paused while 64 chunks wait unread).
 */
export function nodeStream(socket: net.Socket): ByteStream {
  const queue: Uint8Array[] = [];
  let ended = false;
  let waiter: (() => void) | null = null;
  const wake = () => {
    const w = waiter;
    waiter = null;
    w?.();
  };
  socket.on("data", (data: Uint8Array) => {
    queue.push(data);
    if (queue.length > 64) socket.pause();
    wake();
  });
  const end = () => {
    ended = true;
    wake();
  };
  socket.on("end", end);
  socket.on("close", end);
  socket.on("error", end);
  return {
    async read() {
      while (queue.length === 0) {
        if (ended) return null;
        await new Promise<void>((resolve) => (waiter = resolve));
      }
      const chunk = queue.shift()!;
      if (queue.length <= 16 && socket.isPaused()) socket.resume();
      return chunk;
    },
    write(data) {
      return new Promise((resolve, reject) => {
        if (socket.destroyed) {
          reject(new Error("socket closed"));
          return;
        }
        socket.write(
          toBytes(data),
          (error) => error ? reject(error) : resolve(),
        );
      });
    },
    close() {
      socket.destroy();
    },
  };
}

// ---- HTTP/1.1 reading ---------------------------------------------------------

/** A parsed message head (request or response). */
export interface MessageHead {
  /** The three parts of the start line. */
  startLine: [string, string, string];
  /** Header fields in wire order. */
  headers: HeaderList;
  /** The head as latin1 text. */
  raw: string;
}

/** A complete response read by {@linkcode HttpReader.readResponse}. */
export interface HttpResponse {
  /** Status code. */
  status: number;
  /** Reason phrase. */
  reason: string;
  /** Header fields in wire order. */
  headers: HeaderList;
  /** Body bytes, de-chunked. */
  body: Uint8Array;
  /** Body as UTF-8 text. */
  text: string;
  /** The head as latin1 text. */
  rawHead: string;
  /** First value of a header (case-insensitive), or undefined. */
  get(name: string): string | undefined;
  /** Every value of a header (case-insensitive). */
  getAll(name: string): string[];
}

/** Values of header `name` (case-insensitive) in `headers`. */
export function headerValues(headers: HeaderList, name: string): string[] {
  const lower = name.toLowerCase();
  return headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
}

function parseHead(raw: string): MessageHead {
  const lines = raw.split("\r\n");
  const first = lines[0] ?? "";
  const sp1 = first.indexOf(" ");
  const sp2 = first.indexOf(" ", sp1 + 1);
  const startLine: [string, string, string] = sp2 === -1
    ? [first.slice(0, sp1), first.slice(sp1 + 1), ""]
    : [first.slice(0, sp1), first.slice(sp1 + 1, sp2), first.slice(sp2 + 1)];
  const headers: HeaderList = [];
  for (const line of lines.slice(1)) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  return { startLine, headers, raw };
}

/** How a message body is delimited. */
export type Framing =
  | { kind: "none" }
  | { kind: "length"; length: number }
  | { kind: "chunked" }
  | { kind: "close" };

/** The framing of a response to `method`. */
export function responseFramingOf(
  status: number,
  headers: HeaderList,
  method: string,
): Framing {
  if (
    status < 200 || status === 204 || status === 304 || method === "HEAD" ||
    (method === "CONNECT" && status < 300)
  ) return { kind: "none" };
  if (/chunked/i.test(headerValues(headers, "transfer-encoding").join(","))) {
    return { kind: "chunked" };
  }
  const length = headerValues(headers, "content-length")[0];
  if (length !== undefined) return { kind: "length", length: Number(length) };
  return { kind: "close" };
}

/** The framing of a request. */
export function requestFramingOf(headers: HeaderList): Framing {
  if (/chunked/i.test(headerValues(headers, "transfer-encoding").join(","))) {
    return { kind: "chunked" };
  }
  const length = headerValues(headers, "content-length")[0];
  if (length !== undefined) return { kind: "length", length: Number(length) };
  return { kind: "none" };
}

/** Buffered HTTP/1.1 reader over a {@linkcode ByteStream}. */
export class HttpReader {
  /** The stream read from. */
  readonly stream: ByteStream;
  #buf: Uint8Array = new Uint8Array(0);

  /** @param stream The source. */
  constructor(stream: ByteStream) {
    this.stream = stream;
  }

  /**
   * Reads more bytes into the buffer; false at end of stream. Chunks handed
   * out earlier by {@linkcode HttpReader.readSome} or
   * {@linkcode HttpReader.body} are invalid afterwards (they may share the
   * stream's read buffer).
   */
  async fill(): Promise<boolean> {
    // Unconsumed bytes may live in the stream's reused read buffer.
    const kept = this.#buf.length === 0 ? this.#buf : this.#buf.slice();
    this.#buf = kept;
    const chunk = await this.stream.read();
    if (chunk === null) return false;
    this.#buf = kept.length === 0 ? chunk : concatBytes([kept, chunk]);
    return true;
  }

  /** Takes (a copy of) everything buffered. */
  take(): Uint8Array {
    const out = this.#buf.slice();
    this.#buf = new Uint8Array(0);
    return out;
  }

  /** Exactly `n` bytes, or throws at end of stream. */
  async readExactly(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      if (!(await this.fill())) {
        throw new Error(`stream ended before ${n} bytes`);
      }
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /** Next buffered or received bytes (at most `max`), or null at the end. */
  async readSome(max = Infinity): Promise<Uint8Array | null> {
    if (this.#buf.length === 0 && !(await this.fill())) return null;
    const take = Math.min(max, this.#buf.length);
    const out = this.#buf.subarray(0, take);
    this.#buf = this.#buf.subarray(take);
    return out;
  }

  /** A message head, or null if the stream ended before any byte of one. */
  async readHead(): Promise<MessageHead | null> {
    while (true) {
      const text = latin1Text(this.#buf.subarray(0, 256 * 1024));
      const end = text.indexOf("\r\n\r\n");
      if (end !== -1) {
        this.#buf = this.#buf.subarray(end + 4);
        return parseHead(text.slice(0, end));
      }
      if (!(await this.fill())) {
        if (this.#buf.length === 0) return null;
        throw new Error(
          `stream ended inside a head: ${
            JSON.stringify(latin1Text(this.#buf))
          }`,
        );
      }
    }
  }

  /** Yields body chunks of a message delimited by `framing`. */
  async *body(framing: Framing): AsyncGenerator<Uint8Array> {
    switch (framing.kind) {
      case "none":
        return;
      case "length": {
        let left = framing.length;
        while (left > 0) {
          const chunk = await this.readSome(left);
          if (chunk === null) throw new Error(`body ended ${left} bytes early`);
          left -= chunk.length;
          yield chunk;
        }
        return;
      }
      case "close": {
        let chunk: Uint8Array | null;
        while ((chunk = await this.readSome()) !== null) yield chunk;
        return;
      }
      case "chunked":
        while (true) {
          const line = await this.#line();
          const size = parseInt(line.split(";")[0]!.trim(), 16);
          if (!Number.isFinite(size)) {
            throw new Error(`bad chunk size line ${JSON.stringify(line)}`);
          }
          if (size === 0) {
            // trailers until the empty line
            while ((await this.#line()) !== "") { /* skip trailer */ }
            return;
          }
          let left = size;
          while (left > 0) {
            const chunk = await this.readSome(left);
            if (chunk === null) throw new Error("chunked body ended early");
            left -= chunk.length;
            yield chunk;
          }
          const crlf = await this.readExactly(2);
          if (crlf[0] !== 13 || crlf[1] !== 10) {
            throw new Error("chunk data not followed by CRLF");
          }
        }
    }
  }

  async #line(): Promise<string> {
    while (true) {
      const at = this.#buf.indexOf(10);
      if (at !== -1) {
        const line = latin1Text(this.#buf.subarray(0, at)).replace(/\r$/, "");
        this.#buf = this.#buf.subarray(at + 1);
        return line;
      }
      if (!(await this.fill())) throw new Error("stream ended inside a line");
    }
  }

  /** Reads one whole response to a request of `method`. */
  async readResponse(method = "GET"): Promise<HttpResponse> {
    const head = await this.readHead();
    if (head === null) throw new Error("connection closed without a response");
    const status = Number(head.startLine[1]);
    const parts: Uint8Array[] = [];
    for await (
      const chunk of this.body(
        responseFramingOf(status, head.headers, method),
      )
    ) {
      parts.push(chunk.slice());
    }
    return makeResponse(head, concatBytes(parts));
  }
}

function makeResponse(head: MessageHead, body: Uint8Array): HttpResponse {
  return {
    status: Number(head.startLine[1]),
    reason: head.startLine[2],
    headers: head.headers,
    body,
    text: utf8Decoder.decode(body),
    rawHead: head.raw,
    get: (name) => headerValues(head.headers, name)[0],
    getAll: (name) => headerValues(head.headers, name),
  };
}

// ---- HTTP/1.1 writing ---------------------------------------------------------

/** A request to serialise with {@linkcode rawRequest}. */
export interface RequestSpec {
  /** Method; default GET. */
  method?: string;
  /** Request target as sent (absolute-form or origin-form). */
  target: string;
  /** Header fields in order. */
  headers?: HeaderList;
  /** Body; a Content-Length is added unless a framing header is given. */
  body?: Uint8Array | string;
}

/** Serialises a request (strings as latin1, so tests can send any byte). */
export function rawRequest(spec: RequestSpec): Uint8Array {
  const headers: HeaderList = [...(spec.headers ?? [])];
  const body = spec.body === undefined
    ? undefined
    : typeof spec.body === "string"
    ? utf8.encode(spec.body)
    : spec.body;
  if (
    body !== undefined &&
    headerValues(headers, "content-length").length === 0 &&
    headerValues(headers, "transfer-encoding").length === 0
  ) {
    headers.push(["Content-Length", String(body.length)]);
  }
  let head = `${spec.method ?? "GET"} ${spec.target} HTTP/1.1\r\n`;
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  head += "\r\n";
  return concatBytes([latin1Bytes(head), body ?? new Uint8Array(0)]);
}

/** A client connection: a stream and a reader over it. */
export class HttpConn {
  /** The stream. */
  readonly stream: ByteStream;
  /** Reader over the stream. */
  readonly reader: HttpReader;

  /** @param stream A connected stream. */
  constructor(stream: ByteStream) {
    this.stream = stream;
    this.reader = new HttpReader(stream);
  }

  /** Writes bytes or latin1 text. */
  send(data: Uint8Array | string): Promise<void> {
    return this.stream.write(data);
  }

  /** Sends a request and reads its response. */
  async request(spec: RequestSpec): Promise<HttpResponse> {
    await this.send(rawRequest(spec));
    return await this.reader.readResponse(spec.method ?? "GET");
  }

  /** Reads one response. */
  response(method = "GET"): Promise<HttpResponse> {
    return this.reader.readResponse(method);
  }

  /** Reads until the peer closes; returns everything as latin1 text. */
  async readToEnd(): Promise<string> {
    const parts: Uint8Array[] = [this.reader.take()];
    while (true) {
      const chunk = await this.stream.read();
      if (chunk === null) break;
      parts.push(chunk.slice());
    }
    return latin1Text(concatBytes(parts));
  }

  /** Closes the connection. */
  close(): void {
    this.stream.close();
  }
}

/** Opens a plain connection to the binding's unix socket (Deno conn). */
export async function connectUnix(path: string): Promise<HttpConn> {
  const conn = await Deno.connect({ transport: "unix", path });
  return new HttpConn(denoStream(conn));
}

/** Opens a node socket to a unix path, resolved once connected. */
export function nodeConnectUnix(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path });
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

/** What {@linkcode openTunnel} got back. */
export interface TunnelResult {
  /** The CONNECT response (head only). */
  status: number;
  /** The CONNECT response headers. */
  response: HttpResponse;
  /** The node socket, positioned after the CONNECT response head. */
  socket: net.Socket;
}

/**
 * Sends `CONNECT authority` on a fresh node socket and reads the response
 * head without consuming any byte after it, so the socket can be wrapped in
 * TLS. For a refused CONNECT the response body is read too.
 */
export async function openTunnel(
  path: string,
  authority: string,
  headers: HeaderList = [["Host", authority]],
): Promise<TunnelResult> {
  const socket = await nodeConnectUnix(path);
  socket.on("error", () => {});
  socket.write(
    rawRequest({ method: "CONNECT", target: authority, headers }),
  );
  const head = await new Promise<{ text: string; rest: Uint8Array }>(
    (resolve, reject) => {
      let buf: Uint8Array = new Uint8Array(0);
      const onData = (data: Uint8Array) => {
        buf = concatBytes([buf, data]);
        const text = latin1Text(buf);
        const end = text.indexOf("\r\n\r\n");
        if (end === -1) return;
        socket.off("data", onData);
        socket.off("end", onEnd);
        socket.pause();
        resolve({ text: text.slice(0, end), rest: buf.subarray(end + 4) });
      };
      const onEnd = () =>
        reject(new Error("connection closed before the CONNECT response"));
      socket.on("data", onData);
      socket.once("end", onEnd);
    },
  );
  const parsed = parseHead(head.text);
  const status = Number(parsed.startLine[1]);
  if (status === 200) {
    if (head.rest.length > 0) socket.unshift(head.rest);
    return {
      status,
      response: makeResponse(parsed, new Uint8Array(0)),
      socket,
    };
  }
  // A refusal: read its body (Content-Length) from the remaining bytes.
  const stream = nodeStream(socket);
  socket.resume();
  const reader = new HttpReader(stream);
  const parts: Uint8Array[] = [head.rest];
  const length = Number(headerValues(parsed.headers, "content-length")[0] ?? 0);
  let got = head.rest.length;
  while (got < length) {
    const chunk = await reader.readSome();
    if (chunk === null) break;
    parts.push(chunk.slice());
    got += chunk.length;
  }
  return {
    status,
    response: makeResponse(parsed, concatBytes(parts)),
    socket,
  };
}

/** TLS options for {@linkcode openTlsTunnel}. */
export interface TlsTunnelOptions {
  /** CA (PEM) to verify the injector's leaf against. */
  ca?: string;
  /** SNI to send; default the CONNECT host. */
  servername?: string;
  /** Default true. */
  rejectUnauthorized?: boolean;
}

/**
 * CONNECTs to `host:port` and starts TLS inside the tunnel with `node:tls`
 * (Deno.startTls does not work over unix conns). Throws if the CONNECT is
 * refused.
 */
export async function openTlsTunnel(
  path: string,
  host: string,
  port: number,
  options: TlsTunnelOptions = {},
): Promise<HttpConn> {
  const authority = `${host}:${port}`;
  const tunnel = await openTunnel(path, authority);
  if (tunnel.status !== 200) {
    tunnel.socket.destroy();
    throw new Error(
      `CONNECT ${authority} refused: ${tunnel.status} ${tunnel.response.text}`,
    );
  }
  const secure = tls.connect({
    socket: tunnel.socket,
    servername: options.servername ?? host,
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    rejectUnauthorized: options.rejectUnauthorized ?? true,
    ALPNProtocols: ["http/1.1"],
  });
  await new Promise<void>((resolve, reject) => {
    secure.once("secureConnect", () => {
      secure.off("error", reject);
      resolve();
    });
    secure.once("error", reject);
  });
  secure.on("error", () => {});
  return new HttpConn(nodeStream(secure));
}

// ---- the proxy harness ----------------------------------------------------------

/** Options for {@linkcode startProxy}. */
export interface ProxyOptions {
  /** The network policy as written. */
  network: NetworkPolicyInput;
  /** Placeholder secrets as written. */
  secrets?: Record<string, { hosts: string[]; value: string }>;
  /** `${secret:NAME}` values. */
  secretValues?: Record<string, string>;
  /** `${env:NAME}` lookup; default: nothing resolves. */
  env?: (name: string) => string | undefined;
  /** `upstream.connectTo` entries. */
  connectTo?: string[];
  /** CA certificates (PEM text) trusted for upstream TLS. */
  caCerts?: string[];
  /** Name resolution; default {@linkcode fixedResolver}`({})`. */
  resolver?: Resolver;
  /** Run id given to the binding. */
  runId?: string;
}

/** An injector with one binding and its audit trail. */
export interface TestProxy extends AsyncDisposable {
  /** The injector. */
  injector: Injector;
  /** The binding. */
  binding: EgressBinding;
  /** The binding's socket path. */
  path: string;
  /** Every audit event so far. */
  events: EgressEvent[];
  /** Placeholder tokens by name. */
  placeholderEnv: Record<string, string>;
  /** The CA the "sandbox" trusts (PEM). */
  caPem: string;
  /** The policy in force (assign to change it live). */
  active: ActivePolicy;
  /** Waits for an audit event matching `predicate`. */
  waitForEvent(
    predicate: (event: EgressEvent) => boolean,
    what?: string,
  ): Promise<EgressEvent>;
  /** Closes the binding and the injector, removes the temp dir. */
  close(): Promise<void>;
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/**
 * A resolver with fixed answers: names in `map` resolve to their lists, IP
 * literals to themselves, anything else fails (nothing touches real DNS).
 */
export function fixedResolver(map: Record<string, string[]>): Resolver {
  return (host: string) => {
    const found = map[host];
    if (found) return Promise.resolve([...found]);
    if (IPV4.test(host) || host.includes(":")) return Promise.resolve([host]);
    return Promise.reject(new Error(`no test mapping for '${host}'`));
  };
}

/**
 * Creates an injector, compiles `options` into a policy and binds it on a
 * fresh unix socket; audit events are collected in `events`.
 */
export async function startProxy(options: ProxyOptions): Promise<TestProxy> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-injector-test-" });
  const injector = await Injector.create({
    resolver: options.resolver ?? fixedResolver({}),
  });
  const compiled = await compileEgressPolicy({
    network: NetworkPolicySchema.parse(options.network),
    secrets: PlaceholderSecretsSchema.parse(options.secrets ?? {}),
    upstream: { connectTo: options.connectTo ?? [], caCerts: [] },
  }, {
    sources: {
      secrets: options.secretValues ?? {},
      env: options.env ?? (() => undefined),
    },
    resolver: injector.resolver,
    caCerts: options.caCerts ?? [],
  });
  const events: EgressEvent[] = [];
  const path = `${dir}/egress.sock`;
  const proxy: TestProxy = {
    injector,
    binding: undefined as unknown as EgressBinding,
    path,
    events,
    placeholderEnv: compiled.placeholderEnv,
    caPem: injector.caCertificatePem,
    active: compiled.active,
    waitForEvent: (predicate, what = "an audit event") =>
      waitFor(() => events.find(predicate), what),
    async close() {
      await injector.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
    [Symbol.asyncDispose]() {
      return this.close();
    },
  };
  proxy.binding = await injector.bind({
    socketPath: path,
    sandboxId: "sandbox-test",
    ...(options.runId !== undefined ? { runId: options.runId } : {}),
    policy: () => proxy.active,
    audit: (event) => events.push(structuredClone(event)),
  });
  return proxy;
}

/** Options for {@linkcode proxyFetch}. */
export interface ProxyFetchOptions {
  /** Method; default GET. */
  method?: string;
  /** Extra headers (Host is added unless `host` is given). */
  headers?: HeaderList;
  /** Host header value; default the URL's authority; null: none. */
  host?: string | null;
  /** Body. */
  body?: Uint8Array | string;
  /** TLS options for https URLs (default: trust the proxy's CA). */
  tls?: TlsTunnelOptions;
}

/**
 * One request through the proxy: `http:` URLs as absolute-form on a plain
 * connection, `https:` URLs inside a CONNECT tunnel with TLS (origin-form).
 * A refused CONNECT is returned as the response.
 */
export async function proxyFetch(
  proxy: TestProxy,
  url: string,
  options: ProxyFetchOptions = {},
): Promise<HttpResponse> {
  const parsed = new URL(url);
  const headers: HeaderList = [];
  const host = options.host === undefined ? parsed.host : options.host;
  if (host !== null) headers.push(["Host", host]);
  headers.push(...(options.headers ?? []));
  const method = options.method ?? "GET";
  if (parsed.protocol === "http:") {
    const conn = await connectUnix(proxy.path);
    try {
      return await conn.request({
        method,
        target: url,
        headers,
        ...(options.body !== undefined ? { body: options.body } : {}),
      });
    } finally {
      conn.close();
    }
  }
  const hostname = parsed.hostname.replace(/^\[|\]$/g, "");
  const port = Number(parsed.port || 443);
  const tunnel = await openTunnel(proxy.path, `${parsed.hostname}:${port}`);
  if (tunnel.status !== 200) {
    tunnel.socket.destroy();
    return tunnel.response;
  }
  const secure = tls.connect({
    socket: tunnel.socket,
    servername: options.tls?.servername ?? hostname,
    ca: options.tls?.ca ?? proxy.caPem,
    rejectUnauthorized: options.tls?.rejectUnauthorized ?? true,
    ALPNProtocols: ["http/1.1"],
  });
  await new Promise<void>((resolve, reject) => {
    secure.once("secureConnect", () => {
      secure.off("error", reject);
      resolve();
    });
    secure.once("error", reject);
  });
  secure.on("error", () => {});
  const conn = new HttpConn(nodeStream(secure));
  try {
    return await conn.request({
      method,
      target: parsed.pathname + parsed.search,
      headers,
      ...(options.body !== undefined ? { body: options.body } : {}),
    });
  } finally {
    conn.close();
  }
}

/** Opens a TLS connection through the proxy, trusting the proxy's CA. */
export function proxyTls(
  proxy: TestProxy,
  host: string,
  port = 443,
): Promise<HttpConn> {
  return openTlsTunnel(proxy.path, host, port, { ca: proxy.caPem });
}

// ---- upstream servers ------------------------------------------------------------

/** A request as an upstream test server received it. */
export interface UpstreamRequest {
  /** 1-based index of the connection it arrived on. */
  connection: number;
  /** Method. */
  method: string;
  /** Request target as received. */
  target: string;
  /** Header fields in wire order, names as received. */
  headers: HeaderList;
  /** The head as latin1 text. */
  rawHead: string;
  /** Body bytes (filled by {@linkcode IncomingRequest.bytes}). */
  body: Uint8Array;
  /** First value of a header, case-insensitive. */
  get(name: string): string | undefined;
}

/** A request being handled: the record plus its unread body. */
export interface IncomingRequest extends UpstreamRequest {
  /** The body, streamed (consume at most once). */
  bodyChunks(): AsyncGenerator<Uint8Array>;
  /** The whole body (also stored in `body`). */
  bytes(): Promise<Uint8Array>;
}

/** How a handler answers. */
export interface Responder {
  /** Writes raw bytes (or latin1 text) to the connection. */
  write(data: Uint8Array | string): Promise<void>;
  /** Writes a whole response with Content-Length. */
  send(
    status: number,
    headers: HeaderList,
    body?: Uint8Array | string,
  ): Promise<void>;
  /** Closes the connection after the handler returns. */
  close(): void;
  /** The underlying conn. */
  conn: Deno.Conn;
}

/** Handles one upstream request. */
export type UpstreamHandler = (
  request: IncomingRequest,
  respond: Responder,
) => Promise<void> | void;

/** A running upstream test server. */
export interface UpstreamServer extends AsyncDisposable {
  /** Its port on 127.0.0.1. */
  port: number;
  /** Requests received, in order. */
  requests: UpstreamRequest[];
  /** How many connections were accepted. */
  readonly connections: number;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

/** The default handler: the request as JSON. */
export const echoHandler: UpstreamHandler = async (request, respond) => {
  const body = await request.bytes();
  await respond.send(
    200,
    [["Content-Type", "application/json"]],
    JSON.stringify(echoJson(request, body)),
  );
};

/** The JSON an echo upstream sends back. */
export function echoJson(
  request: UpstreamRequest,
  body: Uint8Array = request.body,
): {
  method: string;
  target: string;
  headers: HeaderList;
  body: string;
  connection: number;
} {
  return {
    method: request.method,
    target: request.target,
    headers: request.headers,
    body: utf8Decoder.decode(body),
    connection: request.connection,
  };
}

/**
 * Starts a raw HTTP/1.1 server on 127.0.0.1 (TLS when `tls` is given), with
 * keep-alive. Each request is recorded, then passed to `handler` (default
 * {@linkcode echoHandler}).
 */
export function startUpstream(
  options: {
    tls?: { certPem: string; keyPem: string };
    handler?: UpstreamHandler;
  } = {},
): UpstreamServer {
  const listener: Deno.Listener = options.tls
    ? Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: options.tls.certPem,
      key: options.tls.keyPem,
    })
    : Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const handler = options.handler ?? echoHandler;
  const requests: UpstreamRequest[] = [];
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let connections = 0;
  let closed = false;

  const serve = async (conn: Deno.Conn, index: number) => {
    const stream = denoStream(conn);
    const reader = new HttpReader(stream);
    try {
      while (!closed) {
        const head = await reader.readHead();
        if (head === null) break;
        const framing = requestFramingOf(head.headers);
        let consumed = framing.kind === "none";
        const bodyChunks = async function* () {
          for await (const chunk of reader.body(framing)) yield chunk;
          consumed = true;
        };
        const record: IncomingRequest = {
          connection: index,
          method: head.startLine[0],
          target: head.startLine[1],
          headers: head.headers,
          rawHead: head.raw,
          body: new Uint8Array(0),
          get: (name: string) => headerValues(head.headers, name)[0],
          bodyChunks,
          async bytes() {
            const parts: Uint8Array[] = [];
            for await (const chunk of bodyChunks()) parts.push(chunk.slice());
            record.body = concatBytes(parts);
            return record.body;
          },
        };
        requests.push(record);
        const incoming = record;
        let closeAfter = /close/i.test(
          headerValues(head.headers, "connection").join(","),
        );
        const responder: Responder = {
          write: (data) => stream.write(data),
          async send(status, headers, body) {
            const bytes = body === undefined
              ? new Uint8Array(0)
              : typeof body === "string"
              ? utf8.encode(body)
              : body;
            let text = `HTTP/1.1 ${status} Status\r\n`;
            for (const [n, v] of headers) text += `${n}: ${v}\r\n`;
            text += `Content-Length: ${bytes.length}\r\n\r\n`;
            await stream.write(concatBytes([latin1Bytes(text), bytes]));
          },
          close: () => {
            closeAfter = true;
          },
          conn,
        };
        await handler(incoming, responder);
        if (!consumed || closeAfter) break;
      }
    } catch {
      // a broken connection ends this conn's loop
    } finally {
      conns.delete(conn);
      stream.close();
    }
  };

  const accept = (async () => {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      connections++;
      conns.add(conn);
      const task = serve(conn, connections);
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    }
  })();

  const server: UpstreamServer = {
    port: (listener.addr as Deno.NetAddr).port,
    requests,
    get connections() {
      return connections;
    },
    async close() {
      if (closed) return;
      closed = true;
      try {
        listener.close();
      } catch {
        // already closed
      }
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      await accept;
      await Promise.allSettled([...tasks]);
    },
    [Symbol.asyncDispose]() {
      return this.close();
    },
  };
  return server;
}

// ---- upstream PKI ----------------------------------------------------------------

/** A throwaway CA and a leaf for some names. */
export interface TestPki {
  /** The CA certificate (PEM): what `caCerts` must trust. */
  caPem: string;
  /** The leaf certificate (PEM). */
  certPem: string;
  /** The leaf's private key (PKCS#8 PEM). */
  keyPem: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `openssl ${args.join(" ")} failed: ${utf8Decoder.decode(out.stderr)}`,
    );
  }
}

/**
 * Makes a fresh ECDSA CA and a leaf for `names` (DNS SANs; wildcards
 * allowed) with the openssl CLI, in a temp dir that is removed afterwards.
 */
export async function createTestPki(names: string[]): Promise<TestPki> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-pki-" });
  try {
    await openssl([
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=airlock test upstream CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ], dir);
    await openssl([
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      "leaf.key",
      "-out",
      "leaf.csr",
      "-subj",
      `/CN=${names[0]}`,
    ], dir);
    await Deno.writeTextFile(
      `${dir}/leaf.ext`,
      [
        `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`,
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=serverAuth",
        "",
      ].join("\n"),
    );
    await openssl([
      "x509",
      "-req",
      "-in",
      "leaf.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "leaf.pem",
      "-days",
      "2",
      "-extfile",
      "leaf.ext",
    ], dir);
    return {
      caPem: await Deno.readTextFile(`${dir}/ca.pem`),
      certPem: await Deno.readTextFile(`${dir}/leaf.pem`),
      keyPem: await Deno.readTextFile(`${dir}/leaf.key`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

let sharedPki: Promise<TestPki> | null = null;

/**
 * The PKI most tests share: one leaf for `api.example.test`,
 * `other.example.test` and `*.example.test` (made once per test process).
 */
export function sharedTestPki(): Promise<TestPki> {
  sharedPki ??= createTestPki([
    "api.example.test",
    "other.example.test",
    "*.example.test",
    "example.test",
  ]);
  return sharedPki;
}

// ---- WebSocket client framing ----------------------------------------------------

/** WebSocket opcodes. */
export const WS = { text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/**
 * One client-to-server WebSocket frame. Client frames must be masked
 * (RFC 6455 5.3); `mask: false` is for negative tests only.
 */
export function wsFrame(
  opcode: number,
  payload: Uint8Array | string,
  options: { fin?: boolean; mask?: boolean } = {},
): Uint8Array {
  const data = typeof payload === "string" ? utf8.encode(payload) : payload;
  const masked = options.mask ?? true;
  const length = data.length;
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const out = new Uint8Array(2 + extra + (masked ? 4 : 0) + length);
  out[0] = ((options.fin ?? true) ? 0x80 : 0) | opcode;
  const view = new DataView(out.buffer);
  if (extra === 0) out[1] = length;
  else if (extra === 2) {
    out[1] = 126;
    view.setUint16(2, length);
  } else {
    out[1] = 127;
    view.setBigUint64(2, BigInt(length));
  }
  let at = 2 + extra;
  if (masked) {
    out[1]! |= 0x80;
    const key = crypto.getRandomValues(new Uint8Array(4));
    out.set(key, at);
    at += 4;
    for (let i = 0; i < length; i++) out[at + i] = data[i]! ^ key[i % 4]!;
  } else {
    out.set(data, at);
  }
  return out;
}

/** One frame as received. */
export interface WsFrame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  payload: Uint8Array;
}

/** A whole message (fragments joined), or a control frame. */
export interface WsMessage {
  opcode: number;
  data: Uint8Array;
  text: string;
}

/** Reads server frames from an {@linkcode HttpReader}. */
export class WsReader {
  readonly #reader: HttpReader;

  /** @param reader Positioned after the 101 response head. */
  constructor(reader: HttpReader) {
    this.#reader = reader;
  }

  /** The next frame, or null at end of stream. */
  async frame(): Promise<WsFrame | null> {
    let first: Uint8Array;
    try {
      first = await this.#reader.readExactly(2);
    } catch {
      return null;
    }
    const fin = (first[0]! & 0x80) !== 0;
    const opcode = first[0]! & 0x0f;
    const masked = (first[1]! & 0x80) !== 0;
    let length = first[1]! & 0x7f;
    if (length === 126) {
      const b = await this.#reader.readExactly(2);
      length = (b[0]! << 8) | b[1]!;
    } else if (length === 127) {
      const b = await this.#reader.readExactly(8);
      length = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0));
    }
    const key = masked ? await this.#reader.readExactly(4) : null;
    let payload = length === 0
      ? new Uint8Array(0)
      : await this.#reader.readExactly(length);
    if (key) payload = payload.map((b, i) => b ^ key[i % 4]!);
    return { fin, opcode, masked, payload };
  }

  /**
   * The next message: data frames are joined across continuations; ping and
   * pong are skipped; a close frame is returned as a message of opcode 8.
   */
  async message(): Promise<WsMessage | null> {
    let opcode: number | null = null;
    const parts: Uint8Array[] = [];
    while (true) {
      const frame = await this.frame();
      if (frame === null) return null;
      if (frame.masked) throw new Error("the server sent a masked frame");
      if (frame.opcode === WS.ping || frame.opcode === WS.pong) continue;
      if (frame.opcode === WS.close) {
        return {
          opcode: WS.close,
          data: frame.payload,
          text: utf8Decoder.decode(frame.payload.subarray(2)),
        };
      }
      if (frame.opcode !== 0) {
        if (opcode !== null) throw new Error("new message inside a message");
        opcode = frame.opcode;
      } else if (opcode === null) {
        throw new Error("continuation frame without a message");
      }
      parts.push(frame.payload);
      if (frame.fin) {
        const data = concatBytes(parts);
        return { opcode, data, text: utf8Decoder.decode(data) };
      }
    }
  }
}

/** The Sec-WebSocket-Accept value for a key (RFC 6455 4.2.2). */
export async function wsAccept(key: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-1",
    utf8.encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
  );
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/**
 * Sends a WebSocket upgrade request on `conn` and reads the response head
 * (for a 101, the connection then carries frames; read them with
 * {@linkcode WsReader}). For a refusal, the body is read as well.
 */
export async function wsUpgrade(
  conn: HttpConn,
  target: string,
  host: string,
  headers: HeaderList = [],
): Promise<{ response: HttpResponse; key: string }> {
  const key = btoa(
    String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))),
  );
  await conn.send(rawRequest({
    target,
    headers: [
      ["Host", host],
      ["Upgrade", "websocket"],
      ["Connection", "Upgrade"],
      ["Sec-WebSocket-Key", key],
      ["Sec-WebSocket-Version", "13"],
      ...headers,
    ],
  }));
  const head = await conn.reader.readHead();
  if (head === null) throw new Error("closed before the upgrade response");
  const status = Number(head.startLine[1]);
  if (status === 101) {
    return { response: makeResponse(head, new Uint8Array(0)), key };
  }
  const parts: Uint8Array[] = [];
  for await (
    const chunk of conn.reader.body(
      responseFramingOf(status, head.headers, "GET"),
    )
  ) parts.push(chunk.slice());
  return { response: makeResponse(head, concatBytes(parts)), key };
}

// ---- large bodies and memory ------------------------------------------------------

/**
 * Deterministic pseudo-random body of `total` bytes in chunks of
 * `chunkSize`. One buffer is reused (no garbage): each chunk is valid until
 * the next iteration, so write or hash it before asking for the next.
 */
export async function* patternBody(
  total: number,
  chunkSize = 64 * 1024,
): AsyncGenerator<Uint8Array> {
  const base = new Uint8Array(chunkSize);
  let x = 0x9e3779b9;
  for (let i = 0; i < chunkSize; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    base[i] = x & 0xff;
  }
  const chunk = new Uint8Array(chunkSize);
  const view = new DataView(chunk.buffer);
  let sent = 0;
  let index = 0;
  while (sent < total) {
    const size = Math.min(chunkSize, total - sent);
    chunk.set(base);
    // Each chunk differs: its index in the first bytes.
    view.setUint32(0, index++ >>> 0);
    sent += size;
    yield chunk.subarray(0, size);
  }
}

/** An incremental SHA-256 (node:crypto). */
export function sha256(): {
  update(chunk: Uint8Array): void;
  hex(): string;
} {
  const hash = createHash("sha256");
  return {
    update: (chunk) => void hash.update(chunk),
    hex: () => hash.digest("hex"),
  };
}

/** Memory figures from {@linkcode sampleRss}. */
export interface RssSample {
  /** RSS when sampling started. */
  before: number;
  /** Highest RSS seen. */
  peak: number;
  /** RSS when sampling stopped. */
  after: number;
  /**
   * Highest growth of live JS memory (`heapUsed + external`, measured
   * right after a forced collection, or raw when none was needed) over its
   * value at the start: a body held in memory counts here in full, even
   * when the allocator reuses pages the process already had (which RSS
   * would not show).
   */
  retained: number;
}

let gcFunction: (() => void) | null = null;

/**
 * Forces a full V8 garbage collection (`--expose-gc` set at run time through
 * `node:v8`, the `gc` function taken from a fresh `node:vm` context).
 */
export function collectGarbage(): void {
  if (gcFunction === null) {
    v8.setFlagsFromString("--expose-gc");
    gcFunction = vm.runInNewContext("gc") as () => void;
  }
  gcFunction();
}

/**
 * Samples `Deno.memoryUsage()` every `intervalMs` until `stop()`.
 *
 * V8 lets dead ArrayBuffers pile up to its external-memory limit (~64 MB)
 * before it collects them, so a streaming path that allocates a fresh
 * buffer per chunk shows tens of MB of RSS that is only garbage. With
 * `collectAbove`, a sample that finds external memory more than that many
 * bytes above its value at the start first forces a garbage collection:
 * the figures then show memory actually retained (a buffered body stays
 * live and still counts), not garbage V8 has not got round to yet.
 */
export function sampleRss(
  intervalMs = 50,
  options: { collectAbove?: number } = {},
): { stop(): RssSample; readonly collections: number } {
  const start = Deno.memoryUsage();
  const live = (usage: Deno.MemoryUsage) =>
    usage.heapUsed + usage.external - start.heapUsed - start.external;
  let peak = start.rss;
  let retained = 0;
  let collections = 0;
  const measure = () => {
    let usage = Deno.memoryUsage();
    if (
      options.collectAbove !== undefined &&
      usage.external - start.external > options.collectAbove
    ) {
      collectGarbage();
      collections++;
      usage = Deno.memoryUsage();
    }
    peak = Math.max(peak, usage.rss);
    retained = Math.max(retained, live(usage));
    return usage.rss;
  };
  const timer = setInterval(measure, intervalMs);
  return {
    get collections() {
      return collections;
    },
    stop() {
      clearInterval(timer);
      const after = measure();
      return { before: start.rss, peak, after, retained };
    },
  };
}
