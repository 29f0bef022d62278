/**
 * Egress benchmark: what a request costs through airlock's injector, next to
 * the same request sent straight to the upstream and through mitmproxy doing
 * the same job (allow one host, terminate TLS, set one header from a secret).
 *
 * Everything stays on loopback: the upstream is a local HTTPS server (a
 * certificate for `api.example.test` from an airlock
 * {@linkcode CertificateAuthority}); both proxies map that name to it
 * (airlock's `upstream.connectTo`, a mitmproxy addon), and the client is a
 * minimal HTTP/1.1-over-TLS one that never looks the name up (Deno's `fetch`
 * would ask the system resolver even through a proxy). Run it with
 * `DENO_NO_UPDATE_CHECK=1`, or Deno's own update check goes out.
 *
 * Per path: p50/p99 of sequential keep-alive requests, requests/s of 8
 * concurrent keep-alive clients, MB/s of a 100 MB download; for airlock also
 * the first request of a program in a fresh sandbox (real `fetch`, socat
 * bridge, inside the sandbox's own network namespace).
 *
 * Layout, so the proxies do not share an event loop with the load: the
 * clients, the upstream and the TCP-to-unix forwarder each run in a Web
 * Worker (this same module); the injector runs on the main thread, as in a
 * harness; mitmproxy is its own process. The forwarder plays the in-sandbox
 * socat's part (clients speak CONNECT to a TCP proxy; the injector listens
 * on a unix socket); its own cost is measured alone against a raw echo
 * server, so the injector's added latency is reported with and without it.
 * (One file on purpose: it is also the Worker module, hence its length.)
 *
 * Usage: `deno task bench:egress [--requests N] [--seconds S] [--downloads N]
 * [--sandboxes N] [--json]`
 *
 * Figures only: a missed target is printed, never turned into an exit code.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type MachineInfo, machineInfo, quantile } from "./start.ts";
import { Sandbox } from "../mod.ts";
import { stopBundler } from "../harness/bundle/bundle.ts";
import { parsePolicy, type PolicyInput } from "../harness/policy.ts";
import { CertificateAuthority } from "../injector/ca.ts";
import { compileEgressPolicy } from "../injector/egress_policy.ts";
import { Injector } from "../injector/injector.ts";

/** The allowed host, mapped to the local upstream by both proxies. */
export const HOST = "api.example.test";
/** The header both proxies set. */
export const HEADER = "x-api-key";
/** Concurrent keep-alive clients in the throughput series. */
export const CONCURRENCY = 8;
/** Size of the download, in bytes. */
export const DOWNLOAD_BYTES = 100_000_000;

/** Targets: added p50 (ms), req/s ratio to mitmproxy, download ratio. */
export const TARGETS = {
  addedP50Ms: 0.3,
  rpsOverMitmproxy: 5,
  downloadOfDirect: 0.5,
} as const;

const SECRET = "bench-secret-7f3a9c2e51d04b86";
const SMALL_BODY =
  '{"ok":true,"items":[1,2,3,4,5,6,7,8,9,10],"note":"a small JSON body of about a hundred bytes"}';
const WARMUP_REQUESTS = 50;
const ROUNDS = 4;
const ECHO_SIZE = 256;
/** A download still running after this is cut short (and says so). */
const DOWNLOAD_DEADLINE_MS = 30_000;
const MITM_CA = `${
  Deno.env.get("HOME") ?? "/root"
}/.mitmproxy/mitmproxy-ca-cert.pem`;
const ADDON = new URL("./_mitm_addon.py", import.meta.url).pathname;
/** The program run in each fresh sandbox: one fetch, timed inside. */
const FIRST_FETCH = `
const start = performance.now();
const res = await fetch("https://${HOST}/small", {
  headers: { "x-bench-path": "sandbox" },
});
await res.arrayBuffer();
const end = performance.now();
console.log(JSON.stringify({ status: res.status, startMs: start, fetchMs: end - start }));
`;

/** Latency of one series of sequential requests, in milliseconds. */
export interface Latency {
  /** Counted requests. */
  n: number;
  /** Median. */
  p50Ms: number;
  /** 99th percentile. */
  p99Ms: number;
  /** Mean. */
  meanMs: number;
}

/** The figures of one path to the upstream. */
export interface PathResult {
  /** Sequential keep-alive requests. */
  latency: Latency;
  /** Requests per second, {@linkcode CONCURRENCY} keep-alive clients. */
  rps: number;
  /** The 100 MB download: median MB/s (10^6 bytes) over the runs. */
  downloadMBps: number;
  /** Every download run, MB/s. */
  downloadRuns: number[];
}

