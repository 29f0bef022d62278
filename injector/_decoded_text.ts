/**
 * A stretch of text with its escape sequences decoded, and the map back to
 * the raw bytes each decoded byte came from: the echo guard searches the
 * decoded text and cuts the matching raw bytes out.
 *
 * @module
 */

import { type Escapes, findEscapes } from "./_escapes.ts";

/** A decoded stretch of text, and where its bytes came from. */
export interface Decoded {
  /** The decoded text. */
  text: string;
  /** Raw offset of the stretch's first byte. */
  from: number;
  /** Per decoded escape: where its value starts in `text`. */
  at: number[];
  /** Per decoded escape: its value's length. */
  length: number[];
  /** Per decoded escape: its raw start and end. */
  rawStart: number[];
  rawEnd: number[];
  /**
   * Whether a decoded value holds an escape introducer (`%25`, `&amp;`,
   * `\\\\`, `=3D`): the text may be escaped twice, decode it again.
   */
  nested: boolean;
}

/**
 * Decodes `text[from, to)`: the escape sequences of `escapes` that lie
 * inside it (all of them, or all but the quoted-printable ones) become what
 * they denote; everything else is copied.
 *
 * @param text The raw text.
 * @param escapes Its escape sequences ({@linkcode findEscapes}).
 * @param from Raw start.
 * @param to Raw end (exclusive).
 * @param withQp Whether quoted-printable sequences are decoded too.
 * @returns The decoded stretch with its map.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { findEscapes } from "./_escapes.ts";
 * import { decodeRange } from "./_decoded_text.ts";
 * const raw = "k=a%2Bb=3D";
 * assert.equal(decodeRange(raw, findEscapes(raw), 0, raw.length, true).text, "k=a+b=");
 * assert.equal(decodeRange(raw, findEscapes(raw), 0, raw.length, false).text, "k=a+b=3D");
 * ```
 */
export function decodeRange(
  text: string,
  escapes: Escapes,
  from: number,
  to: number,
  withQp: boolean,
): Decoded {
  const out: Decoded = {
    text: "",
    from,
    at: [],
    length: [],
    rawStart: [],
    rawEnd: [],
    nested: false,
  };
  let i = lowerBound(escapes.starts, from);
  let copied = from;
  let decoded = "";
  for (; i < escapes.starts.length && escapes.ends[i]! <= to; i++) {
    if (!withQp && escapes.qp[i]) continue;
    const start = escapes.starts[i]!;
    decoded += text.slice(copied, start);
    out.at.push(decoded.length);
    out.length.push(escapes.values[i]!.length);
    out.rawStart.push(start);
    out.rawEnd.push(escapes.ends[i]!);
    const value = escapes.values[i]!;
    if (escapes.nests[i]) out.nested = true;
    decoded += value;
    copied = escapes.ends[i]!;
  }
  out.text = decoded + text.slice(copied, to);
  return out;
}

/**
 * The raw span `[start, end)` that the decoded span `[from, to)` of `decoded`
 * came from (a decoded char inside an escape's value maps to the whole
 * escape sequence).
 *
 * @param decoded A decoded stretch.
 * @param from Decoded start.
 * @param to Decoded end (exclusive, > from).
 * @returns The raw span.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { findEscapes } from "./_escapes.ts";
 * import { decodeRange, rawSpan } from "./_decoded_text.ts";
 * const raw = "x a%2Bb y";
 * const decoded = decodeRange(raw, findEscapes(raw), 0, raw.length, true);
 * assert.deepEqual(rawSpan(decoded, 2, 5), [2, 7]);
 * ```
 */
export function rawSpan(
  decoded: Decoded,
  from: number,
  to: number,
): [number, number] {
  return [rawOffset(decoded, from, false), rawOffset(decoded, to - 1, true)];
}

function rawOffset(decoded: Decoded, at: number, end: boolean): number {
  // The last escape whose value starts at or before `at`.
  const k = upperBound(decoded.at, at) - 1;
  if (k < 0) return decoded.from + at + (end ? 1 : 0);
  const inside = at < decoded.at[k]! + decoded.length[k]!;
  if (inside) return end ? decoded.rawEnd[k]! : decoded.rawStart[k]!;
  return decoded.rawEnd[k]! + (at - decoded.at[k]! - decoded.length[k]!) +
    (end ? 1 : 0);
}

/**
 * Decodes every escape sequence of a whole text (a secret's own escapes, so
 * the guard also knows what a secret that contains `%2B` looks like after
 * decoding).
 *
 * @param text Latin1 text.
 * @param withQp Whether quoted-printable sequences are decoded too.
 * @returns The decoded text.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeAll } from "./_decoded_text.ts";
 * assert.equal(decodeAll("a&amp;b\\/c", true), "a&b/c");
 * ```
 */
export function decodeAll(text: string, withQp: boolean): string {
  return decodeRange(text, findEscapes(text), 0, text.length, withQp).text;
}

/** First index whose value is >= `value` (sorted ascending). */
export function lowerBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index whose value is > `value` (sorted ascending). */
function upperBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
