/**
 * A seeded, deterministic fuzzer for `http1.ts`: random bytes, grammar-based
 * mutations of valid requests and responses (the classic request-smuggling
 * shapes), oversized heads, and chunked bodies fed under random splits.
 *
 * Invariants checked on every input:
 * - only {@linkcode HttpParseError} is ever thrown;
 * - no single input takes longer than {@linkcode SLOW_MS} (no hang, no
 *   quadratic blow-up);
 * - an accepted head never has a bare LF, a lone CR, a NUL, an obs-fold line,
 *   two Content-Length fields, Content-Length with Transfer-Encoding, a
 *   Content-Length that is not 1 to 15 digits or a Transfer-Encoding other
 *   than one `chunked`: judged by a separate, naive checker on the raw bytes;
 * - an accepted request head survives serialize + parse unchanged;
 * - {@linkcode ChunkedDecoder} returns exactly the payload (and the pipelined
 *   rest) of a valid encoding however the input is split.
 *
 * @module
 */

import { concat } from "../../injector/_channel.ts";
import {
  ChunkedDecoder,
  encodeChunk,
  findHeadEnd,
  HttpParseError,
  LAST_CHUNK,
  LIMITS,
  parseRequestHead,
  parseResponseHead,
  requestFraming,
  type RequestHead,
  responseFraming,
  serializeRequestHead,
} from "../../injector/http1.ts";

/** An input slower than this (in ms) counts as a hang. */
const SLOW_MS = 250;

/**
 * The mulberry32 PRNG: 32-bit state, uniform floats in [0, 1).
 *
 * @param seed Any 32-bit integer.
 * @returns A function giving the next number.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { mulberry32 } from "./http1_fuzz.ts";
 * assert.equal(mulberry32(7)(), mulberry32(7)());
 * ```
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const METHODS = [
  "GET",
  "POST",
  "PUT",
  "DELETE",
  "HEAD",
  "PATCH",
  "OPTIONS",
  "CONNECT",
];
const TARGETS = [
  "/",
  "/a/b?c=d",
  "http://a.example/x",
  "a.example:443",
  "*",
  "/%20x",
];
const PLAIN_HEADERS: [string, string][] = [
  ["Host", "a.example"],
  ["User-Agent", "Deno/2.9.6"],
  ["Accept", "*/*"],
  ["Accept-Encoding", "gzip, br"],
  ["Authorization", "Bearer abc.def"],
  ["X-Empty", ""],
  ["Cookie", "a=b; c=d"],
  ["X-Obs-Text", "caf\xe9"],
];
const CL_VALUES = [
  "5",
  "0",
  "+5",
  "-1",
  "5 5",
  "5,5",
  "5, 5",
  "0x5",
  "",
  "5\t",
  " 5",
  "05",
  "999999999999999",
  "1000000000000000",
  "5.0",
  "\uff15",
];
const TE_VALUES = [
  "chunked",
  "Chunked",
  "CHUNKED",
  " chunked",
  "chunked ",
  "chunked, identity",
  "identity, chunked",
  "gzip, chunked",
  "chunked;q=1",
  "xchunked",
  "chunked\x00",
  "identity",
  "",
  "\tchunked",
  "chunk",
];
const NAME_TWISTS = [
  (n: string) => n,
  (n: string) => n.toLowerCase(),
  (n: string) => n.toUpperCase(),
  (n: string) => n + " ",
  (n: string) => n + "\t",
  (n: string) => " " + n,
  (n: string) => n.replace("-", "_"),
  (n: string) => n + "\x00",
];

interface Message {
  startLine: string;
  headers: string[];
}

function toBytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0xff;
  return bytes;
}

function show(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < Math.min(bytes.length, 240); i++) {
    text += String.fromCharCode(bytes[i]!);
  }
  return JSON.stringify(text) +
    (bytes.length > 240 ? `... (${bytes.length} bytes)` : "");
}