/** First request of a program in a fresh sandbox (medians over the runs). */
export interface SandboxFirst {
  /** Fresh sandboxes measured. */
  runs: number;
  /** `Sandbox.create` with the policy, ms. */
  createMs: number;
  /** `sandbox.run` of the program, wall clock in the harness, ms. */
  runMs: number;
  /** Time from the sandboxed Deno's start to the program's first line, ms. */
  programStartMs: number;
  /** The first `fetch` inside the program, to the end of its body, ms. */
  firstFetchMs: number;
  /** The same three figures for each run, in order. */
  samples: { createMs: number; runMs: number; firstFetchMs: number }[];
}

/** One target and whether it was met. */
export interface Target {
  /** What is compared. */
  name: string;
  /** The measured value. */
  value: number | null;
  /** How the value must compare to the limit. */
  op: "<=" | ">=";
  /** The limit, in the same unit. */
  limit: number;
  /** Met, missed, or null when it could not be measured. */
  pass: boolean | null;
}

/** Everything the benchmark measured. */
export interface Report {
  /** Where it ran. */
  machine: MachineInfo;
  /** How it ran. */
  settings: {
    requests: number;
    rounds: number;
    warmupPerRound: number;
    concurrency: number;
    seconds: number;
    downloadBytes: number;
    downloadRuns: number;
    sandboxRuns: number;
    mitmproxy: string;
  };
  /** (a) client -> upstream. */
  direct: PathResult;
  /** (b) client -> forwarder -> injector -> upstream. */
  airlock: PathResult;
  /** (c) client -> mitmproxy -> upstream, or why it was not measured. */
  mitmproxy: PathResult | { unavailable: string };
  /** The forwarder alone: raw echo round trips without and with it. */
  forwarder: { direct: Latency; via: Latency; addedP50Ms: number };
  /** Latency airlock adds over direct. */
  added: {
    p50WithForwarderMs: number;
    p50InjectorMs: number;
    p99WithForwarderMs: number;
  };
  /** First request from a fresh sandbox, or why it was not measured. */
  sandbox: SandboxFirst | { unavailable: string };
  /** Per path, requests the upstream saw and how many carried the secret
   * header (all through a proxy, none direct). */
  injectedHeader: Record<string, { requests: number; withHeader: number }>;
  /** The targets. */
  targets: Target[];
  /** Anything that went wrong on the way (empty when all went well). */
  notes: string[];
}

// ------------------------------------------------------------ workers
//
// One module, two roles: run as a Worker it serves the operations below
// (upstream, forwarder, clients) on messages from the main thread.

/** The three paths, as the upstream tells them apart (`x-bench-path`). */
type PathName = "direct" | "airlock" | "mitmproxy";

/** Where a client connects: the upstream itself, or a proxy (CONNECT). */
interface Route {
  path: PathName;
  port: number;
  viaProxy: boolean;
  /** The CA the client trusts: the upstream's, or the proxy's own. */
  caCert: string;
}

const encoder = new TextEncoder();
const CONNECT_HEAD = encoder.encode(
  `CONNECT ${HOST}:443 HTTP/1.1\r\nHost: ${HOST}:443\r\n\r\n`,
);

/**
 * A minimal keep-alive HTTP/1.1 client over TLS. Not `fetch`: Deno's fetch
 * looks the target name up with the system resolver even when a proxy is
 * set, which would send DNS queries for `api.example.test` off this machine.
 * `Deno.startTls` uses the name for SNI and verification only. The same
 * client on all three paths also keeps client-library cost out of the
 * differences.
 */
class Http1Conn {
  #conn: Deno.Conn;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  #requests = new Map<string, Uint8Array>();
  #route: Route;

  private constructor(conn: Deno.Conn, route: Route) {
    this.#conn = conn;
    this.#route = route;
  }

