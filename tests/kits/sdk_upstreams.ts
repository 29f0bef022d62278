/**
 * Test kit for the SDK compatibility matrix: local HTTPS servers that play
 * the public APIs the SDKs talk to (OpenAI, Anthropic, Stripe, GitHub,
 * Gemini), a WebSocket endpoint and a Postgres-speaking server, each on
 * 127.0.0.1 with a TLS leaf from a test CA. Sandboxes reach them by the
 * APIs' real names (`api.openai.com`...) through `upstream.connectTo`.
 *
 * Each HTTPS server records every request (headers, body) and answers the
 * one call its row makes, in the shape the SDK parses:
 *
 * - `api.openai.com`: `POST /v1/chat/completions` (JSON, or server-sent
 *   events when the body says `"stream": true`), `GET /v1/realtime` (a
 *   WebSocket that answers each message with `echo:<message>`);
 * - `api.anthropic.com`: `POST /v1/messages`;
 * - `api.stripe.com`: `GET /v1/customers/<id>`;
 * - `api.github.com`: `GET /user`;
 * - `generativelanguage.googleapis.com`:
 *   `POST /v1/models/<model>:generateContent` (or `/v1beta/`);
 * - anything else: 404 with a JSON error.
 *
 * Nothing here reaches beyond loopback.
 *
 * @module
 */

import { CertificateAuthority } from "../../injector/ca.ts";

/** One request an API server received. */
export interface ApiRequest {
  /** HTTP method. */
  method: string;
  /** Path and query. */
  path: string;
  /** Every header, lower-case names. */
  headers: [string, string][];
  /** The request body as text. */
  body: string;
}

/** The servers of one test file. */
export interface ApiUpstreams extends AsyncDisposable {
  /** Host path of the test CA certificate (`upstream.caCerts`). */
  readonly caFile: string;
  /** `connectTo` entries for every name served. */
  readonly connectTo: string[];
  /** Requests the server for `name` received, in order. */
  seen(name: string): ApiRequest[];
  /** Messages `name`'s WebSocket endpoint received. */
  wsMessages(name: string): string[];
  /** The value of `header` in every request `name` received. */
  headerValues(name: string, header: string): string[];
  /** Stops every server and removes the CA file. */
  close(): Promise<void>;
}

/** What the chat answers say (the programs print it back). */
export const REPLY_TEXT = "Hello from the local upstream";

/** The names an {@linkcode ApiUpstreams} serves over HTTPS. */
export const API_HOSTS = [
  "api.openai.com",
  "api.anthropic.com",
  "api.stripe.com",
  "api.github.com",
  "generativelanguage.googleapis.com",
] as const;

const encoder = new TextEncoder();

/**
 * Starts one HTTPS server per API name, sharing a fresh test CA.
 *
 * @returns The servers; `await using` closes them.
 */
export async function startApiUpstreams(): Promise<ApiUpstreams> {
  const ca = await CertificateAuthority.create({
    commonName: "airlock SDK matrix upstream CA",
  });
  const dir = await Deno.makeTempDir({ prefix: "airlock-sdk-upstream-" });
  const caFile = `${dir}/upstream-ca.pem`;
  await Deno.writeTextFile(caFile, ca.certificatePem);
  const abort = new AbortController();
  const servers: Deno.HttpServer[] = [];
  const seen = new Map<string, ApiRequest[]>();
  const messages = new Map<string, string[]>();
  const connectTo: string[] = [];
  for (const name of API_HOSTS) {
    const leaf = await ca.leafFor(name);
    const requests: ApiRequest[] = [];
    const received: string[] = [];
    seen.set(name, requests);
    messages.set(name, received);
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      cert: leaf.certPem,
      key: leaf.keyPem,
      signal: abort.signal,
      onListen() {},
    }, async (req) => {
      const url = new URL(req.url);
      const websocket = req.headers.get("upgrade")?.toLowerCase() ===
        "websocket";
      const request: ApiRequest = {
        method: req.method,
        path: url.pathname + url.search,
        headers: [...req.headers],
        body: websocket ? "" : await req.text(),
      };
      requests.push(request);
      if (websocket) {
        const { socket, response } = Deno.upgradeWebSocket(req);
        socket.onmessage = (e) => {
          received.push(String(e.data));
          socket.send(`echo:${e.data}`);
        };
        socket.onerror = () => {};
        return response;
      }
      return answer(name, request);
    });
    servers.push(server);
    connectTo.push(`${name}:443:127.0.0.1:${server.addr.port}`);
  }
  const close = async () => {
    abort.abort();
    await Promise.all(servers.map((s) => s.finished));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  return {
    caFile,
    connectTo,
    seen: (name) => seen.get(name) ?? [],
    wsMessages: (name) => messages.get(name) ?? [],
    headerValues: (name, header) =>
      (seen.get(name) ?? []).flatMap((r) =>
        r.headers.filter(([n]) => n === header.toLowerCase()).map(([, v]) => v)
      ),
    close,
    [Symbol.asyncDispose]: close,
  };
}

