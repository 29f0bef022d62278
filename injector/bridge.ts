/**
 * The in-sandbox bridge of transparent egress: a small Deno program that
 * runs inside each sandbox with network (beside the program, as the same
 * sandbox uid) and carries what a program sends without using the proxy
 * variables to the injector's per-run socket:
 *
 * - DNS: it answers on {@linkcode SANDBOX_RESOLVER}:53 (the sandbox's
 *   `/etc/resolv.conf` names it) by relaying each query over one
 *   connection to the injector, which answers every name from the policy
 *   alone with a loopback address of its own (`synthetic_names.ts`).
 *   No query ever leaves the sandbox for a real resolver.
 * - TCP: it listens on 0.0.0.0 at each port the policy can allow, and
 *   carries each connection to the injector prefixed with the address and
 *   port the program dialled.
 *
 * The bridge is on the untrusted side and is trusted with nothing: what it
 * says is what the program says. Its only claim, a destination address,
 * is mapped to a name by the injector's own table and decided like a
 * CONNECT to that name; an address no lookup of the run returned is
 * refused. It holds no secret and no certificate key.
 *
 * Wire (each connection to the socket opens with one line):
 * `\0airlock-bridge/1 dns\n`, then frames `[u32 tag][u16 length][query]`
 * each way (the answer carries the query's tag); or
 * `\0airlock-bridge/1 tcp <ipv4> <port>\n`, then the connection's bytes.
 * The NUL first byte keeps the two apart from the HTTP proxy protocol on
 * the same socket.
 *
 * @module
 */

/** The protocol word of the bridge's opening line. */
export const BRIDGE_PROTOCOL = "airlock-bridge/1";

/** Where the sandbox's resolver listens (`/etc/resolv.conf` names it). */
export const SANDBOX_RESOLVER = "127.0.0.53";

/** Everything the bridge's program text is made from. */
interface BridgeConfig {
  /** The injector's socket inside the sandbox. */
  socket: string;
  /** The resolver address to listen on. */
  resolver: string;
  /** The protocol word. */
  protocol: string;
}

/**
 * The bridge itself. Runs inside the sandbox as its own Deno process, with
 * `--allow-net` for its listeners and read/write of the socket only. Its
 * arguments: the most connections carried at once, then the ports.
 * Written as a function so it is type-checked; its text is the program.
 */
async function bridgeMain(config: BridgeConfig): Promise<void> {
  const [limitText, ...portTexts] = Deno.args;
  const limit = Math.max(1, Number(limitText) || 1);
  const ports = portTexts.map(Number).filter((p) =>
    Number.isInteger(p) && p > 0 && p < 65536
  );
  const encoder = new TextEncoder();
  const writeAll = async (conn: Deno.Conn, bytes: Uint8Array) => {
    for (let at = 0; at < bytes.length;) {
      at += await conn.write(bytes.subarray(at));
    }
  };
  const dial = async (line: string): Promise<Deno.Conn> => {
    const conn = await Deno.connect({ transport: "unix", path: config.socket });
    await writeAll(conn, encoder.encode(`\0${config.protocol} ${line}\n`));
    return conn;
  };
  // Everything is bound before the DNS channel opens: the harness hands
  // the program over only once it has, so no lookup or connection of the
  // program can come before the bridge listens.
  const udp = Deno.listenDatagram({
    hostname: config.resolver,
    port: 53,
    transport: "udp",
  });
  const listeners = ports.map((port) =>
    Deno.listen({ hostname: "0.0.0.0", port })
  );
  const dns = await dial("dns");

  // DNS: queries out in frames, answers back to whoever asked.
  const peers = new Map<number, Deno.Addr>();
  let tag = 0;
  let sending = Promise.resolve();
  (async () => {
    for (;;) {
      const [query, peer] = await udp.receive();
      if (query.length > 4096) continue;
      tag = (tag + 1) >>> 0;
      peers.set(tag, peer);
      // Unanswered queries are forgotten oldest first.
      if (peers.size > 1024) peers.delete(peers.keys().next().value!);
      const frame = new Uint8Array(6 + query.length);
      const view = new DataView(frame.buffer);
      view.setUint32(0, tag);
      view.setUint16(4, query.length);
      frame.set(query, 6);
      sending = sending.then(() => writeAll(dns, frame));
      await sending;
    }
  })().catch(() => Deno.exit(0));
  (async () => {
    let buffer = new Uint8Array(0);
    const chunk = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await dns.read(chunk);
      // The run is over (the injector closed the channel).
      if (n === null) Deno.exit(0);
      const joined = new Uint8Array(buffer.length + n);
      joined.set(buffer);
      joined.set(chunk.subarray(0, n), buffer.length);
      buffer = joined;
      while (buffer.length >= 6) {
        const view = new DataView(buffer.buffer, buffer.byteOffset);
        const length = view.getUint16(4);
        if (buffer.length < 6 + length) break;
        const answerTag = view.getUint32(0);
        const answer = buffer.slice(6, 6 + length);
        buffer = buffer.slice(6 + length);
        const peer = peers.get(answerTag);
        peers.delete(answerTag);
        if (peer) await udp.send(answer, peer).catch(() => {});
      }
    }
  })().catch(() => Deno.exit(0));

  // TCP: at most `limit` connections carried at once; the rest wait in
  // the listen backlog, inside the sandbox's own network namespace.
  let open = 0;
  const waiting: (() => void)[] = [];
  const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        await writeAll(to, buffer.subarray(0, n));
      }
      await to.closeWrite();
    } catch {
      try {
        from.close();
      } catch { /* closed */ }
      try {
        to.close();
      } catch { /* closed */ }
    }
  };
  const carry = async (conn: Deno.TcpConn) => {
    conn.setNoDelay(true);
    const local = conn.localAddr as Deno.NetAddr;
    let upstream: Deno.Conn | null = null;
    try {
      upstream = await dial(`tcp ${local.hostname} ${local.port}`);
      await Promise.all([pipe(conn, upstream), pipe(upstream, conn)]);
    } catch {
      // The injector is gone: the connection ends.
    } finally {
      for (const c of [conn, upstream]) {
        try {
          c?.close();
        } catch { /* closed */ }
      }
    }
  };
  for (const listener of listeners) {
    (async () => {
      for (;;) {
        while (open >= limit) {
          await new Promise<void>((resolve) => waiting.push(resolve));
        }
        let conn: Deno.TcpConn;
        try {
          conn = await listener.accept();
        } catch {
          continue;
        }
        open++;
        carry(conn).finally(() => {
          open--;
          waiting.shift()?.();
        });
      }
    })();
  }
}

/**
 * The bridge's program text (JavaScript), to be written to a file the
 * sandbox mounts read-only.
 *
 * @param socket The injector's socket path inside the sandbox.
 * @returns The source.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { bridgeSource } from "./bridge.ts";
 * const source = bridgeSource("/run/airlock/egress.sock");
 * assert.match(source, /airlock-bridge\/1/);
 * ```
 */
export function bridgeSource(socket: string): string {
  const config: BridgeConfig = {
    socket,
    resolver: SANDBOX_RESOLVER,
    protocol: BRIDGE_PROTOCOL,
  };
  return `// airlock's in-sandbox egress bridge (see injector/bridge.ts)\n` +
    `await (${bridgeMain.toString()})(${JSON.stringify(config)});\n`;
}
