/**
 * One pull-style interface over the two kinds of connections the injector
 * handles: node sockets on the sandbox side (node:tls is the only server-side
 * TLS that wraps an already-accepted socket) and Deno conns upstream
 * (`Deno.startTls` verifies a name while dialling a pre-checked address).
 *
 * @module
 */

import type { Socket } from "node:net";
import { findHeadEnd } from "./http1.ts";

/** A bidirectional byte stream. */
export interface ByteChannel {
  /** Next chunk, or null at end of stream. */
  read(): Promise<Uint8Array | null>;
  /** Writes all of `data`, respecting backpressure. */
  write(data: Uint8Array): Promise<void>;
  /** Half-close or close. Idempotent. */
  close(): void;
  /** Whether the peer closed or an error occurred. */
  readonly closed: boolean;
}

const HIGH_WATER = 256 * 1024;

/**
 * A node socket as a {@linkcode ByteChannel}, with backpressure: the socket
 * is paused while more than 256 KiB wait unread.
 *
 * @example Usage
 * ```ts ignore
 * const channel = new SocketChannel(socket);
 * const chunk = await channel.read();
 * ```
 */
export class SocketChannel implements ByteChannel {
  #socket: Socket;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #waiter: ((value: void) => void) | null = null;
  #onData = (data: Uint8Array) => {
    this.#queue.push(data);
    this.#queued += data.length;
    if (this.#queued > HIGH_WATER) this.#socket.pause();
    this.#wake();
  };
  #onEnd = () => {
    this.#ended = true;
    this.#wake();
  };

  /** @param socket A connected socket (plain or TLS). */
  constructor(socket: Socket) {
    this.#socket = socket;
    socket.setNoDelay?.(true); // Nagle would add 40 ms stalls per hop
    socket.on("data", this.#onData);
    socket.on("end", this.#onEnd);
    socket.on("close", this.#onEnd);
    socket.on("error", this.#onEnd);
  }

  /** The underlying socket. */
  get socket(): Socket {
    return this.#socket;
  }

  get closed(): boolean {
    return this.#ended || this.#socket.destroyed;
  }

  async read(): Promise<Uint8Array | null> {
    while (this.#queue.length === 0) {
      if (this.#ended) return null;
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
    const chunk = this.#queue.shift()!;
    this.#queued -= chunk.length;
    if (this.#queued <= HIGH_WATER && this.#socket.isPaused()) {
      this.#socket.resume();
    }
    return chunk;
  }

  write(data: Uint8Array): Promise<void> {
    if (this.#socket.destroyed) {
      return Promise.reject(new Error("socket closed"));
    }
    return new Promise((resolve, reject) => {
      this.#socket.write(data, (error) => (error ? reject(error) : resolve()));
    });
  }

  close(): void {
    this.#socket.end();
    this.#socket.destroySoon?.();
  }

  /** Tears the socket down at once. */
  destroy(): void {
    this.#socket.destroy();
  }

  /**
   * Stops reading and hands back the socket with any unread bytes pushed
   * back into it, so it can be wrapped (TLS) by a new reader.
   *
   * @param pending Bytes already taken from this channel but not consumed.
   * @returns The socket.
   */
  detach(pending: Uint8Array): Socket {
    this.#socket.pause();
    this.#socket.off("data", this.#onData);
    this.#socket.off("end", this.#onEnd);
    this.#socket.off("close", this.#onEnd);
    this.#socket.off("error", this.#onEnd);
    const rest = concat([pending, ...this.#queue]);
    this.#queue = [];
    if (rest.length > 0) this.#socket.unshift(rest);
    return this.#socket;
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }
}

/**
 * A Deno conn (TCP or TLS) as a {@linkcode ByteChannel}.
 *
 * @example Usage
 * ```ts ignore
 * const channel = new ConnChannel(await Deno.connect({ hostname: "127.0.0.1", port: 80 }));
 * ```
 */
export class ConnChannel implements ByteChannel {
  #conn: Deno.Conn;
  #buffer = new Uint8Array(64 * 1024);
  #closed = false;
  #inFlight: Promise<Uint8Array | null> | null = null;

  /** @param conn A connected conn. */
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  get closed(): boolean {
    return this.#closed;
  }

  read(): Promise<Uint8Array | null> {
    const pending = this.#inFlight;
    this.#inFlight = null;
    return pending ?? this.#readNow();
  }

  /**
   * Starts a read while the connection sits idle in a pool. If the server
   * closes it (or, against the protocol, sends bytes), `onActivity` runs so
   * the pool can drop it; otherwise the next `read()` receives the result.
   *
   * @param onActivity Called when the idle read completes.
   */
  watchIdle(onActivity: () => void): void {
    if (this.#inFlight || this.#closed) return;
    const read = this.#readNow();
    this.#inFlight = read;
    read.then(() => {
      if (this.#inFlight === read) onActivity();
    });
  }

  async #readNow(): Promise<Uint8Array | null> {
    if (this.#closed) return null;
    try {
      const n = await this.#conn.read(this.#buffer);
      if (n === null) {
        this.#closed = true;
        return null;
      }
      return this.#buffer.slice(0, n);
    } catch {
      this.#closed = true;
      return null;
    }
  }

  async write(data: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < data.length) {
      offset += await this.#conn.write(data.subarray(offset));
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

/**
 * Buffers a channel for parsing: reads HTTP heads and bodies, keeping what
 * belongs to the next message (pipelining) for later.
 *
 * @example Usage
 * ```ts ignore
 * const reader = new BufferedReader(channel);
 * const head = await reader.readHead(); // bytes up to and including CRLFCRLF
 * ```
 */
export class BufferedReader {
  readonly channel: ByteChannel;
  #buf: Uint8Array = new Uint8Array(0);

  /** @param channel The source. */
  constructor(channel: ByteChannel) {
    this.channel = channel;
  }

  /** Bytes buffered but not yet consumed. */
  get pending(): Uint8Array {
    return this.#buf;
  }

  /**
   * Reads one message head.
   *
   * @returns The head including its final CRLFCRLF, or null if the stream
   *   ended cleanly before any byte of a new head.
   * @throws {HttpParseError} For bare LF line ends or oversized heads.
   * @throws {Error} If the stream ends in the middle of a head.
   */
  async readHead(): Promise<Uint8Array | null> {
    let scanned = 0;
    while (true) {
      const end = findHeadEnd(this.#buf, Math.max(0, scanned - 3));
      if (end !== -1) {
        const head = this.#buf.subarray(0, end);
        this.#buf = this.#buf.subarray(end);
        return head;
      }
      scanned = this.#buf.length;
      const chunk = await this.channel.read();
      if (chunk === null) {
        if (this.#buf.length === 0) return null;
        throw new Error("connection closed in the middle of a message head");
      }
      this.#buf = this.#buf.length === 0 ? chunk : concat([this.#buf, chunk]);
    }
  }

  /**
   * Next bytes, at most `max`: buffered ones first.
   *
   * @param max Upper bound.
   * @returns Bytes, or null at end of stream.
   */
  async readSome(max = Infinity): Promise<Uint8Array | null> {
    if (this.#buf.length === 0) {
      const chunk = await this.channel.read();
      if (chunk === null) return null;
      this.#buf = chunk;
    }
    const take = Math.min(max, this.#buf.length);
    const out = this.#buf.subarray(0, take);
    this.#buf = this.#buf.subarray(take);
    return out;
  }

  /** Puts bytes back in front of the buffer. */
  unread(bytes: Uint8Array): void {
    if (bytes.length > 0) this.#buf = concat([bytes, this.#buf]);
  }

  /** Takes and clears everything buffered. */
  takePending(): Uint8Array {
    const out = this.#buf;
    this.#buf = new Uint8Array(0);
    return out;
  }
}

/**
 * Concatenates byte arrays.
 *
 * @param parts Arrays.
 * @returns One array (the only part itself when there is one).
 *
 * @example Usage
 * ```ts
 * import { concat } from "./_channel.ts";
 * console.log(concat([new Uint8Array([1]), new Uint8Array([2])]));
 * ```
 */
export function concat<T extends ArrayBufferLike>(
  parts: readonly Uint8Array<T>[],
): Uint8Array<T | ArrayBuffer> {
  const nonEmpty = parts.filter((p) => p.length > 0);
  if (nonEmpty.length === 1) return nonEmpty[0]!;
  const out = new Uint8Array(nonEmpty.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of nonEmpty) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
