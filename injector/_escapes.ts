/**
 * The escape sequences the echo guard decodes before it looks for a secret.
 *
 * An upstream that echoes a credential rarely sends it byte for byte: a JSON
 * encoder writes `+` as `\u002B` (.NET) or `/` as `\/` (PHP), an HTML or XML
 * encoder writes `&#43;`, `&#x2b;` or `&plus;`, a URL encoder writes `%2B` for
 * any subset of the characters (Python's `quote()` keeps `/`), a mail API
 * writes quoted-printable (`=3D`, and a soft line break `=\r\n` anywhere).
 * Listing every combination of these per secret cannot end; decoding them
 * can. This module finds every escape sequence of those families in a latin1
 * text (one char per byte) in one regular-expression pass, and decodes a
 * stretch of text into what it denotes, with a map back to the raw bytes so
 * the guard can cut the original escape sequences out.
 *
 * A decoded code point is written as its UTF-8 bytes (one char per byte),
 * the same form in which the guard holds its secrets.
 *
 * @module
 */

/** The longest escape sequence decoded, in bytes (`&#x0010FFFF;`). */
export const MAX_ESCAPE = 12;

/**
 * The most raw bytes one decoded byte of a secret can come from: one escape
 * sequence plus one quoted-printable soft line break (`=\r\n`) next to it.
 */
export const MAX_RAW_PER_BYTE = MAX_ESCAPE + 3;

/**
 * One pass finds every escape sequence; at each position the alternatives
 * are tried in order, so `\\u0041` is an escaped backslash followed by
 * `u0041`, as a JSON parser reads it. With an alphabet, the one-letter,
 * percent, quoted-printable and named escapes of bytes outside it are left
 * out of the expression (none of them holds an introducer char, so the
 * rest still pairs up the same), which keeps the pass inside the regular
 * expression engine on JSON bodies full of `\n` and `\"`.
 */
function escapeExpression(alphabet?: Uint8Array): RegExp {
  const ok = (byte: number) => alphabet === undefined || alphabet[byte] === 1;
  const simple = Object.entries(SIMPLE).filter(([c, v]) =>
    c === "\\" || ok(v.charCodeAt(0))
  ).map(([c]) => c === "\\" ? "\\\\" : c === "/" ? "\\/" : c).join("");
  const percent = hexBytes(ok, true);
  const qp = hexBytes(ok, false);
  const names = Object.entries(NAMED).filter(([, v]) =>
    [...v].every((c) => ok(c.charCodeAt(0)))
  ).map(([name]) => name);
  return new RegExp(
    [
      // JSON, JavaScript, Python, C: a UTF-16 surrogate pair, \UXXXXXXXX,
      // \u{X..}, \uXXXX, \xXX and the one-letter escapes (hex in any case).
      String
        .raw`\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|U[0-9a-fA-F]{8}|u\{[0-9a-fA-F]{1,6}\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[${simple}])`,
      // Percent-encoding (RFC 3986) and JavaScript's escape() (%uXXXX).
      String.raw`%(?:u[0-9a-fA-F]{4}` + (percent ? `|${percent})` : ")"),
      // HTML and XML character references: hex, decimal (the ';' is
      // optional to an HTML parser) and named ones.
      String.raw`&#(?:[xX][0-9a-fA-F]{1,8}|[0-9]{1,8});?`,
      ...(names.length > 0 ? [`&(?:${names.join("|")});`] : []),
      // Quoted-printable (RFC 2045: upper-case hex) and its soft line break.
      String.raw`=(?:\r?\n` + (qp ? `|${qp})` : ")"),
      // (Line breaks inside base64 are found apart, see lineBreaks(): as an
      // alternative here, with a lookbehind, they halve the scan's speed.)
    ].join("|"),
    "g",
  );
}