function json(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** The API's answer to the one call each row makes. */
function answer(name: string, request: ApiRequest): Response {
  const { method, path } = request;
  const route = `${method} ${path.split("?")[0]}`;
  if (
    name === "api.openai.com" && route === "POST /v1/chat/completions"
  ) {
    const body = JSON.parse(request.body || "{}") as { stream?: boolean };
    return body.stream ? openaiStream() : json(openaiCompletion());
  }
  if (name === "api.anthropic.com" && route === "POST /v1/messages") {
    return json({
      id: "msg_local",
      type: "message",
      role: "assistant",
      model: "claude-sonnet-4-5",
      content: [{ type: "text", text: REPLY_TEXT }],
      stop_reason: "end_turn",
      stop_sequence: null,
      usage: { input_tokens: 5, output_tokens: 6 },
    });
  }
  if (name === "api.stripe.com" && /^GET \/v1\/customers\/\w+$/.test(route)) {
    return json({
      id: path.split("/").at(-1)!.split("?")[0],
      object: "customer",
      email: "jenny@example.com",
      livemode: false,
    });
  }
  if (name === "api.github.com" && route === "GET /user") {
    return json({ login: "octocat", id: 583231, type: "User" });
  }
  if (
    name === "generativelanguage.googleapis.com" &&
    /^POST \/v1(beta)?\/models\/[\w.-]+:generateContent$/.test(route)
  ) {
    return json({
      candidates: [{
        content: { role: "model", parts: [{ text: REPLY_TEXT }] },
        finishReason: "STOP",
        index: 0,
      }],
      usageMetadata: { promptTokenCount: 5, candidatesTokenCount: 6 },
      modelVersion: "gemini-2.5-flash",
    });
  }
  return json({ error: { message: `no route ${route} on ${name}` } }, 404);
}

function openaiCompletion() {
  return {
    id: "chatcmpl-local",
    object: "chat.completion",
    created: 1_700_000_000,
    model: "gpt-4o-mini",
    choices: [{
      index: 0,
      message: { role: "assistant", content: REPLY_TEXT },
      finish_reason: "stop",
    }],
    usage: { prompt_tokens: 5, completion_tokens: 6, total_tokens: 11 },
  };
}

/** The completion as server-sent events, one word per chunk, then [DONE]. */
function openaiStream(): Response {
  const words = REPLY_TEXT.split(/(?= )/);
  const chunk = (delta: Record<string, unknown>, finish: string | null) =>
    `data: ${
      JSON.stringify({
        id: "chatcmpl-local",
        object: "chat.completion.chunk",
        created: 1_700_000_000,
        model: "gpt-4o-mini",
        choices: [{ index: 0, delta, finish_reason: finish }],
      })
    }\n\n`;
  const events = [
    chunk({ role: "assistant", content: "" }, null),
    ...words.map((w) => chunk({ content: w }, null)),
    chunk({}, "stop"),
    "data: [DONE]\n\n",
  ];
  return new Response(
    ReadableStream.from(events.map((e) => encoder.encode(e))),
    { headers: { "content-type": "text/event-stream" } },
  );
}

/** A Postgres-speaking server on loopback (trust authentication). */
export interface PgServer extends AsyncDisposable {
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** Startup parameters of every connection (user, database...). */
  readonly startups: Record<string, string>[];
  /** Every simple query received. */
  readonly queries: string[];
  /** Stops the server. */
  close(): Promise<void>;
}

/**
 * Starts a server speaking enough of the Postgres wire protocol (v3) for
 * `pg`'s `client.query(text)`: trust authentication (no password: a plain
 * TCP tunnel carries no injected credential), then each simple query is
 * answered with one text row (`version`, `PostgreSQL 16.0 (airlock
 * test)`). An SSL request is declined with `N`.
 *
 * @returns The server; `await using` closes it.
 */
export function startPgServer(): PgServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const startups: Record<string, string>[] = [];
  const queries: string[] = [];
  const conns = new Set<Deno.Conn>();
  const serve = async (conn: Deno.Conn) => {
    conns.add(conn);
    const reader = new PgReader(conn);
    const send = (type: string, body: Uint8Array) =>
      conn.write(pgMessage(type, body));
    try {
      let startup = await reader.untyped();
      if (startup.length === 4 && view(startup).getInt32(0) === 80877103) {
        await conn.write(encoder.encode("N")); // no SSL
        startup = await reader.untyped();
      }
      const fields = new TextDecoder().decode(startup.subarray(4)).split(
        "\0",
      );
      const params: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) {
        if (fields[i]) params[fields[i]!] = fields[i + 1]!;
      }
      startups.push(params);
      await send("R", int32(0)); // AuthenticationOk
      for (
        const [k, v] of [["server_version", "16.0"], [
          "client_encoding",
          "UTF8",
        ]]
      ) {
        await send("S", cstrings(k!, v!));
      }
      await send("K", concat(int32(4242), int32(1)));
      await send("Z", encoder.encode("I"));
      for (;;) {
        const { type, body } = await reader.typed();
        if (type === "X") return;
        if (type !== "Q") {
          await send("E", cstrings("SSERROR", "C0A000", "Mnot supported", ""));
          await send("Z", encoder.encode("I"));
          continue;
        }
        queries.push(new TextDecoder().decode(body.subarray(0, -1)));
        const column = concat(
          cstrings("version"),
          int32(0),
          int16(0),
          int32(25), // text
          int16(-1),
          int32(-1),
          int16(0),
        );
        await send("T", concat(int16(1), column));
        const value = encoder.encode("PostgreSQL 16.0 (airlock test)");
        await send("D", concat(int16(1), int32(value.length), value));
        await send("C", cstrings("SELECT 1"));
        await send("Z", encoder.encode("I"));
      }
    } catch {
      // the client went away
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  const loop = (async () => {
    try {
      for await (const conn of listener) serve(conn);
    } catch { /* closed */ }
  })();
  const close = async () => {
    try {
      listener.close();
    } catch { /* closed */ }
    for (const conn of conns) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    await loop;
  };
  return {
    port: (listener.addr as Deno.NetAddr).port,
    startups,
    queries,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Reads Postgres messages from a connection. */
class PgReader {
  #conn: Deno.Conn;
  #buffer: Uint8Array = new Uint8Array(0);
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }
  async #need(n: number): Promise<void> {
    while (this.#buffer.length < n) {
      const chunk = new Uint8Array(65536);
      const read = await this.#conn.read(chunk);
      if (read === null) throw new Error("closed");
      this.#buffer = concat(this.#buffer, chunk.subarray(0, read));
    }
  }
  #take(n: number): Uint8Array {
    const out = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.slice(n);
    return out;
  }
  /** A startup-phase message (length first): its body after the length. */
  async untyped(): Promise<Uint8Array> {
    await this.#need(4);
    const length = view(this.#buffer).getInt32(0);
    await this.#need(length);
    return this.#take(length).subarray(4);
  }
  /** A typed message: its type letter and body. */
  async typed(): Promise<{ type: string; body: Uint8Array }> {
    await this.#need(5);
    const type = String.fromCharCode(this.#buffer[0]!);
    const length = view(this.#buffer.subarray(1)).getInt32(0);
    await this.#need(1 + length);
    return { type, body: this.#take(1 + length).subarray(5) };
  }
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function int32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  view(out).setInt32(0, n);
  return out;
}

function int16(n: number): Uint8Array {
  const out = new Uint8Array(2);
  view(out).setInt16(0, n);
  return out;
}

function cstrings(...parts: string[]): Uint8Array {
  return encoder.encode(parts.map((p) => `${p}\0`).join(""));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function pgMessage(type: string, body: Uint8Array): Uint8Array {
  return concat(encoder.encode(type), int32(body.length + 4), body);
}