  static async open(route: Route): Promise<Http1Conn> {
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port: route.port });
    tcp.setNoDelay(true);
    const http = new Http1Conn(tcp, route);
    if (route.viaProxy) {
      await writeAll(tcp, CONNECT_HEAD);
      const status = await http.#line();
      while ((await http.#line()) !== "");
      if (!/^HTTP\/1\.[01] 200 /.test(status) || http.#start !== http.#end) {
        tcp.close();
        throw new Error(`CONNECT via ${route.path} answered '${status}'`);
      }
    }
    const tls = await Deno.startTls(tcp, {
      hostname: HOST,
      caCerts: [route.caCert],
      alpnProtocols: ["http/1.1"],
    });
    await tls.handshake();
    http.#conn = tls;
    return http;
  }

  /** GETs `path`; resolves with the body's size once all of it is read. */
  async get(path: string, deadline = Infinity): Promise<number> {
    let request = this.#requests.get(path);
    if (!request) {
      request = encoder.encode(
        `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\nx-bench-path: ${this.#route.path}\r\n\r\n`,
      );
      this.#requests.set(path, request);
    }
    await writeAll(this.#conn, request);
    const status = await this.#line();
    let length = -1;
    let chunked = false;
    for (
      let line = await this.#line();
      line !== "";
      line = await this.#line()
    ) {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === "content-length") length = Number(value);
      if (name === "transfer-encoding") chunked = /chunked/i.test(value);
    }
    if (!/^HTTP\/1\.1 200 /.test(status)) {
      throw new Error(`GET ${path} via ${this.#route.path}: '${status}'`);
    }
    if (!chunked) {
      if (length < 0) throw new Error(`GET ${path}: no body length`);
      return await this.#skip(length, deadline);
    }
    let total = 0;
    while (true) {
      const size = parseInt(await this.#line(), 16);
      if (size === 0) {
        while ((await this.#line()) !== ""); // trailers
        return total;
      }
      total += await this.#skip(size, deadline);
      await this.#line();
    }
  }

  close(): void {
    closeQuietly(this.#conn);
  }

  async #fill(): Promise<void> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.length) {
      const bigger = new Uint8Array(this.#buf.length * 2);
      bigger.set(this.#buf.subarray(this.#start, this.#end));
      this.#end -= this.#start;
      this.#start = 0;
      this.#buf = bigger;
    }
    const n = await this.#conn.read(this.#buf.subarray(this.#end));
    if (n === null) throw new Error(`${this.#route.path}: connection closed`);
    this.#end += n;
  }

  /** Next line, without its CRLF. */
  async #line(): Promise<string> {
    while (true) {
      const at = this.#buf.subarray(this.#start, this.#end).indexOf(0x0a);
      if (at !== -1) {
        const end = this.#start + at;
        const text = String.fromCharCode(
          ...this.#buf.subarray(this.#start, end),
        );
        this.#start = end + 1;
        return text.endsWith("\r") ? text.slice(0, -1) : text;
      }
      await this.#fill();
    }
  }

  /** Reads and drops `n` bytes (or fewer, once `deadline` has passed). */
  async #skip(n: number, deadline: number): Promise<number> {
    let left = n;
    while (left > 0) {
      if (this.#start === this.#end) {
        if (performance.now() > deadline) break;
        await this.#fill();
      }
      const take = Math.min(left, this.#end - this.#start);
      this.#start += take;
      left -= take;
    }
    return n - left;
  }
}

async function readFull(conn: Deno.Conn, buf: Uint8Array): Promise<void> {
  let got = 0;
  while (got < buf.length) {
    const n = await conn.read(buf.subarray(got));
    if (n === null) throw new Error("echo connection closed");
    got += n;
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    offset += await conn.write(data.subarray(offset));
  }
}

/** Copies `from` into `to` until either side ends. */
async function pump(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  while (true) {
    const n = await from.read(buf);
    if (n === null) return;
    await writeAll(to, buf.subarray(0, n));
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* closed */ }
}

/** Per path: requests the upstream saw, and how many carried the secret. */
type HeaderStats = Record<string, { requests: number; withHeader: number }>;
const headerStats: HeaderStats = {};

const OPS = {
  /** The HTTPS upstream (`/small`, `/download`) and a raw echo server
   * (TCP and unix socket). */
  upstream(
    args: { cert: string; key: string; echoPath: string },
  ): { port: number; echoPort: number } {
    const chunk = crypto.getRandomValues(new Uint8Array(64 * 1024));
    const handler = (req: Request): Response => {
      const stats = headerStats[req.headers.get("x-bench-path") ?? "?"] ??= {
        requests: 0,
        withHeader: 0,
      };
      stats.requests++;
      if (req.headers.get(HEADER) === SECRET) stats.withHeader++;
      if (new URL(req.url).pathname === "/download") {
        let left = DOWNLOAD_BYTES;
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            const n = Math.min(left, chunk.length);
            controller.enqueue(chunk.subarray(0, n));
            left -= n;
            if (left === 0) controller.close();
          },
        });
        return new Response(body, {
          headers: {
            "content-type": "application/octet-stream",
            "content-length": String(DOWNLOAD_BYTES),
          },
        });
      }
      return new Response(SMALL_BODY, {
        headers: { "content-type": "application/json" },
      });
    };
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      cert: args.cert,
      key: args.key,
      onListen() {},
    }, handler);
    const echo = async (listener: Deno.Listener) => {
      for await (const conn of listener) {
        if (conn.localAddr.transport === "tcp") {
          (conn as Deno.TcpConn).setNoDelay(true);
        }
        pump(conn, conn).catch(() => {}).finally(() => closeQuietly(conn));
      }
    };
    const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    echo(tcp);
    echo(Deno.listen({ transport: "unix", path: args.echoPath }));
    return { port: server.addr.port, echoPort: tcp.addr.port };
  },

  upstreamStats(): HeaderStats {
    return structuredClone(headerStats);
  },

  /** A TCP listener on 127.0.0.1 that pipes each connection to a new
   * connection to the unix socket `path` (socat's part in production). */
  forward(args: { path: string }): number {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    (async () => {
      for await (const tcp of listener) {
        tcp.setNoDelay(true);
        Deno.connect({ transport: "unix", path: args.path }).then((unix) => {
          const done = () => {
            closeQuietly(tcp);
            closeQuietly(unix);
          };
          pump(tcp, unix).catch(() => {}).finally(done);
          pump(unix, tcp).catch(() => {}).finally(done);
        }, () => closeQuietly(tcp));
      }
    })();
    return listener.addr.port;
  },

  /** Sequential keep-alive GETs on one connection, after a warm-up. */
  async latency(args: { route: Route; n: number }): Promise<number[]> {
    const conn = await Http1Conn.open(args.route);
    try {
      for (let i = 0; i < WARMUP_REQUESTS; i++) await conn.get("/small");
      const samples: number[] = [];
      for (let i = 0; i < args.n; i++) {
        const start = performance.now();
        await conn.get("/small");
        samples.push(performance.now() - start);
      }
      return samples;
    } finally {
      conn.close();
    }
  },

  /** Requests/s of `concurrency` clients, each its own keep-alive
   * connection, for `seconds` (connections opened and warmed first). */
  async throughput(
    args: { route: Route; concurrency: number; seconds: number },
  ): Promise<number> {
    const conns = await Promise.all(
      Array.from(
        { length: args.concurrency },
        () => Http1Conn.open(args.route),
      ),
    );
    try {
      await Promise.all(conns.map(async (conn) => {
        for (let i = 0; i < 10; i++) await conn.get("/small");
      }));
      let count = 0;
      const start = performance.now();
      const deadline = start + args.seconds * 1000;
      await Promise.all(conns.map(async (conn) => {
        while (performance.now() < deadline) {
          await conn.get("/small");
          count++;
        }
      }));
      return count / ((performance.now() - start) / 1000);
    } finally {
      for (const conn of conns) conn.close();
    }
  },

  /** One download on a warm connection: MB/s (10^6 bytes), and whether it
   * finished before {@linkcode DOWNLOAD_DEADLINE_MS} (else the rate is over
   * the bytes received by then). */
  async download(
    args: { route: Route },
  ): Promise<{ mbps: number; complete: boolean }> {
    const conn = await Http1Conn.open(args.route);
    try {
      await conn.get("/small");
      const start = performance.now();
      const bytes = await conn.get("/download", start + DOWNLOAD_DEADLINE_MS);
      const seconds = (performance.now() - start) / 1000;
      return {
        mbps: bytes / 1e6 / seconds,
        complete: bytes === DOWNLOAD_BYTES,
      };
    } finally {
      conn.close();
    }
  },

  /** Round trips of {@linkcode ECHO_SIZE} bytes on one TCP connection. */
  async echo(args: { port: number; n: number }): Promise<number[]> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: args.port });
    conn.setNoDelay(true);
    const message = new Uint8Array(ECHO_SIZE).fill(0x61);
    const back = new Uint8Array(ECHO_SIZE);
    const samples: number[] = [];
    try {
      for (let i = -WARMUP_REQUESTS; i < args.n; i++) {
        const start = performance.now();
        await writeAll(conn, message);
        await readFull(conn, back);
        if (i >= 0) samples.push(performance.now() - start);
      }
      return samples;
    } finally {
      conn.close();
    }
  },
};

