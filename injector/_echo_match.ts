/**
 * How the echo guard finds secrets: the forms of each secret, and every
 * occurrence of them in a text, raw or with its escape sequences decoded
 * (see `_escapes.ts`), as raw byte spans. `echo_guard.ts` turns those spans
 * into redactions.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  decodeAll,
  decodeRange,
  lowerBound,
  rawSpan,
} from "./_decoded_text.ts";
import {
  type Escapes,
  type EscapeScanner,
  escapesFor,
  findEscapes,
} from "./_escapes.ts";

/**
 * Variants shorter than this are dropped: redacting a 3-character string
 * would mangle nearly every response (and a secret that short cannot be
 * protected by redaction anyway; refuse such secrets at configuration time).
 */
const MIN_VARIANT = 4;
/**
 * A secret this long has base64 forms of at least 8 chars at every
 * alignment: one that holds it needs no forms of its own.
 */
const MIN_CONTAINED = 8;
/** Base64 fragments shorter than this would match random base64 data too often. */
const MIN_BASE64 = 8;
const utf8 = new TextEncoder();

/** One char per byte (0-255). Deno's Buffer "latin1" is bijective; TextDecoder's "latin1" is windows-1252 and is not. */
export function latin1(bytes: Uint8Array): string {
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
  return [...new Set([...plainForms(secret), ...base64Forms(secret)])];
}

/** The raw, form-encoded and self-decoded forms (see secretVariants). */
function plainForms(secret: string): Set<string> {
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
  return variants;
}

/** The base64 and base64url forms at each alignment (see secretVariants). */
function base64Forms(secret: string): Set<string> {
  const variants = new Set<string>();
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
    for (
      const form of [inner, inner.replaceAll("+", "-").replaceAll("/", "_")]
    ) {
      if (form.length >= MIN_BASE64) variants.add(form);
    }
  }
  return variants;
}

function fromLatin1(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/** A secret list compiled for searching. */
export interface Patterns {
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

/** The patterns of `secrets` (cached by content). */
export function patternsFor(secrets: readonly string[]): Patterns {
  // Keyed by content, not identity: a caller that mutates its array must
  // never get the patterns of an older secret list.
  const key = JSON.stringify(secrets);
  let patterns = cache.get(key);
  if (patterns === undefined) {
    const bytes = new Set<string>();
    const text = new Set<string>();
    const distinct = [...new Set(secrets)];
    for (const secret of distinct) {
      // "Bearer <token>" needs no base64 forms next to "<token>": each of
      // them holds one of the token's (at every alignment), which is found
      // and cut. Its plain forms stay, so a plain echo loses the whole
      // value. A third of the patterns for the usual header.
      const holdsAnother = distinct.some((inner) =>
        inner !== secret && inner.length >= MIN_CONTAINED &&
        secret.includes(inner)
      );
      const forms = holdsAnother
        ? plainForms(secret)
        : [...plainForms(secret), ...base64Forms(secret)];
      for (const variant of forms) {
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
export function tokenStart(escapes: Escapes, at: number): number {
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
export function findAll(
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
