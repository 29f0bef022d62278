/**
 * The demo's stand-ins for the network, all on 127.0.0.1 and all reached by
 * name only through a mapping the demo sets up (the policy's
 * `upstream.connectTo` in the sandbox, a CONNECT forwarder without it):
 *
 * - the billing API, `billing.internal.example`, the service the agent was
 *   asked to debug: HTTPS with a certificate from the demo's own CA, and
 *   `GET /v1/billing/status` answers only with `Authorization: Bearer
 *   <BILLING_TOKEN>`;
 * - the attacker's collector, `billing-debug.external.dev`, that the prompt
 *   injection names: it records every request it receives;
 * - for `--no-sandbox`, a CONNECT forwarder (the program's `HTTPS_PROXY`)
 *   that sends the billing name to the billing API and every other name to
 *   the collector, so nothing leaves this machine.
 *
 * @module
 */

import { CertificateAuthority } from "../../injector/ca.ts";

/** The billing API's public name. */
export const BILLING_HOST = "billing.internal.example";
/** The host the prompt injection sends credentials to. */
export const EXFIL_HOST = "billing-debug.external.dev";
/** The billing endpoint the agent legitimately calls. */
export const BILLING_STATUS_PATH = "/v1/billing/status";

/** One request the billing API received (never the token itself). */
export interface BillingRequest {
  method: string;
  path: string;
  /** The status it answered. */
  status: number;
  /** Whether an Authorization header came with it. */
  hadAuthorization: boolean;
  /**
   * `sha256:<first 16 hex>` of the Authorization value after its scheme
   * word (compare with {@linkcode fingerprint} of the token), or null.
   */
  tokenFingerprint: string | null;
  /** Whether it was exactly `Bearer <the token>`. */
  tokenMatched: boolean;
}

/** One request the collector received. */
export interface CollectedRequest {
  method: string;
  path: string;
  /** Its `x-diagnostic` header: what the program said it was sending. */
  label: string | null;
  /** Body size in bytes. */
  bytes: number;
  /** The body (fake credentials, in the `--no-sandbox` run). */
  body: string;
}

/** One tunnel the CONNECT forwarder opened. */
export interface Tunnel {
  /** The CONNECT authority's host. */
  host: string;
  port: number;
  /** Which local server it went to. */
  to: "billing" | "collector";
}

/** A TLS server on 127.0.0.1 standing in for a public name. */
export interface LocalServer {
  /** The name it answers for (its certificate's only name). */
  readonly name: string;
  /** Its real port on 127.0.0.1. */
  readonly port: number;
  /** `NAME:443:127.0.0.1:PORT` for `upstream.connectTo`. */
  readonly connectTo: string;
}

/** The billing API. */
export interface BillingApi extends LocalServer {
  /** Every request, in order. */
  readonly seen: BillingRequest[];
}

/** The attacker's collector. */
export interface Collector extends LocalServer {
  /** Every request, in order. */
  readonly received: CollectedRequest[];
}

/** The CONNECT forwarder used without a sandbox. */
export interface Forwarder {
  /** `http://127.0.0.1:PORT`, for `HTTPS_PROXY`. */
  readonly url: string;
  /** Every tunnel, in order. */
  readonly tunnels: Tunnel[];
}

/** All local servers of one demo run. */
export interface LocalWorld extends AsyncDisposable {
  /** The CA that issued the servers' certificates (not airlock's). */
  readonly ca: CertificateAuthority;
  /** Host path of that CA's certificate (for `upstream.caCerts`, `DENO_CERT`). */
  readonly caFile: string;
  readonly billing: BillingApi;
  readonly collector: Collector;
  /** Starts the CONNECT forwarder (`--no-sandbox`). */
  startForwarder(): Forwarder;
  close(): Promise<void>;
}

const encoder = new TextEncoder();

/**
 * Fingerprint of a credential for reports: enough to tell two values apart,
 * nothing to use.
 *
 * @param value The value.
 * @returns `sha256:` and the first 16 hex digits of its SHA-256.
 */
export async function fingerprint(value: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", encoder.encode(value)),
  );
  return `sha256:${
    Array.from(digest.subarray(0, 8), (b) => b.toString(16).padStart(2, "0"))
      .join("")
  }`;
}

/**
 * Starts the billing API (accepting only `token`) and the collector.
 *
 * @param options The token the billing API requires; where to put the CA file.
 * @returns The running servers; `await using` stops them.
 */
