/**
 * Test kit for transparent egress without a sandbox: speaks the in-sandbox
 * bridge's side of the injector's socket (`injector/bridge.ts`), as the
 * bridge would or as a hostile program with Deno's walls lowered could:
 * the DNS channel, transparent connections (plain or TLS inside), and a
 * plain TCP echo upstream that counts what it receives.
 *
 * Nothing here reaches beyond loopback.
 *
 * @module
 */

import type net from "node:net";
import tls from "node:tls";
import { BRIDGE_PROTOCOL } from "../../injector/bridge.ts";
import { DNS_TYPE, encodeDnsQuery } from "../../injector/_dns.ts";
import {
  concatBytes,
  HttpConn,
  nodeConnectUnix,
  nodeStream,
} from "./injector.ts";

const encoder = new TextEncoder();

/** One DNS answer as the bridge relays it back. */
export interface DnsReply {
  /** The response code (0 NOERROR, 1 FORMERR, 5 REFUSED...). */
  rcode: number;
  /** The A record's address, or null. */
  address: string | null;
  /** The raw response. */
  bytes: Uint8Array;
}

/** The bridge's DNS channel on an injector socket. */
export interface DnsChannel extends AsyncDisposable {
  /** Asks one name (type A by default) and waits for the answer. */
  ask(name: string, type?: number): Promise<DnsReply>;
  /** Sends a raw query; resolves with the answer, or null if none came. */
  raw(query: Uint8Array, waitMs?: number): Promise<DnsReply | null>;
  /** Sends raw bytes on the channel (framing attacks). */
  send(bytes: Uint8Array): void;
  /** Resolves when the injector has closed the channel. */
  readonly closed: Promise<void>;
  close(): void;
}

/**
 * Opens the DNS channel on `path`, as the bridge does once its listeners
 * are bound.
 *
 * @param path The injector's socket.
 * @returns The channel.
 */
