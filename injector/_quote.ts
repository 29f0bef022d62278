/**
 * How the injector's guards quote a value in an error message: escaped (no
 * control character reaches a log line or a terminal), bounded, and
 * single-quoted.
 *
 * @module
 */

/**
 * Quotes a value for an error message.
 *
 * @param value Anything (a host, an address, a pattern).
 * @returns Its text JSON-escaped, cut at 80 characters, in single quotes.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { quote } from "./_quote.ts";
 * assert.equal(quote("x.com\r\nHost: evil"), "'x.com\\r\\nHost: evil'");
 * ```
 */
export function quote(value: unknown): string {
  const text = String(value);
  const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text;
  return `'${JSON.stringify(shown).slice(1, -1)}'`;
}