/** An expression for two hex digits denoting a byte `ok` accepts. */
function hexBytes(ok: (byte: number) => boolean, lower: boolean): string {
  const digit = (n: number) => {
    const upper = n.toString(16).toUpperCase();
    return lower && n > 9 ? upper + upper.toLowerCase() : upper;
  };
  const parts: string[] = [];
  for (let high = 0; high < 16; high++) {
    let lows = "";
    for (let low = 0; low < 16; low++) {
      if (ok(high * 16 + low)) lows += digit(low);
    }
    if (lows !== "") parts.push(`[${digit(high)}][${lows}]`);
  }
  return parts.join("|");
}

/** Named character references for the characters a credential may hold. */
const NAMED: Record<string, string> = {
  amp: "&",
  AMP: "&",
  lt: "<",
  LT: "<",
  gt: ">",
  GT: ">",
  quot: '"',
  QUOT: '"',
  apos: "'",
  excl: "!",
  num: "#",
  dollar: "$",
  percnt: "%",
  lpar: "(",
  rpar: ")",
  ast: "*",
  midast: "*",
  plus: "+",
  comma: ",",
  period: ".",
  sol: "/",
  colon: ":",
  semi: ";",
  equals: "=",
  quest: "?",
  commat: "@",
  lsqb: "[",
  lbrack: "[",
  bsol: "\\",
  rsqb: "]",
  rbrack: "]",
  Hat: "^",
  lowbar: "_",
  UnderBar: "_",
  grave: "`",
  lcub: "{",
  lbrace: "{",
  verbar: "|",
  vert: "|",
  rcub: "}",
  rbrace: "}",
  Tab: "\t",
  NewLine: "\n",
  nbsp: "\xc2\xa0",
};

const SIMPLE: Record<string, string> = {
  "\\": "\\",
  "/": "/",
  '"': '"',
  "'": "'",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};

/** Every escape sequence of the families above. */
const ALL_ESCAPES = escapeExpression();
const DEFAULT_SCANNER = {
  expression: ALL_ESCAPES,
  anchored: new RegExp(ALL_ESCAPES.source, "y"),
  alphabet: new Uint8Array(256).fill(1),
};

/** What {@linkcode findEscapes} looks for, made by {@linkcode escapesFor}. */
export interface EscapeScanner {
  /** Finds the sequences (global). */
  expression: RegExp;
  /** The same, anchored (sticky): does an escape start here? */
  anchored: RegExp;
  /** The bytes the searched patterns hold. */
  alphabet: Uint8Array;
}

/**
 * A scanner for patterns made of the bytes flagged in `alphabet`: it
 * decodes the escape sequences that denote those bytes, and escaped
 * introducers (`%25`, `&amp;`, `\\\\`, `=3D`) where they open another
 * escape (`%252B`), so text escaped twice can be decoded twice.
 *
 * @param alphabet Flags (1) the byte values the patterns hold.
 * @returns The scanner.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapesFor, findEscapes } from "./_escapes.ts";
 * const alphabet = new Uint8Array(256);
 * for (const c of "ab+") alphabet[c.charCodeAt(0)] = 1;
 * const found = findEscapes("a%2Bb\\n%20%252B%25x", escapesFor(alphabet));
 * assert.deepEqual(found.values, ["+", "%"]);
 * ```
 */
export function escapesFor(alphabet: Uint8Array): EscapeScanner {
  const wide = alphabet.slice();
  for (const c of INTRODUCERS) wide[c.charCodeAt(0)] = 1;
  const expression = escapeExpression(wide);
  return {
    expression,
    anchored: new RegExp(expression.source, "y"),
    alphabet,
  };
}