type Ops = typeof OPS;
type OpName = keyof Ops;
type OpArgs<K extends OpName> = Parameters<Ops[K]>[0];
type OpResult<K extends OpName> = Awaited<ReturnType<Ops[K]>>;
type Message = { id: number; op: OpName; args: unknown };
type Reply = { id: number; result?: unknown; error?: string };
type WorkerScope = {
  onmessage: (event: MessageEvent<Message>) => void;
  postMessage(message: Reply): void;
};

const IN_WORKER = "WorkerGlobalScope" in globalThis;

if (IN_WORKER) {
  const scope = globalThis as unknown as WorkerScope;
  scope.onmessage = async ({ data }) => {
    try {
      const op = OPS[data.op] as (args: unknown) => unknown;
      scope.postMessage({ id: data.id, result: await op(data.args) });
    } catch (error) {
      scope.postMessage({
        id: data.id,
        error: (error as Error)?.stack ?? String(error),
      });
    }
  };
}

/** A worker running this module, called like an async function. */
class Helper {
  #worker: Worker;
  #next = 0;
  #pending = new Map<number, PromiseWithResolvers<unknown>>();

  constructor(name: string) {
    this.#worker = new Worker(import.meta.url, { type: "module", name });
    this.#worker.onmessage = ({ data }: MessageEvent<Reply>) => {
      const call = this.#pending.get(data.id);
      this.#pending.delete(data.id);
      if (data.error !== undefined) {
        call?.reject(new Error(`worker: ${data.error}`));
      } else call?.resolve(data.result);
    };
  }

  call<K extends OpName>(op: K, args: OpArgs<K>): Promise<OpResult<K>> {
    const id = this.#next++;
    const call = Promise.withResolvers<unknown>();
    this.#pending.set(id, call);
    this.#worker.postMessage({ id, op, args } satisfies Message);
    return call.promise as Promise<OpResult<K>>;
  }

  terminate(): void {
    this.#worker.terminate();
  }
}