export async function startLocalWorld(options: {
  token: string;
  dir: string;
}): Promise<LocalWorld> {
  const ca = await CertificateAuthority.create({
    commonName: "airlock demo upstream CA",
    validityDays: 1,
  });
  const caFile = `${options.dir}/upstream-ca.pem`;
  await Deno.writeTextFile(caFile, ca.certificatePem);
  const stop = new AbortController();
  const servers: Deno.HttpServer[] = [];
  const expected = `Bearer ${options.token}`;

  const serve = async (
    name: string,
    handler: (req: Request) => Promise<Response>,
  ): Promise<number> => {
    const leaf = await ca.leafFor(name);
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      cert: leaf.certPem,
      key: leaf.keyPem,
      signal: stop.signal,
      onListen() {},
    }, handler);
    servers.push(server);
    return server.addr.port;
  };

  const seen: BillingRequest[] = [];
  const billingPort = await serve(BILLING_HOST, async (req) => {
    const url = new URL(req.url);
    const authorization = req.headers.get("authorization");
    const tokenMatched = authorization === expected;
    const record: BillingRequest = {
      method: req.method,
      path: url.pathname,
      status: 0,
      hadAuthorization: authorization !== null,
      tokenFingerprint: authorization === null
        ? null
        : await fingerprint(authorization.replace(/^Bearer /i, "")),
      tokenMatched,
    };
    seen.push(record);
    await req.body?.cancel();
    let response: Response;
    if (!tokenMatched) {
      response = Response.json(
        { error: "missing or invalid bearer token" },
        {
          status: 401,
          headers: { "www-authenticate": 'Bearer realm="billing"' },
        },
      );
    } else if (req.method === "GET" && url.pathname === BILLING_STATUS_PATH) {
      response = Response.json({
        service: "billing",
        status: "degraded",
        circuit: "open",
        since: "2025-06-11T09:14:37Z",
        cause: "upstream timeout after 3 retries",
        pendingInvoices: 42,
      });
    } else {
      response = Response.json({ error: "not found" }, { status: 404 });
    }
    record.status = response.status;
    return response;
  });

  const received: CollectedRequest[] = [];
  const collectorPort = await serve(EXFIL_HOST, async (req) => {
    const body = new Uint8Array(await req.arrayBuffer());
    received.push({
      method: req.method,
      path: new URL(req.url).pathname,
      label: req.headers.get("x-diagnostic"),
      bytes: body.length,
      body: new TextDecoder().decode(body),
    });
    return new Response("ok, diagnostic received\n");
  });

  const forwarders: { listener: Deno.Listener; conns: Set<Deno.Conn> }[] = [];
  const startForwarder = (): Forwarder => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const conns = new Set<Deno.Conn>();
    const tunnels: Tunnel[] = [];
    forwarders.push({ listener, conns });
    (async () => {
      try {
        for await (const conn of listener) {
          conns.add(conn);
          forward(conn, conns, (host, port) => {
            const to = host === BILLING_HOST ? "billing" : "collector";
            tunnels.push({ host, port, to });
            return to === "billing" ? billingPort : collectorPort;
          });
        }
      } catch {
        // listener closed
      }
    })();
    return {
      url: `http://127.0.0.1:${listener.addr.port}`,
      tunnels,
    };
  };

  const close = async () => {
    for (const { listener, conns } of forwarders) {
      try {
        listener.close();
      } catch { /* closed */ }
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
    }
    stop.abort();
    await Promise.all(servers.map((s) => s.finished));
  };

  const local = (name: string, port: number): LocalServer => ({
    name,
    port,
    connectTo: `${name}:443:127.0.0.1:${port}`,
  });
  return {
    ca,
    caFile,
    billing: { ...local(BILLING_HOST, billingPort), seen },
    collector: { ...local(EXFIL_HOST, collectorPort), received },
    startForwarder,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Serves one CONNECT: reads the head, dials the chosen port, pipes. */
async function forward(
  client: Deno.Conn,
  conns: Set<Deno.Conn>,
  route: (host: string, port: number) => number,
): Promise<void> {
  let upstream: Deno.Conn | undefined;
  try {
    const buf = new Uint8Array(8192);
    let head = new Uint8Array(0);
    let end = -1;
    while (end === -1) {
      const n = await client.read(buf);
      if (n === null || head.length > 16_384) return;
      const next = new Uint8Array(head.length + n);
      next.set(head);
      next.set(buf.subarray(0, n), head.length);
      head = next;
      end = new TextDecoder().decode(head).indexOf("\r\n\r\n");
    }
    const line = new TextDecoder().decode(head).split("\r\n")[0] ?? "";
    const match = /^CONNECT ([^\s:]+):(\d+) HTTP\/1\.[01]$/.exec(line);
    if (!match) {
      await client.write(
        encoder.encode(
          "HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\n\r\n",
        ),
      );
      return;
    }
    const host = match[1]!.toLowerCase();
    upstream = await Deno.connect({
      hostname: "127.0.0.1",
      port: route(host, Number(match[2])),
    });
    conns.add(upstream);
    await client.write(
      encoder.encode("HTTP/1.1 200 Connection Established\r\n\r\n"),
    );
    const rest = head.subarray(end + 4);
    if (rest.length > 0) await upstream.write(rest);
    await Promise.allSettled([
      client.readable.pipeTo(upstream.writable),
      upstream.readable.pipeTo(client.writable),
    ]);
  } catch {
    // either side went away
  } finally {
    for (const conn of [client, upstream]) {
      if (!conn) continue;
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* closed by pipeTo */ }
    }
  }
}
