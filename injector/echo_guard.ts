/**
 * The echo guard: redacts injected secrets that an upstream sends back.
 *
 * The injector adds credentials (an `Authorization` header, an API key) that
 * the sandbox never sees. An upstream that reflects its request (httpbin's
 * `/headers` or `/anything`, a debug endpoint, an error page quoting the
 * header) would hand the secret straight to the sandbox. Every response
 * header name and value and every body byte passes through here first, and
 * every occurrence of a secret is replaced by {@linkcode REDACTION_MARKER}:
 *
 * - as the raw bytes, with `+` for a space (form encoding), and as base64
 *   and base64url at each of the three byte alignments;
 * - after decoding the escape sequences an echo typically carries (see
 *   `_escapes.ts`): JSON, JavaScript and Python backslash escapes (`\u002B`,
 *   `\/`, `\x2b`), percent-encoding of any subset of the characters,
 *   HTML/XML character references (`&#43;`, `&#x2b;`, `&plus;`) and
 *   quoted-printable (`=3D`, soft line breaks), in any mix, also inside a
 *   base64 form. The bytes cut out are the original escape sequences.
 *
 * This is defense in depth, not a proof: it cannot see a secret that the
 * upstream transforms on purpose (hex, reversal, encryption, compression
 * inside the body), spreads over separate responses, or splits into
 * fragments shorter than 4 characters. The proxy therefore asks for
 * identity or decodable responses only, refuses framing it cannot check,
 * drops `Range` on requests that carry a secret (a range request can cut an
 * echo into fragments too short to recognise), and only injects secrets for
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
import {
  decodeAll,
  decodeRange,
  type Escapes,
  type EscapeScanner,
  escapesFor,
  findEscapes,
  lowerBound,
  MAX_ESCAPE,
  MAX_RAW_PER_BYTE,
  rawSpan,
} from "./_escapes.ts";

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

/**
 * The forms of `secret` that are searched for as they are, in the raw bytes
 * and in the decoded view of them (escape sequences decoded, see the module
 * doc): JSON-, percent-, HTML- or quoted-printable-escaped echoes need no
 * form of their own, they decode to one of these.
 *
 * - the raw value, and the value with its own escape sequences decoded (a
 *   secret holding `%2B` whose echo escapes something else);
 * - form encoding's `+` for a space;
 * - base64 and base64url: the inner part of the encoding at each of the three
 *   byte alignments (the secret's base64 depends on its position in the
 *   encoded data, e.g. `user:secret` in Basic auth; the characters that mix
 *   in neighbouring bytes are cut off both ends), kept when at least 8 chars.
 *
 * Forms shorter than 4 characters are dropped: a 3-byte "secret" would
 * cause redactions everywhere. A secret that short gets no protection.
 *
 * @param secret The secret value.
 * @returns The distinct forms, raw value first.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { secretVariants } from "./echo_guard.ts";
 * const variants = secretVariants("a/b c+d=efgh");
 * assert.ok(variants.includes("a/b c+d=efgh"));
 * assert.ok(variants.includes("a/b+c+d=efgh"));
 * assert.ok(variants.includes("YS9iIGMrZD1lZmdo"));
 * assert.deepEqual(secretVariants("abc"), []);
 * ```
 */
