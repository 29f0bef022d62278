/**
 * Test helper: an HTTPS upstream that authenticates the CONNECTION, as NTLM
 * and Negotiate do (and any server that binds a session to the first
 * request): the first request on a connection that carries an
 * `Authorization` logs the connection in as that credential; every later
 * request on the same connection without one is served as that user. Its
 * who-am-I answer quotes the credential the connection logged in with, so a
 * request served on someone else's connection receives their raw secret.
 *
 * Also: `hold(path)` keeps the response to a path until the test releases
 * it (for runs that end while a request is in flight).
 *
 * Loopback only; raw HTTP/1.1 with keep-alive, GET without bodies.
 *
 * @module
 */

import { CertificateAuthority } from "../../injector/ca.ts";

/** One request the upstream received. */
export interface SessionRequest {
  /** 1-based index of the connection it came on. */
  connection: number;
  /** Path and query. */
  path: string;
  /** Its own Authorization header, or null. */
  authorization: string | null;
  /** Who it was served as: the connection's credential, or "anonymous". */
  user: string;
}

/** A held response: `arrived` resolves when the request is in. */
export interface Held {
  /** Resolves when a request for the path has arrived. */
  arrived: Promise<void>;
  /** Lets the response go out. */
  release(): void;
}

/** The running upstream. */
export interface SessionUpstream extends AsyncDisposable {
  /** The name its certificate is for. */
  readonly name: string;
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** Its CA certificate (PEM), for `upstream.caCerts`. */
  readonly caPem: string;
  /** Every request, in order. */
  readonly seen: SessionRequest[];
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  /** Holds the response to `path` until `release()`. */
  hold(path: string): Held;
  /** Closes every connection and the listener. */
  close(): Promise<void>;
}

const encoder = new TextEncoder();

/**
 * Starts the upstream for `name`.
 *
 * @param name The host name it stands in for.
 * @returns The running upstream.
 */
export async function startSessionUpstream(
  name: string,
): Promise<SessionUpstream> {
  const ca = await CertificateAuthority.create({
    commonName: "airlock session upstream CA",
  });
  const leaf = await ca.leafFor(name);
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: leaf.certPem,
    key: leaf.keyPem,
  });
  const seen: SessionRequest[] = [];
  const conns = new Set<Deno.Conn>();
  const held = new Map<
    string,
    { arrive: () => void; gate: Promise<void>; release: () => void }
  >();
  let accepted = 0;

  const serve = async (conn: Deno.Conn, index: number) => {
    // The connection's login: set by its first credentialed request.
    let login: string | null = null;
    let buffered = "";
    const buf = new Uint8Array(16 * 1024);
    try {
      while (true) {
        let end = buffered.indexOf("\r\n\r\n");
        while (end === -1) {
          const n = await conn.read(buf);
          if (n === null) return;
          buffered += new TextDecoder("latin1").decode(buf.subarray(0, n));
          end = buffered.indexOf("\r\n\r\n");
        }
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        const [line = "", ...fields] = head.split("\r\n");
        const path = line.split(" ")[1] ?? "";
        const authorization = fields
          .filter((f) => /^authorization:/i.test(f))
          .map((f) => f.slice(f.indexOf(":") + 1).trim())[0] ?? null;
        // Connection-bound authentication: the first credential wins the
        // connection; later requests need none.
        if (authorization !== null && login === null) login = authorization;
        const user = login ?? "anonymous";
        seen.push({ connection: index, path, authorization, user });
        const hold = held.get(path);
        if (hold) {
          hold.arrive();
          await hold.gate;
        }
        const body = JSON.stringify({ connection: index, user });
        await conn.write(encoder.encode(
          `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${
            encoder.encode(body).length
          }\r\n\r\n${body}`,
        ));
      }
    } catch {
      // The peer went away.
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };

  const loop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      serve(conn, ++accepted);
    }
  })().catch(() => {});

  const upstream: SessionUpstream = {
    name,
    port: (listener.addr as Deno.NetAddr).port,
    caPem: ca.certificatePem,
    seen,
    get accepted() {
      return accepted;
    },
    get open() {
      return conns.size;
    },
    hold(path) {
      let arrive!: () => void;
      let release!: () => void;
      const arrived = new Promise<void>((r) => (arrive = r));
      const gate = new Promise<void>((r) => (release = r));
      held.set(path, { arrive, gate, release });
      return { arrived, release };
    },
    async close() {
      for (const hold of held.values()) {
        hold.arrive();
        hold.release();
      }
      try {
        listener.close();
      } catch { /* closed */ }
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
      await loop;
    },
    [Symbol.asyncDispose]() {
      return this.close();
    },
  };
  return upstream;
}
