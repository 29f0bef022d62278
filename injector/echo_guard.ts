/**
 * The echo guard: redacts injected secrets that an upstream sends back.
 *
 * The injector adds credentials (an `Authorization` header, an API key) that
 * the sandbox never sees. An upstream that reflects its request (httpbin's
 * `/headers` or `/anything`, a debug endpoint, an error page quoting the
 * header) would hand the secret straight to the sandbox. Every response
 * header value and body byte passes through here first, and every
 * occurrence of a secret, in the encodings such echoes typically use, is
 * replaced by {@linkcode REDACTION_MARKER}.
 *
 * This is defense in depth, not a proof: it cannot see a secret that the
 * upstream compressed, encrypted, hex-encoded, reversed or split across
 * fragments shorter than 4 characters. The proxy should therefore ask for
 * identity responses (drop `Accept-Encoding`, or decode before the guard),
 * drop `Range` on requests that carry a secret (a range request can cut an
 * echo into fragments too short to recognise), and only inject secrets for
 * hosts the policy trusts.
 *
 * Matching works on bytes: each byte maps to the char with the same code
 * (a bijective "latin1" string), so `String.prototype.indexOf` does the
 * searching and output is sliced from the original bytes, byte-exact.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { EchoRedactor } from "./echo_guard.ts";
 * const redactor = new EchoRedactor(["s3cr3t-token"]);
 * const text = new TextEncoder().encode('{"Authorization": "Bearer s3cr3t-token"}');
 * const out = [redactor.push(text.subarray(0, 30)), redactor.push(text.subarray(30)), redactor.flush()];
 * assert.equal(out.map((b) => new TextDecoder().decode(b)).join(""), '{"Authorization": "Bearer [airlock:redacted]"}');
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { concat } from "./_channel.ts";

/**
 * What replaces a redacted secret.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { REDACTION_MARKER } from "./echo_guard.ts";
 * assert.equal(REDACTION_MARKER, "[airlock:redacted]");
 * ```
 */
export const REDACTION_MARKER = "[airlock:redacted]";

/**
 * Variants shorter than this are dropped: redacting a 3-character string
 * would mangle nearly every response (and a secret that short cannot be
 * protected by redaction anyway; refuse such secrets at configuration time).
 */
const MIN_VARIANT = 4;
/** Base64 fragments shorter than this would match random base64 data too often. */
const MIN_BASE64 = 8;
/** Large pushes are processed in blocks of this size to bound memory. */
const BLOCK = 1 << 20;

const utf8 = new TextEncoder();

/** One char per byte (0-255). Deno's Buffer "latin1" is bijective; TextDecoder's "latin1" is windows-1252 and is not. */
function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(
    "latin1",
  );
}

function hex4(c: string): string {
  return "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0");
}

/**
 * The forms in which an echo may carry `secret`.
 *
 * - the raw value;
 * - JSON string escapes: JavaScript's, Python's `ensure_ascii` (non-ASCII as
 *   `\uXXXX`), PHP's (`\/` and `\uXXXX`) and Go's (`<`, `>`, `&` as `\u003c`...);
 * - percent-encoding: `encodeURIComponent`, with lower-case hex, and form
 *   encoding (`+` for space);
 * - base64 and base64url: the inner part of the encoding at each of the three
 *   byte alignments (the secret's base64 depends on its position in the
 *   encoded data, e.g. `user:secret` in Basic auth; the characters that mix
 *   in neighbouring bytes are cut off both ends), kept when at least 8 chars.
 *
 * Variants shorter than 4 characters are dropped: a 3-byte "secret" would
 * cause redactions everywhere. A secret that short gets no protection.
 *
 * @param secret The secret value.
 * @returns The distinct variants, raw value first.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { secretVariants } from "./echo_guard.ts";
 * const variants = secretVariants("a/b c+d=efgh");
 * assert.ok(variants.includes("a/b c+d=efgh"));
 * assert.ok(variants.includes("a%2Fb%20c%2Bd%3Defgh"));
 * assert.ok(variants.includes("a\\/b c+d=efgh"));
 * assert.deepEqual(secretVariants("abc"), []);
 * ```
 */