// ---------------------------------------------------------- mitmproxy

interface Mitm {
  port: number;
  version: string;
  stop(): Promise<void>;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

async function mitmVersion(): Promise<string | null> {
  try {
    const out = await new Deno.Command("mitmdump", { args: ["--version"] })
      .output();
    const text = new TextDecoder().decode(out.stdout);
    return /Mitmproxy:\s*(\S+)/.exec(text)?.[1] ?? "unknown";
  } catch {
    return null;
  }
}

/** Starts mitmdump; resolves once it accepts connections and its CA exists. */
async function startMitmproxy(
  upstreamPort: number,
  upstreamCaFile: string,
  version: string,
): Promise<Mitm> {
  const port = freePort();
  const child = new Deno.Command("mitmdump", {
    args: [
      "--mode",
      "regular",
      "--listen-host",
      "127.0.0.1",
      "--listen-port",
      String(port),
      "--set",
      "ssl_insecure=false",
      "--set",
      `ssl_verify_upstream_trusted_ca=${upstreamCaFile}`,
      // Stream bodies over 1 MB instead of buffering them whole (its
      // default): the fair setting for a 100 MB download.
      "--set",
      "stream_large_bodies=1m",
      "--set",
      "http2=false",
      // No per-flow log lines.
      "-q",
      "-s",
      ADDON,
    ],
    clearEnv: true,
    env: {
      HOME: Deno.env.get("HOME") ?? "/root",
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      // No __pycache__ next to the addon in the repository.
      PYTHONDONTWRITEBYTECODE: "1",
      AIRLOCK_BENCH_HOST: HOST,
      AIRLOCK_BENCH_UPSTREAM_HOST: "127.0.0.1",
      AIRLOCK_BENCH_UPSTREAM_PORT: String(upstreamPort),
      AIRLOCK_BENCH_HEADER: HEADER,
      AIRLOCK_BENCH_SECRET: SECRET,
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const drained = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (text) => void (stderr += text) }),
  ).catch(() => {});
  let exited = false;
  const status = child.status.finally(() => exited = true);
  const stop = async () => {
    if (!exited) child.kill("SIGTERM");
    await status;
    await drained;
  };
  const deadline = performance.now() + 20_000;
  while (performance.now() < deadline && !exited) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      await Deno.stat(MITM_CA);
      return { port, version, stop };
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await stop();
  throw new Error(`mitmdump did not start: ${stderr.trim().slice(-500)}`);
}

// ------------------------------------------------------------ figures

const round3 = (n: number) => Math.round(n * 1000) / 1000;
const round1 = (n: number) => Math.round(n * 10) / 10;

function latencyOf(samples: number[]): Latency {
  return {
    n: samples.length,
    p50Ms: round3(quantile(samples, 0.5)),
    p99Ms: round3(quantile(samples, 0.99)),
    meanMs: round3(samples.reduce((a, b) => a + b, 0) / samples.length),
  };
}

const median = (values: number[]) => quantile(values, 0.5);

/** Sandbox policy of the airlock path (the injector uses the same). */
function sandboxPolicy(upstreamPort: number, caFile: string): PolicyInput {
  return {
    network: {
      allow: {
        [HOST]: [{
          transform: [{ headers: { [HEADER]: "${secret:API_KEY}" } }],
        }],
      },
    },
    upstream: {
      connectTo: [`${HOST}:443:127.0.0.1:${upstreamPort}`],
      caCerts: [caFile],
    },
  };
}

async function firstFetchInSandbox(
  policy: PolicyInput,
  injector: Injector,
  runs: number,
): Promise<SandboxFirst> {
  const samples: SandboxFirst["samples"] = [];
  const starts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await using sandbox = await Sandbox.create({
      policy,
      secrets: { API_KEY: SECRET },
      injector,
    });
    const t1 = performance.now();
    const result = await sandbox.run({ code: FIRST_FETCH });
    const t2 = performance.now();
    let out: { status: number; startMs: number; fetchMs: number };
    try {
      out = JSON.parse(result.stdout);
    } catch {
      throw new Error(
        `Sandbox run failed (${result.reason} ${result.exitCode}): ${result.stdout}${result.stderr}`,
      );
    }
    if (out.status !== 200) {
      throw new Error(`Sandbox fetch answered ${out.status}`);
    }
    samples.push({
      createMs: round1(t1 - t0),
      runMs: round1(t2 - t1),
      firstFetchMs: round1(out.fetchMs),
    });
    starts.push(out.startMs);
  }
  return {
    runs,
    createMs: round1(median(samples.map((s) => s.createMs))),
    runMs: round1(median(samples.map((s) => s.runMs))),
    programStartMs: round1(median(starts)),
    firstFetchMs: round1(median(samples.map((s) => s.firstFetchMs))),
    samples,
  };
}

