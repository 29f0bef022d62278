/**
 * Relays an upgraded WebSocket connection between the sandbox and the
 * upstream. Client-to-upstream bytes pass unchanged. Upstream-to-client
 * bytes pass unchanged too, unless a secret was injected into the upgrade
 * request: then server frames are parsed and their payloads go through the
 * echo guard, re-fragmented (a redaction changes lengths; re-framing keeps
 * the stream valid). Compression was refused at the upgrade, so payloads are
 * plain.
 *
 * @module
 */

import type { BufferedReader, ByteChannel } from "./_channel.ts";
import { concat } from "./_channel.ts";
import { type EchoRedactor, redactString } from "./echo_guard.ts";
import type { Upstream } from "./upstream.ts";

/**
 * Pumps both directions until either side closes.
 *
 * @param clientReader The sandbox side (may hold bytes read past the request).
 * @param client The sandbox connection.
 * @param upstream The upstream connection (its reader may hold frames).
 * @param redactor The echo guard, or null when nothing was injected.
 * @returns How many secret occurrences were redacted.
 *
 * @example Usage
 * ```ts ignore
 * const { redactions } = await relayWebSocket(reader, client, upstream, null);
 * ```
 */
export async function relayWebSocket(
  clientReader: BufferedReader,
  client: ByteChannel,
  upstream: Upstream,
  redactor: EchoRedactor | null,
  secrets: readonly string[] = [],
): Promise<{ redactions: number }> {
  let redactions = 0;
  const toUpstream = (async () => {
    while (true) {
      const chunk = await clientReader.readSome();
      if (chunk === null) break;
      await upstream.channel.write(chunk);
    }
  })();
  const toClient = (async () => {
    const frames = redactor ? new FrameRewriter(redactor, secrets) : null;
    while (true) {
      const chunk = await upstream.reader.readSome();
      if (chunk === null) break;
      await client.write(frames ? frames.push(chunk) : chunk);
    }
    if (frames) redactions = frames.redactions;
  })();
  await Promise.race([toUpstream, toClient]).catch(() => {});
  client.close();
  upstream.channel.close();
  await Promise.allSettled([toUpstream, toClient]);
  return { redactions };
}

/** Incremental parser/rewriter of server-to-client frames. */
class FrameRewriter {
  #buf: Uint8Array = new Uint8Array(0);
  #redactor: EchoRedactor;
  #secrets: readonly string[];
  #controlRedactions = 0;
  /** Remaining payload bytes of the data frame being streamed. */
  #left = 0;
  #frameFin = false;
  /** Opcode for the next emitted fragment: the message's first one carries
   * the original opcode, every later one is a continuation (0). */
  #nextOpcode: number | null = null;

  constructor(redactor: EchoRedactor, secrets: readonly string[]) {
    this.#redactor = redactor;
    this.#secrets = secrets;
  }

  get redactions(): number {
    return this.#redactor.redactions + this.#controlRedactions;
  }

  push(chunk: Uint8Array): Uint8Array {
    this.#buf = this.#buf.length ? concat([this.#buf, chunk]) : chunk;
    const out: Uint8Array[] = [];
    while (true) {
      if (this.#left > 0) {
        if (this.#buf.length === 0) break;
        const take = Math.min(this.#left, this.#buf.length);
        const piece = this.#buf.subarray(0, take);
        this.#buf = this.#buf.subarray(take);
        this.#left -= take;
        let payload = this.#redactor.push(piece);
        const last = this.#left === 0 && this.#frameFin;
        if (last) payload = concat([payload, this.#redactor.flush()]);
        out.push(this.#dataFrame(payload, last));
        continue;
      }
      const header = parseHeader(this.#buf);
      if (!header) break;
      const { fin, opcode, length, headerLength, masked } = header;
      if (opcode >= 0x8) {
        // Control frames are small (<= 125) and never fragmented.
        if (this.#buf.length < headerLength + length) break;
        let payload = this.#buf.subarray(headerLength, headerLength + length);
        if (masked) {
          payload = unmask(
            payload,
            this.#buf.subarray(headerLength - 4, headerLength),
          );
        }
        this.#buf = this.#buf.subarray(headerLength + length);
        const text = latin1(payload);
        const { text: safe, count } = redactString(text, this.#secrets);
        this.#controlRedactions += count;
        out.push(frame(true, opcode, fromLatin1(safe).subarray(0, 125)));
        continue;
      }
      this.#buf = this.#buf.subarray(headerLength);
      if (masked) {
        // Servers must not mask; pass such a frame through unmodified.
        out.push(frame(fin, opcode, new Uint8Array(0)));
        continue;
      }
      if (opcode !== 0) this.#nextOpcode = opcode;
      this.#frameFin = fin;
      this.#left = length;
      if (length === 0) {
        let payload = new Uint8Array(0);
        if (fin) payload = this.#redactor.flush();
        out.push(this.#dataFrame(payload, fin));
      }
    }
    return concat(out);
  }

  #dataFrame(payload: Uint8Array, fin: boolean): Uint8Array {
    const opcode = this.#nextOpcode ?? 0;
    this.#nextOpcode = null;
    return frame(fin, opcode, payload);
  }
}

function parseHeader(buf: Uint8Array) {
  if (buf.length < 2) return null;
  const fin = (buf[0]! & 0x80) !== 0;
  const opcode = buf[0]! & 0x0f;
  const masked = (buf[1]! & 0x80) !== 0;
  let length = buf[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buf.length < 4) return null;
    length = (buf[2]! << 8) | buf[3]!;
    offset = 4;
  } else if (length === 127) {
    if (buf.length < 10) return null;
    length = Number(
      new DataView(buf.buffer, buf.byteOffset + 2, 8).getBigUint64(0),
    );
    offset = 10;
  }
  if (masked) offset += 4;
  if (buf.length < offset) return null;
  return { fin, opcode, length, headerLength: offset, masked };
}

function frame(fin: boolean, opcode: number, payload: Uint8Array): Uint8Array {
  const length = payload.length;
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const out = new Uint8Array(headerLength + length);
  out[0] = (fin ? 0x80 : 0) | opcode;
  if (length < 126) {
    out[1] = length;
  } else if (length < 65536) {
    out[1] = 126;
    out[2] = length >> 8;
    out[3] = length & 0xff;
  } else {
    out[1] = 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(length));
  }
  out.set(payload, headerLength);
  return out;
}

function unmask(payload: Uint8Array, key: Uint8Array): Uint8Array {
  const out = new Uint8Array(payload.length);
  for (let i = 0; i < payload.length; i++) out[i] = payload[i]! ^ key[i % 4]!;
  return out;
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

function fromLatin1(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}