export function secretVariants(secret: string): string[] {
  const variants = new Set<string>();
  const add = (value: string, min = MIN_VARIANT) => {
    if (value.length >= min) variants.add(value);
  };
  add(secret);
  const json = JSON.stringify(secret).slice(1, -1);
  const asciiJson = json.replace(/[\u0080-\uffff]/g, hex4);
  add(json);
  add(asciiJson);
  add(asciiJson.replaceAll("/", "\\/"));
  add(json.replace(/[<>&\u2028\u2029]/g, hex4));
  try {
    const percent = encodeURIComponent(secret);
    add(percent);
    add(percent.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()));
    add(new URLSearchParams([["", secret]]).toString().slice(1));
  } catch {
    // A lone surrogate has no percent-encoding; the other forms still apply.
  }
  const bytes = utf8.encode(secret);
  for (let shift = 0; shift < 3; shift++) {
    let binary = "\0".repeat(shift);
    for (const b of bytes) binary += String.fromCharCode(b);
    const encoded = btoa(binary);
    // Char j covers bits [6j, 6j+6); keep those inside the secret's bits.
    const inner = encoded.slice(
      Math.ceil(shift * 8 / 6),
      Math.floor((shift + bytes.length) * 8 / 6),
    );
    add(inner, MIN_BASE64);
    add(inner.replaceAll("+", "-").replaceAll("/", "_"), MIN_BASE64);
  }
  return [...variants];
}

interface Patterns {
  /** Variants as latin1 strings of their UTF-8 bytes, for byte streams. */
  bytes: string[];
  /** The above plus the variants as JS strings, for header values. */
  text: string[];
}

const cache = new Map<string, Patterns>();

function patternsFor(secrets: readonly string[]): Patterns {
  // Keyed by content, not identity: a caller that mutates its array must
  // never get the patterns of an older secret list.
  const key = JSON.stringify(secrets);
  let patterns = cache.get(key);
  if (patterns === undefined) {
    const bytes = new Set<string>();
    const text = new Set<string>();
    for (const secret of secrets) {
      for (const variant of secretVariants(secret)) {
        const encoded = latin1(utf8.encode(variant));
        bytes.add(encoded);
        text.add(encoded).add(variant);
      }
    }
    patterns = { bytes: [...bytes], text: [...text] };
    if (cache.size >= 64) cache.clear();
    cache.set(key, patterns);
  }
  return patterns;
}

/**
 * Occurrences of the patterns in `text` that end after `from`, as flat
 * `[start, end, count]` triples sorted by start. Overlapping or adjacent
 * occurrences of one pattern are joined as they are found, so a stream of
 * "aaaa…" costs one triple, not one per position.
 */
function findMatches(
  text: string,
  patterns: readonly string[],
  from: number,
): number[] | null {
  let found: number[] | null = null;
  let sorted = true;
  for (const pattern of patterns) {
    let at = text.indexOf(pattern, Math.max(0, from - pattern.length + 1));
    if (at === -1) continue;
    if (found !== null) sorted = false;
    found ??= [];
    let start = at;
    let end = at + pattern.length;
    let count = 1;
    // Step by one so overlapping occurrences ("abab" in "ababab") are found.
    while ((at = text.indexOf(pattern, at + 1)) !== -1) {
      if (at <= end) {
        end = at + pattern.length;
        count++;
      } else {
        found.push(start, end, count);
        start = at;
        end = at + pattern.length;
        count = 1;
      }
    }
    found.push(start, end, count);
  }
  if (found !== null && !sorted) {
    const triples: number[][] = [];
    for (let i = 0; i < found.length; i += 3) {
      triples.push(found.slice(i, i + 3));
    }
    triples.sort((a, b) => a[0]! - b[0]!);
    found = triples.flat();
  }
  return found;
}