function validRequest(rng: Rng): Message {
  const headers: string[] = [];
  const count = rng.int(6);
  for (let i = 0; i < count; i++) {
    const [name, value] = rng.pick(PLAIN_HEADERS);
    if (name !== "Host") headers.push(`${name}: ${value}`);
  }
  headers.unshift("Host: a.example");
  const body = rng.int(3);
  if (body === 1) headers.push(`Content-Length: ${rng.int(100)}`);
  if (body === 2) headers.push("Transfer-Encoding: chunked");
  return {
    startLine: `${rng.pick(METHODS)} ${rng.pick(TARGETS)} ${
      rng.chance(0.9) ? "HTTP/1.1" : "HTTP/1.0"
    }`,
    headers,
  };
}

function validResponse(rng: Rng): Message {
  const headers: string[] = [];
  for (let i = rng.int(5); i > 0; i--) {
    headers.push(rng.pick(PLAIN_HEADERS).join(": "));
  }
  const body = rng.int(3);
  if (body === 1) headers.push(`Content-Length: ${rng.int(100)}`);
  if (body === 2) headers.push("Transfer-Encoding: chunked");
  const status = rng.pick([100, 101, 200, 204, 206, 301, 304, 404, 500, 999]);
  return {
    startLine: `HTTP/1.1 ${status} ${rng.pick(["OK", "", "Not Found"])}`,
    headers,
  };
}

/** Structural mutations; each returns the text of the whole head. */
function mutate(rng: Rng, message: Message): string {
  const headers = [...message.headers];
  let startLine = message.startLine;
  const insert = (line: string) =>
    headers.splice(rng.int(headers.length + 1), 0, line);
  for (let round = 1 + rng.int(3); round > 0; round--) {
    switch (rng.int(14)) {
      case 0:
        insert(
          `${rng.pick(NAME_TWISTS)("Content-Length")}: ${rng.pick(CL_VALUES)}`,
        );
        break;
      case 1:
        insert(
          `${rng.pick(NAME_TWISTS)("Transfer-Encoding")}: ${
            rng.pick(TE_VALUES)
          }`,
        );
        break;
      case 2: // CL.TE
        insert(`Content-Length: ${rng.int(50)}`);
        insert(`Transfer-Encoding: ${rng.pick(TE_VALUES)}`);
        break;
      case 3: // obs-fold
        headers.splice(
          rng.int(headers.length + 1),
          0,
          rng.pick([" folded", "\tfolded", " ", "\t: x"]),
        );
        break;
      case 4: // duplicate, equal
        insert("Content-Length: 5");
        insert("content-length: 5");
        break;
      case 5:
        startLine = rng.pick([
          "PRI * HTTP/2.0",
          "GET / HTTP/2.0",
          "GET / HTTP/1.2",
          "GET / http/1.1",
          "GET  / HTTP/1.1",
          "GET / HTTP/1.1 ",
          "GET /a b HTTP/1.1",
          " GET / HTTP/1.1",
          "GET\t/ HTTP/1.1",
          "G@T / HTTP/1.1",
          "GET /\x7f HTTP/1.1",
          "GET /\xff HTTP/1.1",
          "GET",
          "",
          "HTTP/1.1 200 OK",
          "HTTP/1.1 2000 OK",
          "HTTP/1.1 20 OK",
          "HTTP/1.0 200",
          "HTTP/1.1 099 X",
        ]);
        break;
      case 6:
        insert(
          `X-Evil: a${
            rng.pick(["\r", "\n", "\x00", "\r\n", "\x0b", "\x7f", "\r\r\n"])
          }b`,
        );
        break;
      case 7:
        insert(
          rng.pick([
            "NoColon",
            ": empty-name",
            "Bad Name: x",
            "X:\x00",
            "X-A:b:c",
            "X-Tab:\tv\t",
          ]),
        );
        break;
      case 8: // many headers
        for (let i = LIMITS.headerCount - 5 + rng.int(10); i > 0; i--) {
          headers.push(`X-H${i}: v`);
        }
        break;
      case 9:
        insert(`Host: ${rng.pick(["b.example", "a.example"])}`);
        break;
      case 10:
        insert(`Transfer-Encoding: ${rng.pick(TE_VALUES)}`);
        insert(`Transfer-Encoding: ${rng.pick(TE_VALUES)}`);
        break;
      default:
        break;
    }
  }
  let text = startLine + "\r\n" + headers.map((h) => h + "\r\n").join("") +
    "\r\n";
  // Byte-level damage to the line structure.
  if (rng.chance(0.25)) {
    const at = rng.int(text.length + 1);
    const op = rng.int(5);
    const junk = rng.pick(["\n", "\r", "\x00", " ", "\t", "\r\n", ":", "\xff"]);
    if (op === 0) text = text.slice(0, at) + junk + text.slice(at);
    else if (op === 1) text = text.slice(0, at) + text.slice(at + 1);
    else if (op === 2) text = text.replace("\r\n", "\n");
    else if (op === 3) text = text.replace(/\r\n(?=.)/, "\r");
    else {text = text.slice(0, at) + String.fromCharCode(rng.int(256)) +
        text.slice(at + 1);}
  }
  return text;
}