export function secretVariants(secret: string): string[] {
  const variants = new Set<string>();
  const add = (value: string, min = MIN_VARIANT) => {
    if (value.length >= min) variants.add(value);
  };
  add(secret);
  add(secret.replaceAll(" ", "+"));
  const bytes = utf8.encode(secret);
  const wire = latin1(bytes);
  for (const withQp of [true, false]) {
    const decoded = decodeAll(wire, withQp);
    if (decoded !== wire) add(new TextDecoder().decode(fromLatin1(decoded)));
  }
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

function fromLatin1(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

interface Patterns {
  /** Variants as latin1 strings of their UTF-8 bytes, for byte streams. */
  bytes: string[];
  /** The above plus the variants as JS strings, for header values. */
  text: string[];
  /** The longest of `bytes`. */
  longest: number;
  /** Flags (1) the byte values that occur in `bytes`. */
  alphabet: Uint8Array;
  /** Finds the escape sequences that can denote those bytes. */
  escapes: EscapeScanner;
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
    let longest = 0;
    const alphabet = new Uint8Array(256);
    for (const pattern of bytes) {
      longest = Math.max(longest, pattern.length);
      for (let i = 0; i < pattern.length; i++) {
        alphabet[pattern.charCodeAt(i)] = 1;
      }
    }
    patterns = {
      bytes: [...bytes],
      text: [...text],
      longest,
      alphabet,
      escapes: escapesFor(alphabet),
    };
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
  for (const pattern of patterns) {
    let at = text.indexOf(pattern, Math.max(0, from - pattern.length + 1));
    if (at === -1) continue;
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
  return found;
}

/**
 * Occurrences of the patterns in the decoded view of `text` that involve at
 * least one escape sequence (the others are the raw matches) and end after
 * `from`, as raw `[start, end, count]` triples appended to `out`.
 *
 * Only stretches near escape sequences are decoded: escapes closer than
 * `longest` bytes form a cluster, and a match involving a cluster's escapes
 * cannot reach more than `longest` plain bytes beyond it (it has at most
 * `longest` decoded chars). Sparse escapes (binary data) cost little.
 */
function findDecoded(
  text: string,
  escapes: Escapes,
  patterns: Patterns,
  from: number,
  withQp: boolean,
  out: number[],
): void {
  const { starts, ends, qp } = escapes;
  const { longest } = patterns;
  const n = starts.length;
  let i = lowerBound(ends, from - longest + 1);
  while (i < n) {
    if (!withQp && qp[i]) {
      i++;
      continue;
    }
    let clusterEnd = ends[i]!;
    let j = i + 1;
    for (; j < n; j++) {
      if (!withQp && qp[j]) continue;
      if (starts[j]! - clusterEnd >= longest) break;
      clusterEnd = ends[j]!;
    }
    // Never cut an escape sequence: its tail read as plain text ("b" of
    // "%2b") could complete a pattern the whole text does not hold.
    const a = tokenStart(escapes, Math.max(0, starts[i]! - longest));
    const b = tokenEnd(escapes, Math.min(text.length, clusterEnd + longest));
    if (!withQp && !hasQp(escapes, a, b)) {
      i = j; // reads the same as with quoted-printable: already searched
      continue;
    }
    const once = decodeRange(text, escapes, a, b, withQp);
    search(once.text, patterns.bytes, from, out, (s, e) => rawSpan(once, s, e));
    if (once.nested) {
      // Escaped twice ("%252B", "&amp;#43;", a JSON string inside a JSON
      // string): decode the decoded text once more.
      const inner = findEscapes(once.text, patterns.escapes);
      if (inner.starts.length > 0) {
        const twice = decodeRange(
          once.text,
          inner,
          0,
          once.text.length,
          withQp,
        );
        search(twice.text, patterns.bytes, from, out, (s, e) => {
          const [onceStart, onceEnd] = rawSpan(twice, s, e);
          // Found without the second decoding: the first search has it.
          if (onceEnd - onceStart === e - s) return null;
          return rawSpan(once, onceStart, onceEnd);
        });
      }
    }
    i = j;
  }
}

/**
 * Appends to `out` the occurrences of `patterns` in `decoded` whose raw span
 * (`toRaw`) involves an escape and ends after `from`, joining overlapping
 * occurrences of one pattern.
 */
function search(
  decoded: string,
  patterns: readonly string[],
  from: number,
  out: number[],
  toRaw: (start: number, end: number) => [number, number] | null,
): void {
  for (const pattern of patterns) {
    let start = -1;
    let end = -1;
    let count = 0;
    for (
      let at = decoded.indexOf(pattern);
      at !== -1;
      at = decoded.indexOf(pattern, at + 1)
    ) {
      const span = toRaw(at, at + pattern.length);
      if (span === null) continue;
      const [rawStart, rawEnd] = span;
      // Every escape is longer than what it denotes: a raw span as long as
      // the pattern is plain text, already found by the raw search.
      if (rawEnd - rawStart === pattern.length || rawEnd <= from) continue;
      if (count > 0 && rawStart <= end) {
        end = Math.max(end, rawEnd);
        count++;
      } else {
        if (count > 0) out.push(start, end, count);
        start = rawStart;
        end = rawEnd;
        count = 1;
      }
    }
    if (count > 0) out.push(start, end, count);
  }
}

/** `at`, or the start of the escape sequence it lies inside. */
function tokenStart(escapes: Escapes, at: number): number {
  const k = lowerBound(escapes.tokenEnds, at + 1);
  return k < escapes.tokenStarts.length && escapes.tokenStarts[k]! < at
    ? escapes.tokenStarts[k]!
    : at;
}

/** `at`, or the end of the escape sequence it lies inside. */
function tokenEnd(escapes: Escapes, at: number): number {
  const k = lowerBound(escapes.tokenEnds, at + 1);
  return k < escapes.tokenStarts.length && escapes.tokenStarts[k]! < at
    ? escapes.tokenEnds[k]!
    : at;
}

/** Whether a quoted-printable escape lies in `[from, to)`. */
function hasQp(escapes: Escapes, from: number, to: number): boolean {
  for (
    let k = lowerBound(escapes.starts, from);
    k < escapes.starts.length && escapes.starts[k]! < to;
    k++
  ) {
    if (escapes.qp[k]) return true;
  }
  return false;
}

/**
 * Every occurrence of the patterns in `text`, raw or after decoding escape
 * sequences, that ends after `from`: flat `[start, end, count]` triples
 * sorted by start, and the escape sequences found (or null if none).
 */
function findAll(
  text: string,
  raw: readonly string[],
  patterns: Patterns,
  from: number,
): { matches: number[] | null; escapes: Escapes | null } {
  let matches = findMatches(text, raw, from);
  let escapes: Escapes | null = findEscapes(text, patterns.escapes);
  if (escapes.tokenStarts.length === 0) {
    escapes = null;
  } else {
    const decoded: number[] = [];
    // (An escape that denotes a byte no pattern holds is not decoded: it
    // cannot be inside a match, and a JSON body's \n and \" stay cheap.)
    // All escapes decoded; and, if both kinds occur, all but
    // quoted-printable ones: "key=AB…" is no QP escape in a JSON or URL
    // echo, and decoding it would hide a secret starting "AB…" that is
    // escaped further on.
    findDecoded(text, escapes, patterns, from, true, decoded);
    if (escapes.anyQp && escapes.anyOther) {
      findDecoded(text, escapes, patterns, from, false, decoded);
    }
    if (decoded.length > 0) {
      // One occurrence found by two readings (raw and decoded, once and
      // twice decoded, with and without quoted-printable) counts once.
      const all = matches ?? [];
      const seen = new Set<number>();
      for (let i = 0; i < all.length; i += 3) {
        seen.add(all[i]! * 0x80000000 + all[i + 1]!);
      }
      for (let i = 0; i < decoded.length; i += 3) {
        const key = decoded[i]! * 0x80000000 + decoded[i + 1]!;
        if (seen.has(key)) continue;
        seen.add(key);
        all.push(decoded[i]!, decoded[i + 1]!, decoded[i + 2]!);
      }
      matches = all;
    }
  }
  if (matches !== null && matches.length > 3) {
    const triples: number[][] = [];
    for (let i = 0; i < matches.length; i += 3) {
      triples.push(matches.slice(i, i + 3));
    }
    triples.sort((x, y) => x[0]! - y[0]!);
    matches = triples.flat();
  }
  return { matches, escapes };
}

/** `<scheme> <credentials>`: an auth-scheme token (RFC 9110) and one word. */
const SCHEME_AND_CREDENTIALS =
  /^[!#$%&'*+.^_`|~0-9A-Za-z-]+[ \t]+([^ \t]+)[ \t]*$/;

/**
 * The values the echo guard looks for once `value` was injected as a header
 * value, whether the policy wrote it literally or through a secret
 * reference: an upstream may echo the whole value or only the credential
 * in it.
 *
 * - the whole value;
 * - the credential after an authentication scheme word (`Bearer <token>`,
 *   `token <token>`, `Basic <base64>`);
 * - for `Basic`, the decoded `user:password` and the password; the user
 *   name too when the password is empty (API keys sent as the user name).
 *
 * Forms shorter than `minLength` are left out: the guard cannot tell them
 * from ordinary text.
 *
 * @param value The header value as sent.
 * @param options `minLength`: shortest form kept (default 8).
 * @returns The distinct forms, the whole value first.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { credentialForms } from "./echo_guard.ts";
 * assert.deepEqual(credentialForms("Bearer ghp_0123456789"), ["Bearer ghp_0123456789", "ghp_0123456789"]);
 * assert.deepEqual(credentialForms("Basic " + btoa("bot:pa55-w0rd-x")), [
 *   "Basic Ym90OnBhNTUtdzByZC14",
 *   "Ym90OnBhNTUtdzByZC14",
 *   "bot:pa55-w0rd-x",
 *   "pa55-w0rd-x",
 * ]);
 * ```
 */
export function credentialForms(
  value: string,
  options: { minLength?: number } = {},
): string[] {
  const min = options.minLength ?? 8;
  const forms = new Set<string>();
  const add = (form: string) => {
    if (form.length >= min) forms.add(form);
  };
  add(value);
  const credentials = SCHEME_AND_CREDENTIALS.exec(value)?.[1];
  if (credentials !== undefined) {
    add(credentials);
    if (/^basic[ \t]/i.test(value)) {
      const decoded = decodeBase64Text(credentials);
      if (decoded !== null) {
        add(decoded);
        const colon = decoded.indexOf(":");
        if (colon !== -1) {
          const password = decoded.slice(colon + 1);
          add(password);
          if (password === "") add(decoded.slice(0, colon));
        }
      }
    }
  }
  return [...forms];
}

/** Base64 (or base64url) of UTF-8 text, decoded; null if it is not. */
function decodeBase64Text(text: string): string | null {
  if (!/^[A-Za-z0-9+/_-]+=*$/.test(text)) return null;
  try {
    const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
    return new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(binary, (c) => c.charCodeAt(0)),
    );
  } catch {
    return null;
  }
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
  #patterns: Patterns;
  /** Bytes that may still start an occurrence (escaped), at most. */
  #hold: number;
  /** The same when no escape sequence is near the end. */
  #plainHold: number;
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
    this.#patterns = patternsFor(secrets);
    this.#marker = utf8.encode(marker);
    const longest = this.#patterns.longest;
    // A match spans at most `longest` decoded bytes, each from at most
    // MAX_RAW_PER_BYTE raw ones, so it starts at most that far before the
    // end of what has arrived; anything earlier is final. MAX_ESCAPE more:
    // an escape sequence at the very end may still grow (`&#43` + `;`).
    this.#hold = longest === 0 ? 0 : longest * MAX_RAW_PER_BYTE + MAX_ESCAPE;
    this.#plainHold = longest === 0 ? 0 : longest - 1 + 2 * MAX_ESCAPE;
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
    if (this.#patterns.bytes.length === 0) return chunk;
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
    if (this.#patterns.bytes.length === 0) return new Uint8Array(0);
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
    const { matches, escapes } = findAll(
      text,
      this.#patterns.bytes,
      this.#patterns,
      emitted,
    );
    // Relative offsets from here on. Bytes before `safe` are final: any
    // secret containing them lies entirely in `text` and has been found.
    // Without a decoded escape near the end, an occurrence still open there
    // is plain bytes (plus an escape just begun): hold back only that much,
    // so a stream of small events (server-sent events, a token stream) is
    // not held back by the whole escaped bound.
    let hold = this.#hold;
    if (
      escapes === null ||
      escapes.ends.length === 0 ||
      escapes.ends[escapes.ends.length - 1]! <= text.length - hold
    ) {
      hold = Math.min(hold, this.#plainHold);
    }
    const safe = final
      ? text.length
      : Math.max(emittedAtStart, text.length - hold);
    if (matches !== null) {
      for (let i = 0; i < matches.length; i += 3) {
        const start = matches[i]!;
        const end = matches[i + 1]!;
        if (start < emitted || (start === emitted && start === markerEnd)) {
          // Overlaps (or touches) the marker just written: cover it too, so
          // no fragment of an overlapping occurrence leaks out after it.
          if (end > emitted) {
            // Not after a marker: an occurrence an earlier window could not
            // see whole (it should not happen); mark where its rest is cut.
            if (emitted !== markerEnd) parts.push(this.#marker);
            emitted = markerEnd = end;
          }
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
    let keep = Math.max(0, emitted - this.#hold);
    if (escapes !== null) {
      // Never start the next window inside an escape sequence: "\\u0041"
      // cut after the first backslash would decode differently.
      keep = tokenStart(escapes, keep);
    }
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
  const patterns = patternsFor(secrets);
  const { matches } = findAll(text, patterns.text, patterns, 0);
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