/** A code point as its UTF-8 bytes, one char per byte; null if out of range. */
function utf8Of(cp: number): string | null {
  if (!(cp >= 0 && cp <= 0x10ffff)) return null;
  if (cp < 0x80) return String.fromCharCode(cp);
  if (cp < 0x800) {
    return String.fromCharCode(0xc0 | (cp >> 6), 0x80 | (cp & 63));
  }
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd; // a lone surrogate
  if (cp < 0x10000) {
    return String.fromCharCode(
      0xe0 | (cp >> 12),
      0x80 | ((cp >> 6) & 63),
      0x80 | (cp & 63),
    );
  }
  return String.fromCharCode(
    0xf0 | (cp >> 18),
    0x80 | ((cp >> 12) & 63),
    0x80 | ((cp >> 6) & 63),
    0x80 | (cp & 63),
  );
}

/** What one escape sequence denotes, or null if it denotes nothing valid. */
function decodeEscape(text: string): string | null {
  const next = text[1]!;
  switch (text[0]) {
    case "\\":
      if (next === "u") {
        if (text[2] === "{") return utf8Of(parseInt(text.slice(3, -1), 16));
        if (text.length === 12) {
          const high = parseInt(text.slice(2, 6), 16);
          const low = parseInt(text.slice(8), 16);
          return utf8Of(0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00));
        }
        return utf8Of(parseInt(text.slice(2), 16));
      }
      if (next === "U" || next === "x") {
        return utf8Of(parseInt(text.slice(2), 16));
      }
      return SIMPLE[next] ?? null;
    case "%":
      return next === "u"
        ? utf8Of(parseInt(text.slice(2), 16))
        : String.fromCharCode(parseInt(text.slice(1), 16));
    case "&": {
      if (next === "#") {
        const digits = text.slice(2).replace(";", "");
        return digits[0] === "x" || digits[0] === "X"
          ? utf8Of(parseInt(digits.slice(1), 16))
          : utf8Of(parseInt(digits, 10));
      }
      const name = text.slice(1, -1);
      return Object.hasOwn(NAMED, name) ? NAMED[name]! : null;
    }
    default: // "=": quoted-printable
      return next === "\r" || next === "\n"
        ? "" // a soft line break
        : String.fromCharCode(parseInt(text.slice(1), 16));
  }
}

/** Escape sequences found in a text, in order, as parallel arrays. */
export interface Escapes {
  /**
   * Where every escape sequence the scan went over starts and ends, decoded
   * or not: the places a streaming caller may not cut at.
   */
  tokenStarts: number[];
  tokenEnds: number[];
  /** Where each decoded sequence starts. */
  starts: number[];
  /** Where each decoded sequence ends (exclusive). */
  ends: number[];
  /** What each denotes (UTF-8 bytes, one char per byte; "" for a soft line break). */
  values: string[];
  /** Whether each is quoted-printable (`=XX`, `=\r\n`). */
  qp: boolean[];
  /** Whether each denotes an introducer that opens another escape. */
  nests: boolean[];
  /** Whether any decoded one is quoted-printable. */
  anyQp: boolean;
  /** Whether any decoded one is not. */
  anyOther: boolean;
}

const BACKSLASH = 92;
/** The chars that start an escape sequence. */
export const INTRODUCERS = "\\%&=";
const EQUALS = 61;

/**
 * Finds every escape sequence in `text`, scanning from its start (a caller
 * that streams must start each text at a sequence boundary of the previous
 * scan, or `\\` runs would pair differently).
 *
 * @param text Latin1 text (one char per byte).
 * @param scanner From {@linkcode escapesFor}: only sequences that can
 *   denote bytes of the searched patterns are decoded (an escaped quote or
 *   newline in a JSON body cannot be part of a token-shaped secret, and
 *   skipping them keeps such bodies cheap); default every sequence.
 * @returns The sequences found (those denoting a code point beyond
 *   U+10FFFF or an unknown name are plain text).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { findEscapes } from "./_escapes.ts";
 * const found = findEscapes("a\\u002Bb&#x2f;c%3d");
 * assert.deepEqual(found.values, ["+", "/", "="]);
 * assert.deepEqual(found.starts, [1, 8, 15]);
 * ```
 */