function randomBytes(rng: Rng): Uint8Array {
  const alphabet =
    "GET /HTTP1.0:\r\n\t Content-Length:Transfer-Encoding:chunked\x00";
  const bytes = new Uint8Array(rng.int(300));
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = rng.chance(0.7)
      ? alphabet.charCodeAt(rng.int(alphabet.length))
      : rng.int(256);
  }
  return bytes;
}

/** The naive checker: what an accepted head must never contain. */
function rawViolation(head: Uint8Array): string | null {
  for (let i = 0; i < head.length; i++) {
    const b = head[i]!;
    if (b === 0) return "NUL accepted";
    if (b === 0x0a && (i === 0 || head[i - 1] !== 0x0d)) {
      return "bare LF accepted";
    }
    if (b === 0x0d && head[i + 1] !== 0x0a) return "lone CR accepted";
  }
  let text = "";
  for (let i = 0; i < head.length; i++) text += String.fromCharCode(head[i]!);
  const lines = text.split("\r\n");
  let lengths = 0;
  let codings = 0;
  for (const line of lines.slice(1)) {
    if (line.startsWith(" ") || line.startsWith("\t")) {
      return "obs-fold accepted";
    }
    const colon = line.indexOf(":");
    if (colon === -1) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (name === "content-length") {
      lengths++;
      if (!/^[0-9]{1,15}$/.test(value)) {
        return `Content-Length '${value}' accepted`;
      }
    }
    if (name === "transfer-encoding") {
      codings++;
      if (value.toLowerCase() !== "chunked") {
        return `Transfer-Encoding '${value}' accepted`;
      }
    }
  }
  if (lengths > 1) return "duplicate Content-Length accepted";
  if (lengths > 0 && codings > 0) {
    return "Content-Length with Transfer-Encoding accepted";
  }
  if (codings > 1) return "duplicate Transfer-Encoding accepted";
  return null;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A valid chunked encoding of a random payload, with pipelined bytes after. */
function chunkedCase(
  rng: Rng,
): { wire: Uint8Array; payload: Uint8Array; rest: Uint8Array } {
  const payload = new Uint8Array(rng.int(2000));
  for (let i = 0; i < payload.length; i++) payload[i] = rng.int(256);
  const parts: Uint8Array[] = [];
  for (let at = 0; at < payload.length;) {
    const size = Math.min(
      payload.length - at,
      1 + rng.int(rng.chance(0.5) ? 8 : 700),
    );
    const data = payload.subarray(at, at + size);
    at += size;
    if (rng.chance(0.6)) {
      parts.push(encodeChunk(data));
      continue;
    }
    // Hand-made size line: leading zeros, upper case hex, extensions.
    let hex = size.toString(16);
    if (rng.chance(0.5)) hex = hex.toUpperCase();
    if (rng.chance(0.3)) {
      hex = "0".repeat(
        rng.chance(0.5) ? 16 - hex.length : rng.int(17 - hex.length),
      ) + hex;
    }
    const ext = rng.pick(["", ";a", ";a=b", ';name="q v"', ";x=1;y", ";\tz"]);
    parts.push(toBytes(`${hex}${ext}\r\n`), data, toBytes("\r\n"));
  }
  if (rng.chance(0.7)) {
    parts.push(LAST_CHUNK);
  } else {
    const trailers = ["X-Sum: 1", "Expires: never", "X-E:", "X-T: a\tb"];
    parts.push(
      toBytes(
        `0${rng.pick(["", ";e"])}\r\n` +
          trailers.slice(0, 1 + rng.int(3)).join("\r\n") + "\r\n\r\n",
      ),
    );
  }
  const rest = rng.chance(0.5)
    ? toBytes("GET / HTTP/1.1\r\n\r\n")
    : new Uint8Array(0);
  parts.push(rest);
  return { wire: concat(parts), payload, rest };
}

const TCHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_CHARS = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * A deliberately naive whole-buffer chunked decoder with the same rules, for
 * differential testing: "incomplete" when more bytes could still make it
 * valid.
 */
function referenceChunked(
  wire: Uint8Array,
): { ok: true; payload: Uint8Array; rest: Uint8Array } | {
  ok: false;
  incomplete: boolean;
} {
  let text = "";
  for (let i = 0; i < wire.length; i++) text += String.fromCharCode(wire[i]!);
  const parts: Uint8Array[] = [];
  let pos = 0;
  const line = (): string | null => {
    const end = text.indexOf("\r\n", pos);
    if (end === -1) return null;
    const value = text.slice(pos, end);
    pos = end + 2;
    return value;
  };
  for (;;) {
    const sizeLine = line();
    if (sizeLine === null) {
      const partial = text.slice(pos);
      const plausible =
        /^[0-9a-fA-F]{0,16}(;[\t\x20-\x7e\x80-\xff]*)?\r?$/.test(partial) &&
        !/^;/.test(partial) && !/^\r/.test(partial);
      return { ok: false, incomplete: plausible };
    }
    const match = /^([0-9a-fA-F]{1,16})(;[\t\x20-\x7e\x80-\xff]*)?$/.exec(
      sizeLine,
    );
    if (!match) return { ok: false, incomplete: false };
    const size = parseInt(match[1]!, 16);
    if (size > Number.MAX_SAFE_INTEGER) return { ok: false, incomplete: false };
    if (size === 0) break;
    if (pos + size + 2 > text.length) {
      const tail = text.slice(pos + size);
      return { ok: false, incomplete: "\r\n".startsWith(tail) };
    }
    if (text.slice(pos + size, pos + size + 2) !== "\r\n") {
      return { ok: false, incomplete: false };
    }
    parts.push(wire.subarray(pos, pos + size));
    pos += size + 2;
  }
  for (;;) {
    const trailer = line();
    if (trailer === null) {
      const partial = text.slice(pos);
      const colon = partial.indexOf(":");
      const plausible = partial === "\r" ||
        (colon === -1
          ? /^[!#$%&'*+\-.^_`|~0-9A-Za-z]*$/.test(partial)
          : TCHAR.test(partial.slice(0, colon)) &&
            FIELD_CHARS.test(partial.slice(colon + 1).replace(/\r$/, "")));
      return { ok: false, incomplete: plausible };
    }
    if (trailer === "") break;
    const colon = trailer.indexOf(":");
    if (
      colon < 1 || !TCHAR.test(trailer.slice(0, colon)) ||
      !FIELD_CHARS.test(trailer.slice(colon + 1))
    ) {
      return { ok: false, incomplete: false };
    }
  }
  return { ok: true, payload: concat(parts), rest: wire.slice(pos) };
}

/** Cut points: random, every byte, or none. */
function splits(rng: Rng, length: number): number[] {
  const mode = rng.int(4);
  if (mode === 0) return Array.from({ length }, (_, i) => i + 1);
  if (mode === 1) return [length];
  const cuts = new Set<number>([length]);
  for (let i = rng.int(12); i > 0; i--) cuts.add(rng.int(length + 1));
  return [...cuts].sort((a, b) => a - b);
}

function decodeSplit(
  wire: Uint8Array,
  cuts: readonly number[],
): { out: Uint8Array; decoder: ChunkedDecoder } {
  const decoder = new ChunkedDecoder();
  const parts: Uint8Array[] = [];
  let from = 0;
  for (const cut of cuts) {
    // wire is never reused, so the views need no copy.
    parts.push(...decoder.push(wire.subarray(from, cut)));
    from = cut;
  }
  return { out: concat(parts), decoder };
}

/** What findHeadEnd says about `bytes`: an end, -1, or a refusal status. */
function scanOutcome(scan: () => number): string {
  try {
    return String(scan());
  } catch (error) {
    if (error instanceof HttpParseError) return `refused ${error.status}`;
    throw error;
  }
}

/**
 * Scanning as a connection reader does (resuming at the previous length
 * minus 3 after each read) must end exactly like one full scan.
 */
function resumedScanAgrees(
  bytes: Uint8Array,
  cuts: readonly number[],
): string | null {
  const full = scanOutcome(() => findHeadEnd(bytes));
  const resumed = scanOutcome(() => {
    let scanned = 0;
    for (const cut of cuts) {
      const end = findHeadEnd(bytes.subarray(0, cut), Math.max(0, scanned - 3));
      if (end !== -1) return end;
      scanned = cut;
    }
    return -1;
  });
  return full === resumed
    ? null
    : `full scan gives ${full}, resumed scan ${resumed}`;
}

/**
 * Runs the fuzzer.
 *
 * @param seed PRNG seed; the same seed always tests the same inputs.
 * @param iterations How many generated cases (each may feed several inputs).
 * @returns How many inputs were tried and a description of each failure.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { runHttp1Fuzz } from "./http1_fuzz.ts";
 * assert.deepEqual(runHttp1Fuzz(1, 200).failures, []);
 * ```
 */
export function runHttp1Fuzz(
  seed: number,
  iterations: number,
): { inputs: number; failures: string[] } {
  const rng = new Rng(seed);
  const failures: string[] = [];
  let inputs = 0;
  const attempt = (
    label: string,
    input: Uint8Array,
    run: () => string | null,
  ) => {
    inputs++;
    const started = performance.now();
    try {
      const problem = run();
      if (problem !== null) {
        failures.push(`${label}: ${problem}: ${show(input)}`);
      }
    } catch (error) {
      if (!(error instanceof HttpParseError)) {
        failures.push(`${label}: threw ${String(error)}: ${show(input)}`);
      } else if (!error.message.startsWith("Refusing ")) {
        failures.push(
          `${label}: message '${error.message}' does not say what was refused`,
        );
      }
    }
    const took = performance.now() - started;
    if (took > SLOW_MS) {
      failures.push(`${label}: took ${took.toFixed(0)} ms: ${show(input)}`);
    }
  };
  const acceptRequest = (bytes: Uint8Array): string | null => {
    const end = findHeadEnd(bytes);
    if (end === -1) return null;
    const head = bytes.subarray(0, end);
    const parsed = parseRequestHead(head);
    const problem = rawViolation(head);
    if (problem !== null) return problem;
    requestFraming(parsed);
    const again: RequestHead = parseRequestHead(serializeRequestHead(parsed));
    if (JSON.stringify(again) !== JSON.stringify(parsed)) {
      return "serialize + parse changed the head";
    }
    return null;
  };
  const acceptResponse = (bytes: Uint8Array, method: string): string | null => {
    const end = findHeadEnd(bytes);
    if (end === -1) return null;
    const head = bytes.subarray(0, end);
    const parsed = parseResponseHead(head);
    responseFraming(parsed, method);
    return rawViolation(head);
  };

  for (let iteration = 0; iteration < iterations; iteration++) {
    const label = `seed ${seed} iteration ${iteration}`;
    const kind = rng.int(100);
    if (kind < 10) {
      const bytes = randomBytes(rng);
      attempt(`${label} random request`, bytes, () => acceptRequest(bytes));
      attempt(
        `${label} random response`,
        bytes,
        () => acceptResponse(bytes, "GET"),
      );
      attempt(`${label} random chunked`, bytes, () => {
        new ChunkedDecoder().push(bytes);
        return null;
      });
    } else if (kind < 55) {
      const bytes = toBytes(mutate(rng, validRequest(rng)));
      attempt(`${label} request`, bytes, () => acceptRequest(bytes));
      const cuts = splits(rng, bytes.length);
      attempt(
        `${label} resumed head scan`,
        bytes,
        () => resumedScanAgrees(bytes, cuts),
      );
    } else if (kind < 70) {
      const bytes = toBytes(mutate(rng, validResponse(rng)));
      const method = rng.pick(METHODS);
      attempt(
        `${label} response to ${method}`,
        bytes,
        () => acceptResponse(bytes, method),
      );
    } else if (kind < 71) {
      // Oversized heads: no end within the limit, or one line too long.
      const size = LIMITS.headBytes - 20 + rng.int(60);
      const text = "GET / HTTP/1.1\r\nX: " + "a".repeat(size) +
        (rng.chance(0.5) ? "\r\n\r\n" : "");
      const bytes = toBytes(text);
      attempt(`${label} huge head`, bytes, () => {
        const end = findHeadEnd(bytes);
        if (end === -1) {
          return bytes.length >= LIMITS.headBytes
            ? "no 431 for an oversized head"
            : null;
        }
        if (end > LIMITS.headBytes) return `head of ${end} bytes accepted`;
        parseRequestHead(bytes.subarray(0, end));
        return null;
      });
    } else {
      const { wire, payload, rest } = chunkedCase(rng);
      const cuts = splits(rng, wire.length);
      attempt(`${label} chunked (${cuts.length} pieces)`, wire, () => {
        const { out, decoder } = decodeSplit(wire, cuts);
        if (!decoder.done) return "valid encoding not done";
        if (!equalBytes(out, payload)) return "payload differs";
        if (!equalBytes(decoder.rest, rest)) return "rest differs";
        return null;
      });
      // One damaged byte, one extra leading zero (a 17th size digit), or a
      // size near 2^53 (where float arithmetic stops being exact). The
      // decoder must agree with the naive reference decoder.
      const damaged = rng.chance(0.1)
        ? concat([toBytes("0"), wire])
        : rng.chance(0.05)
        ? toBytes(
          rng.pick([
            "1fffffffffffff",
            "20000000000000",
            "1FFFFFFFFFFFFF",
            "fffffffffffff",
          ]) + "\r\nab",
        )
        : wire.slice();
      if (damaged.length > 0 && rng.chance(0.9)) {
        damaged[rng.int(damaged.length)] = rng.pick([
          0x0a,
          0x0d,
          0x00,
          0x20,
          0x3b,
          0x2b,
          rng.int(256),
        ]);
      }
      const damagedCuts = splits(rng, damaged.length);
      attempt(`${label} damaged chunked`, damaged, () => {
        const expected = referenceChunked(damaged);
        let got: { out: Uint8Array; decoder: ChunkedDecoder };
        try {
          got = decodeSplit(damaged, damagedCuts);
        } catch (error) {
          if (expected.ok || expected.incomplete) {
            return `refused (${String(error)}) but the reference accepts`;
          }
          return null;
        }
        if (!expected.ok) {
          return expected.incomplete
            ? (got.decoder.done
              ? "done but the reference wants more bytes"
              : null)
            : "accepted but the reference refuses";
        }
        if (!got.decoder.done) return "not done but the reference accepts";
        if (!equalBytes(got.out, expected.payload)) {
          return "payload differs from the reference";
        }
        if (!equalBytes(got.decoder.rest, expected.rest)) {
          return "rest differs from the reference";
        }
        return null;
      });
    }
  }
  return { inputs, failures };
}