export async function openDnsChannel(path: string): Promise<DnsChannel> {
  const socket = await nodeConnectUnix(path);
  socket.on("error", () => {});
  socket.write(encoder.encode(`\0${BRIDGE_PROTOCOL} dns\n`));
  const waiting = new Map<number, (reply: DnsReply) => void>();
  let buffer: Uint8Array = new Uint8Array(0);
  let closedResolve!: () => void;
  const closed = new Promise<void>((resolve) => closedResolve = resolve);
  socket.on("close", () => closedResolve());
  socket.on("data", (data: Uint8Array) => {
    buffer = concatBytes([buffer, data]);
    while (buffer.length >= 6) {
      const view = new DataView(buffer.buffer, buffer.byteOffset);
      const length = view.getUint16(4);
      if (buffer.length < 6 + length) break;
      const tag = view.getUint32(0);
      const bytes = buffer.slice(6, 6 + length);
      buffer = buffer.slice(6 + length);
      waiting.get(tag)?.(decodeReply(bytes));
      waiting.delete(tag);
    }
  });
  let tag = 0;
  const raw = (query: Uint8Array, waitMs = 2_000) => {
    tag++;
    const frame = new Uint8Array(6 + query.length);
    const view = new DataView(frame.buffer);
    view.setUint32(0, tag);
    view.setUint16(4, query.length);
    frame.set(query, 6);
    const mine = tag;
    return new Promise<DnsReply | null>((resolve) => {
      const timer = setTimeout(() => {
        waiting.delete(mine);
        resolve(null);
      }, waitMs);
      waiting.set(mine, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      closed.then(() => {
        clearTimeout(timer);
        resolve(null);
      });
      socket.write(frame);
    });
  };
  return {
    raw,
    async ask(name, type = DNS_TYPE.A) {
      const reply = await raw(encodeDnsQuery(tag + 1, name, type), 10_000);
      if (reply === null) throw new Error(`no DNS answer for '${name}'`);
      return reply;
    },
    send: (bytes) => void socket.write(bytes),
    closed,
    close: () => socket.destroy(),
    [Symbol.asyncDispose]() {
      socket.destroy();
      return Promise.resolve();
    },
  };
}

function decodeReply(bytes: Uint8Array): DnsReply {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rcode = bytes.length >= 4 ? view.getUint16(2) & 0xf : -1;
  const answers = bytes.length >= 8 ? view.getUint16(6) : 0;
  // The answer airlock writes is the last 16 bytes: pointer, type A, IN,
  // TTL, length 4, the address.
  const address = answers === 1
    ? [...bytes.subarray(bytes.length - 4)].join(".")
    : null;
  return { rcode, address, bytes };
}

/**
 * Opens a transparent connection, as the bridge does for a program that
 * dialled `address:port`.
 *
 * @param path The injector's socket.
 * @param address The address the program dialled.
 * @param port The port.
 * @param line The bridge line to send instead (attacks).
 * @returns The socket, after the bridge line.
 */
export async function openTransparent(
  path: string,
  address: string,
  port: number,
  line = `\0${BRIDGE_PROTOCOL} tcp ${address} ${port}\n`,
): Promise<net.Socket> {
  const socket = await nodeConnectUnix(path);
  socket.on("error", () => {});
  socket.write(encoder.encode(line));
  return socket;
}

/**
 * A transparent connection with TLS inside (as a program's `tls.connect`
 * to a looked-up name), verified against `ca`.
 *
 * @param path The injector's socket.
 * @param address The synthetic address.
 * @param port The port.
 * @param options The SNI to send and the CA to trust.
 * @returns An HTTP connection over it.
 */
export async function openTransparentTls(
  path: string,
  address: string,
  port: number,
  options: { servername: string; ca: string },
): Promise<HttpConn> {
  const socket = await openTransparent(path, address, port);
  const secure = tls.connect({
    socket,
    servername: options.servername,
    ca: options.ca,
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

/** A plain TCP upstream that echoes every byte, and counts them. */
export interface TcpEcho extends AsyncDisposable {
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Bytes received so far. */
  readonly received: number;
  close(): Promise<void>;
}

/**
 * Starts a TCP echo server on 127.0.0.1 (a stand-in for Redis, SSH...:
 * bytes in, the same bytes out).
 *
 * @param greeting Bytes sent first on each connection (server speaks first).
 * @returns The server.
 */
export function startTcpEcho(greeting?: string): TcpEcho {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let connections = 0;
  let received = 0;
  (async () => {
    for await (const conn of listener) {
      connections++;
      conns.add(conn);
      (async () => {
        const buffer = new Uint8Array(64 * 1024);
        try {
          if (greeting) await conn.write(encoder.encode(greeting));
          for (;;) {
            const n = await conn.read(buffer);
            if (n === null) break;
            received += n;
            for (let at = 0; at < n;) {
              at += await conn.write(buffer.subarray(at, n));
            }
          }
        } catch {
          // closed
        } finally {
          conns.delete(conn);
          try {
            conn.close();
          } catch { /* closed */ }
        }
      })();
    }
  })().catch(() => {});
  const server: TcpEcho = {
    port: (listener.addr as Deno.NetAddr).port,
    get connections() {
      return connections;
    },
    get received() {
      return received;
    },
    close() {
      try {
        listener.close();
      } catch { /* closed */ }
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
      return Promise.resolve();
    },
    [Symbol.asyncDispose]() {
      return this.close();
    },
  };
  return server;
}

/**
 * Reads from a node socket until `predicate` holds for what arrived, or
 * the socket ends.
 *
 * @param socket The socket.
 * @param predicate When to stop.
 * @returns Everything read (latin1), and whether the socket ended.
 */
export function readUntil(
  socket: net.Socket,
  predicate: (text: string) => boolean,
): Promise<{ text: string; ended: boolean }> {
  return new Promise((resolve) => {
    let text = "";
    const done = (ended: boolean) => {
      socket.off("data", onData);
      resolve({ text, ended });
    };
    const onData = (data: Uint8Array) => {
      text += String.fromCharCode(...data);
      if (predicate(text)) done(false);
    };
    socket.on("data", onData);
    socket.once("close", () => done(true));
    socket.once("end", () => done(true));
  });
}
