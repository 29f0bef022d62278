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

import { concat } from "./_channel.ts";
import {
  findAll,
  latin1,
  type Patterns,
  patternsFor,
  tokenStart,
} from "./_echo_match.ts";
import { MAX_ESCAPE, MAX_RAW_PER_BYTE } from "./_escapes.ts";

export { secretVariants } from "./_echo_match.ts";

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

/** Large pushes are processed in blocks of this size to bound memory. */
const BLOCK = 1 << 20;

const utf8 = new TextEncoder();

/** `<scheme> <credentials>`: an auth-scheme token (RFC 9110) and one word. */
const SCHEME_AND_CREDENTIALS =
  /^[!#$%&'*+.^_`|~0-9A-Za-z-]+[ \t]+([^ \t]+)[ \t]*$/;
/** `name=value` in a list (cookies, auth-params), the value maybe quoted. */
const PARAMETER =
  /(?:^|[\s;,])[!#$%&'*+.^_`|~0-9A-Za-z-]+=(?:"([^"]*)"|([^\s;,"]*))/g;

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
 *   name too when the password is empty (API keys sent as the user name);
 * - each parameter's value (`session=<v>; csrf=<v>` in a cookie,
 *   `response="<v>"` in Digest): an upstream echoes cookies one by one.
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
  for (const [, quoted, plain] of value.matchAll(PARAMETER)) {
    add(quoted ?? plain ?? "");
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