/** Benchmark settings. */
export interface Settings {
  /** Counted sequential requests per path. */
  requests: number;
  /** Seconds of each throughput series. */
  seconds: number;
  /** Downloads per path (the median is reported). */
  downloadRuns: number;
  /** Fresh sandboxes for the first-request figure. */
  sandboxRuns: number;
}

/**
 * Runs the whole benchmark.
 *
 * @param settings Sizes of the series.
 * @returns The figures.
 */
export async function benchmark(settings: Settings): Promise<Report> {
  const machine = await machineInfo();
  const dir = await Deno.makeTempDir({ prefix: "airlock-bench-egress-" });
  const helpers: Helper[] = [];
  let mitm: Mitm | null = null;
  let injector: Injector | null = null;
  try {
    // The upstream, with a certificate for the allowed name.
    const upstreamCa = await CertificateAuthority.create({
      commonName: "airlock bench upstream CA",
    });
    const caFile = `${dir}/upstream-ca.pem`;
    await Deno.writeTextFile(caFile, upstreamCa.certificatePem);
    const leaf = await upstreamCa.leafFor(HOST);
    const upstream = new Helper("upstream");
    const forwarder = new Helper("forwarder");
    const client = new Helper("client");
    helpers.push(upstream, forwarder, client);
    const ports = await upstream.call("upstream", {
      cert: leaf.certPem,
      key: leaf.keyPem,
      echoPath: `${dir}/echo.sock`,
    });

    // (b) the injector with the sandbox's policy, on a unix socket.
    injector = await Injector.create();
    const policyInput = sandboxPolicy(ports.port, caFile);
    const policy = parsePolicy(policyInput);
    const { active } = await compileEgressPolicy(
      {
        network: policy.network,
        secrets: policy.secrets,
        upstream: policy.upstream,
      },
      {
        sources: { secrets: { API_KEY: SECRET } },
        resolver: injector.resolver,
      },
    );
    const socketPath = `${dir}/egress.sock`;
    await injector.bind({
      socketPath,
      sandboxId: "bench",
      policy: () => active,
      audit: () => {},
    });
    const injectorPort = await forwarder.call("forward", { path: socketPath });
    const echoViaPort = await forwarder.call("forward", {
      path: `${dir}/echo.sock`,
    });

    // (c) mitmproxy.
    const version = await mitmVersion();
    let mitmUnavailable = version === null
      ? "mitmdump not found (apt-get install -y mitmproxy)"
      : "";
    if (version !== null) {
      try {
        mitm = await startMitmproxy(ports.port, caFile, version);
      } catch (error) {
        mitmUnavailable = (error as Error).message;
      }
    }

    const routes: Route[] = [
      {
        path: "direct",
        port: ports.port,
        viaProxy: false,
        caCert: upstreamCa.certificatePem,
      },
      {
        path: "airlock",
        port: injectorPort,
        viaProxy: true,
        caCert: injector.caCertificatePem,
      },
    ];
    if (mitm) {
      routes.push({
        path: "mitmproxy",
        port: mitm.port,
        viaProxy: true,
        caCert: await Deno.readTextFile(MITM_CA),
      });
    }

    // Latency: rounds interleaved across paths (drift hits all alike).
    const perRound = Math.ceil(settings.requests / ROUNDS);
    const samples = new Map<PathName, number[]>(
      routes.map((r) => [r.path, []]),
    );
    const echoDirect: number[] = [];
    const echoVia: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const route of routes) {
        samples.get(route.path)!.push(
          ...await client.call("latency", { route, n: perRound }),
        );
      }
      echoDirect.push(
        ...await client.call("echo", { port: ports.echoPort, n: perRound }),
      );
      echoVia.push(
        ...await client.call("echo", { port: echoViaPort, n: perRound }),
      );
    }

    const results: Record<string, PathResult> = {};
    const notes: string[] = [];
    for (const route of routes) {
      const name = route.path;
      const rps = await client.call("throughput", {
        route,
        concurrency: CONCURRENCY,
        seconds: settings.seconds,
      });
      const downloadRuns: number[] = [];
      for (let i = 0; i < settings.downloadRuns; i++) {
        const run = await client.call("download", { route });
        if (!run.complete) {
          notes.push(
            `${name}: download ${i + 1} cut short after ${
              DOWNLOAD_DEADLINE_MS / 1000
            } s (${round1(run.mbps)} MB/s)`,
          );
        }
        downloadRuns.push(round1(run.mbps));
      }
      results[name] = {
        latency: latencyOf(samples.get(name)!),
        rps: round1(rps),
        downloadMBps: round1(median(downloadRuns)),
        downloadRuns,
      };
    }
    await mitm?.stop();
    mitm = null;

    // A sandbox that cannot start (no bwrap, no user namespaces) costs
    // this figure only, not the others.
    const sandbox = await firstFetchInSandbox(
      policyInput,
      injector,
      settings.sandboxRuns,
    ).catch((error) => ({
      unavailable: (error as Error).message.split("\n")[0]!.slice(0, 300),
    }));
    const stats = await upstream.call("upstreamStats", undefined);

    const direct = results.direct!;
    const airlock = results.airlock!;
    const mitmResult = results.mitmproxy ?? null;
    const forwarderFig = {
      direct: latencyOf(echoDirect),
      via: latencyOf(echoVia),
      addedP50Ms: round3(
        quantile(echoVia, 0.5) - quantile(echoDirect, 0.5),
      ),
    };
    const added = {
      p50WithForwarderMs: round3(airlock.latency.p50Ms - direct.latency.p50Ms),
      p50InjectorMs: round3(
        airlock.latency.p50Ms - direct.latency.p50Ms - forwarderFig.addedP50Ms,
      ),
      p99WithForwarderMs: round3(airlock.latency.p99Ms - direct.latency.p99Ms),
    };
    const rpsRatio = mitmResult ? round3(airlock.rps / mitmResult.rps) : null;
    const downloadRatio = round3(airlock.downloadMBps / direct.downloadMBps);
    return {
      machine,
      settings: {
        requests: perRound * ROUNDS,
        rounds: ROUNDS,
        warmupPerRound: WARMUP_REQUESTS,
        concurrency: CONCURRENCY,
        seconds: settings.seconds,
        downloadBytes: DOWNLOAD_BYTES,
        downloadRuns: settings.downloadRuns,
        sandboxRuns: settings.sandboxRuns,
        mitmproxy: version ?? "not installed",
      },
      direct,
      airlock,
      mitmproxy: mitmResult ?? { unavailable: mitmUnavailable },
      forwarder: forwarderFig,
      added,
      sandbox,
      injectedHeader: stats,
      notes,
      targets: [
        {
          name: "added p50 over direct, injector alone (ms)",
          value: added.p50InjectorMs,
          op: "<=",
          limit: TARGETS.addedP50Ms,
          pass: added.p50InjectorMs <= TARGETS.addedP50Ms,
        },
        {
          name: "added p50 over direct, with the forwarder (ms)",
          value: added.p50WithForwarderMs,
          op: "<=",
          limit: TARGETS.addedP50Ms,
          pass: added.p50WithForwarderMs <= TARGETS.addedP50Ms,
        },
        {
          name: "airlock req/s over mitmproxy req/s",
          value: rpsRatio,
          op: ">=",
          limit: TARGETS.rpsOverMitmproxy,
          pass: rpsRatio === null ? null : rpsRatio >= TARGETS.rpsOverMitmproxy,
        },
        {
          name: "airlock download over direct download",
          value: downloadRatio,
          op: ">=",
          limit: TARGETS.downloadOfDirect,
          pass: downloadRatio >= TARGETS.downloadOfDirect,
        },
      ],
    };
  } finally {
    await mitm?.stop();
    await injector?.close();
    for (const helper of helpers) helper.terminate();
    await stopBundler();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

// ------------------------------------------------------------- report

const fix = (n: number, digits = 1) => n.toFixed(digits);
const col = (text: string, width: number) => text.padStart(width);

function formatSandbox(sb: Report["sandbox"]): string[] {
  const title = "first request from a fresh sandbox";
  if ("unavailable" in sb) return [`${title}: not measured: ${sb.unavailable}`];
  return [
    `${title} (median of ${sb.runs}; the program's own fetch via the in-sandbox socat bridge;`,
    "  shared injector, but each sandbox issues its own leaf and opens its own upstream connection)",
    `  Sandbox.create ${fix(sb.createMs)} ms; sandbox.run total ${
      fix(sb.runMs)
    } ms; program starts at ${fix(sb.programStartMs)} ms; first fetch ${
      fix(sb.firstFetchMs)
    } ms`,
    `  each run (create/run/fetch ms): ${
      sb.samples.map((x) =>
        `${fix(x.createMs)}/${fix(x.runMs)}/${fix(x.firstFetchMs)}`
      ).join(", ")
    }`,
  ];
}

/**
 * The report as a plain-text table.
 *
 * @param r The figures.
 * @returns Printable lines.
 */
export function formatReport(r: Report): string {
  const m = r.machine;
  const s = r.settings;
  const paths: [string, PathResult | { unavailable: string }][] = [
    ["(a) direct", r.direct],
    ["(b) airlock (via forwarder)", r.airlock],
    ["(c) mitmproxy", r.mitmproxy],
  ];
  const header = `${"path".padEnd(30)}${col("p50 ms", 9)}${col("p99 ms", 9)}${
    col("mean ms", 9)
  }${col("req/s", 10)}${col("MB/s", 9)}`;
  const rows = paths.map(([name, p]) =>
    "unavailable" in p
      ? `${name.padEnd(30)}not measured: ${p.unavailable}`
      : `${name.padEnd(30)}${col(fix(p.latency.p50Ms, 3), 9)}${
        col(fix(p.latency.p99Ms, 3), 9)
      }${col(fix(p.latency.meanMs, 3), 9)}${col(fix(p.rps, 0), 10)}${
        col(fix(p.downloadMBps), 9)
      }`
  );
  const verdict = (t: Target) =>
    t.pass === null ? "n/a" : t.pass ? "PASS" : "MISS";
  return [
    "airlock egress benchmark",
    `cpu     ${m.cpu} (${m.cores} cores)`,
    `kernel  ${m.kernel}`,
    `deno    ${m.deno}`,
    `mitm    ${s.mitmproxy}`,
    `load    ${m.load} (load average at start)`,
    `series  ${s.requests} sequential keep-alive GETs per path (${s.rounds} interleaved rounds, +${s.warmupPerRound} warm-up each);`,
    `        ${s.concurrency} keep-alive clients for ${s.seconds} s; ${
      s.downloadBytes / 1e6
    } MB download x${s.downloadRuns} (median)`,
    `        one raw HTTP/1.1-over-TLS client for all paths (TCP_NODELAY, no DNS);`,
    `        airlock and mitmproxy both set '${HEADER}' from a secret on every request;`,
    "        mitmproxy streams bodies over 1 MB (stream_large_bodies=1m), http2 off",
    "",
    header,
    ...rows,
    "",
    `forwarder alone (TCP -> unix, raw ${ECHO_SIZE}-byte echo round trip):`,
    `  echo direct p50 ${
      fix(r.forwarder.direct.p50Ms, 3)
    } ms, via forwarder p50 ${
      fix(r.forwarder.via.p50Ms, 3)
    } ms: the forwarder adds ${fix(r.forwarder.addedP50Ms, 3)} ms`,
    `airlock added latency over direct:`,
    `  p50 ${fix(r.added.p50WithForwarderMs, 3)} ms with the forwarder, ${
      fix(r.added.p50InjectorMs, 3)
    } ms injector alone; p99 ${
      fix(r.added.p99WithForwarderMs, 3)
    } ms with the forwarder`,
    "",
    ...formatSandbox(r.sandbox),
    "",
    `secret header seen by the upstream (with it / requests): ${
      Object.entries(r.injectedHeader).map(([path, h]) =>
        `${path} ${h.withHeader}/${h.requests}`
      ).join(", ")
    }`,
    "",
    ...(r.notes.length > 0
      ? ["notes", ...r.notes.map((n) => `  ${n}`), ""]
      : []),
    "targets",
    ...r.targets.map((t) =>
      `  ${t.name.padEnd(48)}${
        col(t.value === null ? "n/a" : fix(t.value, 3), 8)
      }  ${t.op} ${t.limit}  ${verdict(t)}`
    ),
  ].join("\n");
}

const USAGE =
  "Usage: deno task bench:egress [--requests N] [--seconds S] [--downloads N] [--sandboxes N] [--json]";

function parseCli(argv: string[]): Settings & { json: boolean } {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      requests: { type: "string", default: "2000" },
      seconds: { type: "string", default: "5" },
      downloads: { type: "string", default: "3" },
      sandboxes: { type: "string", default: "8" },
      json: { type: "boolean", default: false },
    },
  });
  const int = (name: string, text: string, min: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) {
      throw new Error(`--${name} must be an integer >= ${min}, got '${text}'`);
    }
    return n;
  };
  return {
    requests: int("requests", values.requests, ROUNDS),
    seconds: int("seconds", values.seconds, 1),
    downloadRuns: int("downloads", values.downloads, 1),
    sandboxRuns: int("sandboxes", values.sandboxes, 1),
    json: values.json,
  };
}

if (import.meta.main && !IN_WORKER) {
  let cli;
  try {
    cli = parseCli(Deno.args);
  } catch (error) {
    console.error(`bench:egress: ${(error as Error).message}\n${USAGE}`);
    Deno.exit(2);
  }
  const { json, ...settings } = cli;
  const report = await benchmark(settings);
  console.log(json ? JSON.stringify(report, null, 2) : formatReport(report));
}