/**
 * A streaming redactor for a response body. Output is byte-identical to the
 * input except that every occurrence of a secret variant (see
 * {@linkcode secretVariants}) is replaced by the marker; overlapping or
 * adjacent occurrences become one marker. However the stream is split into
 * chunks, the output is the same.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { EchoRedactor } from "./echo_guard.ts";
 * const redactor = new EchoRedactor(["hunter2hunter2"], "***");
 * const bytes = new TextEncoder().encode("pw=hunter2hunter2;");
 * const out = new TextDecoder().decode(new Uint8Array([...redactor.push(bytes), ...redactor.flush()]));
 * assert.equal(out, "pw=***;");
 * assert.equal(redactor.redactions, 1);
 * ```
 */
export class EchoRedactor {
  #patterns: string[];
  #hold: number;
  #marker: Uint8Array<ArrayBuffer>;
  #redactions = 0;
  /** Latin1 text of the bytes from #start: lookbehind, then unsent bytes. */
  #window = "";
  #windowBytes: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  /** Stream offset of the window's first byte. */
  #start = 0;
  /** Stream offset up to which output was produced. */
  #emitted = 0;
  /** Stream offset where the last marker's covered bytes end. */
  #markerEnd = -1;

  /**
   * Creates a redactor (one per response or message stream).
   *
   * @param secrets The secret values to redact (variants shorter than 4
   *   characters are ignored).
   * @param marker What replaces each occurrence.
   */
  constructor(secrets: readonly string[], marker: string = REDACTION_MARKER) {
    this.#patterns = patternsFor(secrets).bytes;
    this.#marker = utf8.encode(marker);
    let longest = 0;
    for (const pattern of this.#patterns) {
      longest = Math.max(longest, pattern.length);
    }
    // A match can start at most longest - 1 bytes before the end of what
    // has arrived; anything earlier is final.
    this.#hold = Math.max(0, longest - 1);
  }

  /** How many occurrences have been replaced so far. */
  get redactions(): number {
    return this.#redactions;
  }