export function findEscapes(
  text: string,
  scanner: EscapeScanner = DEFAULT_SCANNER,
): Escapes {
  const { expression, anchored, alphabet } = scanner;
  const found: Escapes = {
    tokenStarts: [],
    tokenEnds: [],
    starts: [],
    ends: [],
    values: [],
    qp: [],
    nests: [],
    anyQp: false,
    anyOther: false,
  };
  const add = (start: number, end: number, value: string, nests: boolean) => {
    const qp = text.charCodeAt(start) === EQUALS;
    found.starts.push(start);
    found.ends.push(end);
    found.values.push(value);
    found.qp.push(qp);
    found.nests.push(nests);
    if (qp) found.anyQp = true;
    else found.anyOther = true;
  };
  const breaks = lineBreaks(text);
  let nextBreak = 0;
  let lastEnd = 0;
  // Line breaks before `limit` that overlap no escape sequence, in order.
  const addBreaks = (limit: number) => {
    for (
      ;
      nextBreak < breaks.length && breaks[nextBreak]! < limit;
      nextBreak += 2
    ) {
      const start = breaks[nextBreak]!;
      const end = breaks[nextBreak + 1]!;
      if (start < lastEnd || end > limit) continue; // inside "=\r\n", "\\\\n"
      found.tokenStarts.push(start);
      found.tokenEnds.push(end);
      add(start, end, "", false);
    }
  };
  expression.lastIndex = 0;
  for (let match; (match = expression.exec(text)) !== null;) {
    const start = match.index;
    const end = expression.lastIndex;
    if (breaks.length > 0) addBreaks(start);
    lastEnd = end;
    found.tokenStarts.push(start);
    found.tokenEnds.push(end);
    const value = text.charCodeAt(start) === BACKSLASH && end - start === 2
      // The common case in JSON bodies: \n, \", \\, \/ ...
      ? SIMPLE[text[start + 1]!] ?? null
      : decodeEscape(match[0]);
    if (value === null) continue; // not valid after all: plain text
    let nests = false;
    if (value.length === 1 && INTRODUCERS.includes(value)) {
      anchored.lastIndex = 0;
      nests = anchored.test(value + text.slice(end, end + MAX_ESCAPE));
    }
    if (!nests && !within(value, alphabet)) continue;
    add(start, end, value, nests);
  }
  if (breaks.length > 0) addBreaks(Infinity);
  return found;
}

/** Base64 chars (and padding), flagged. */
const BASE64 = new Uint8Array(256);
for (
  const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
) BASE64[c.charCodeAt(0)] = 1;

/**
 * Line breaks inside a long base64 run, as flat `[start, end]` pairs in
 * order: MIME wraps base64 at 76 chars and PEM at 64; the break denotes
 * nothing. At least 16 base64 chars before it and one after it, so breaks in
 * ordinary text are left alone. (Breaks escaped in a JSON string, `\\n`,
 * are not: JSON bodies are full of them and checking each one halved the
 * guard's speed on them, for a form no encoder produces on its own.)
 */
function lineBreaks(text: string): number[] {
  const found: number[] = [];
  for (
    let at = text.indexOf("\n");
    at !== -1;
    at = text.indexOf("\n", at + 1)
  ) {
    const start = at > 0 && text.charCodeAt(at - 1) === 13 ? at - 1 : at;
    if (insideBase64(text, start, at + 1)) found.push(start, at + 1);
  }
  return found;
}

function insideBase64(text: string, start: number, end: number): boolean {
  if (start < 16 || end >= text.length) return false;
  const next = text.charCodeAt(end);
  if (BASE64[next] !== 1 || next === EQUALS) return false;
  for (let i = start - 1; i >= start - 16; i--) {
    if (BASE64[text.charCodeAt(i)] !== 1) return false;
  }
  return true;
}

function within(value: string, alphabet: Uint8Array): boolean {
  for (let i = 0; i < value.length; i++) {
    if (alphabet[value.charCodeAt(i)] !== 1) return false;
  }
  return true;
}