  /**
   * Feeds the next bytes of the stream.
   *
   * @param chunk The bytes, as received.
   * @returns The bytes safe to forward now. Up to (longest variant - 1) bytes
   *   that could begin a secret are held back until the next push or
   *   {@linkcode flush}. The result may share memory with `chunk`: write it
   *   out before reusing `chunk`'s buffer.
   */
  push<T extends ArrayBufferLike>(
    chunk: Uint8Array<T>,
  ): Uint8Array<T | ArrayBuffer> {
    if (this.#patterns.length === 0) return chunk;
    if (chunk.length <= BLOCK) return this.#process(chunk, false);
    const parts: Uint8Array<T | ArrayBuffer>[] = [];
    for (let at = 0; at < chunk.length; at += BLOCK) {
      parts.push(this.#process(chunk.subarray(at, at + BLOCK), false));
    }
    return concat(parts);
  }

  /**
   * Ends the stream: nothing more can complete a secret, so the held-back
   * bytes are decided. Later pushes start a new, independent stream (one
   * redactor can serve consecutive messages); {@linkcode redactions} keeps
   * counting.
   *
   * @returns The held-back bytes, redacted.
   */
  flush(): Uint8Array<ArrayBuffer> {
    if (this.#patterns.length === 0) return new Uint8Array(0);
    const out = this.#process(new Uint8Array(0), true);
    this.#window = "";
    this.#windowBytes = new Uint8Array(0);
    this.#start = this.#emitted = 0;
    this.#markerEnd = -1;
    return out;
  }

  #process<T extends ArrayBufferLike>(
    chunk: Uint8Array<T>,
    final: boolean,
  ): Uint8Array<T | ArrayBuffer> {
    const text = this.#window + latin1(chunk);
    const old = this.#windowBytes;
    const base = this.#start;
    const emittedAtStart = this.#emitted - base;
    // Relative offsets from here on. Bytes before `safe` are final: any
    // secret containing them lies entirely in `text` and has been found.
    const safe = final
      ? text.length
      : Math.max(emittedAtStart, text.length - this.#hold);
    let emitted = emittedAtStart;
    let markerEnd = this.#markerEnd - base;
    const parts: Uint8Array<T | ArrayBuffer>[] = [];
    const raw = (from: number, to: number) => {
      if (from < old.length) {
        parts.push(old.subarray(from, Math.min(to, old.length)));
      }
      if (to > old.length) {
        parts.push(
          chunk.subarray(Math.max(0, from - old.length), to - old.length),
        );
      }
    };
    const matches = findMatches(text, this.#patterns, emitted);
    if (matches !== null) {
      for (let i = 0; i < matches.length; i += 3) {
        const start = matches[i]!;
        const end = matches[i + 1]!;
        if (start < emitted || (start === emitted && start === markerEnd)) {
          // Overlaps (or touches) the marker just written: cover it too, so
          // no fragment of an overlapping occurrence leaks out after it.
          if (end > emitted) emitted = markerEnd = end;
        } else if (start < safe) {
          if (start > emitted) raw(emitted, start);
          parts.push(this.#marker);
          emitted = markerEnd = end;
        } else {
          break; // starts in the held-back tail: decided by a later call
        }
        this.#redactions += matches[i + 2]!;
      }
    }
    if (emitted < safe) {
      raw(emitted, safe);
      emitted = safe;
    }
    // Keep `hold` bytes of lookbehind: a secret overlapping a marker may
    // start up to that far before the first unsent byte.
    const keep = Math.max(0, emitted - this.#hold);
    this.#window = text.slice(keep);
    const windowBytes = new Uint8Array(text.length - keep);
    if (keep < old.length) windowBytes.set(old.subarray(keep));
    windowBytes.set(
      chunk.subarray(Math.max(0, keep - old.length)),
      Math.max(0, old.length - keep),
    );
    this.#windowBytes = windowBytes;
    this.#start = base + keep;
    this.#emitted = base + emitted;
    this.#markerEnd = base + markerEnd;
    return parts.length === 1 ? parts[0]! : concat(parts);
  }
}

/**
 * Redacts secrets in a string, such as a response header value. Accepts both
 * ordinary strings and latin1 byte strings (as produced by `http1.ts`): a
 * non-ASCII secret is looked for in both forms.
 *
 * @param text The text.
 * @param secrets The secret values.
 * @param marker What replaces each occurrence (run of overlapping or
 *   adjacent occurrences).
 * @returns The redacted text and the number of occurrences replaced.
 * @throws {TypeError} If the marker contains CR, LF or NUL (it would inject
 *   header lines).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { redactString } from "./echo_guard.ts";
 * const { text, count } = redactString("Bearer tok-123456, tok-123456", ["tok-123456"]);
 * assert.equal(text, "Bearer [airlock:redacted], [airlock:redacted]");
 * assert.equal(count, 2);
 * ```
 */
export function redactString(
  text: string,
  secrets: readonly string[],
  marker: string = REDACTION_MARKER,
): { text: string; count: number } {
  // The result goes back into header values: a CRLF marker would forge
  // header lines (header injection).
  if (/[\0\r\n]/.test(marker)) {
    throw new TypeError(
      "Cannot redact with a marker that contains NUL, CR or LF",
    );
  }
  const matches = findMatches(text, patternsFor(secrets).text, 0);
  if (matches === null) return { text, count: 0 };
  let out = "";
  let emitted = 0;
  let count = 0;
  for (let i = 0; i < matches.length; i += 3) {
    const start = matches[i]!;
    const end = matches[i + 1]!;
    if (start > emitted || i === 0) {
      out += text.slice(emitted, start) + marker;
    }
    if (end > emitted) emitted = end;
    count += matches[i + 2]!;
  }
  return { text: out + text.slice(emitted), count };
}
