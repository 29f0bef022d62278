/**
 * Parsing of human units on the command line: durations and sizes.
 *
 * @module
 */

/**
 * The longest duration the CLI accepts: the policy's own ceiling for
 * `limits.timeoutMs` (24 hours).
 */
export const MAX_DURATION_MS = 86_400_000;

/**
 * Parses a duration: `500ms`, `5s`, `2m`, `1h`. A unit is required: a bare
 * `5000` is refused rather than guessed (as seconds it would be a silent
 * 83-minute limit; policy files say `timeoutMs`, in milliseconds).
 *
 * @param text The duration.
 * @param flag The option it came from, for messages.
 * @returns Milliseconds.
 * @throws {SyntaxError} If it has no unit or is not a positive duration.
 * @throws {RangeError} If it is longer than {@linkcode MAX_DURATION_MS}.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDuration } from "./_units.ts";
 * assert.equal(parseDuration("1.5s"), 1500);
 * assert.throws(() => parseDuration("5000"), /needs a unit/);
 * ```
 */
export function parseDuration(text: string, flag = "--timeout"): number {
  const trimmed = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) {
    throw new SyntaxError(
      `Cannot use ${flag} '${text}' as a duration needs a unit: write '${trimmed}ms' or '${trimmed}s' (units: ms, s, m, h)`,
    );
  }
  const match = trimmed.match(/^(\d+(?:\.\d+)?)(ms|s|m|h)$/);
  if (!match) {
    throw new SyntaxError(
      `Cannot parse ${flag} '${text}': use a number with a unit, e.g. '500ms', '5s', '2m'`,
    );
  }
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2]!]!;
  const ms = Math.round(Number(match[1]) * scale);
  if (ms <= 0) {
    throw new SyntaxError(`Cannot use ${flag} '${text}': it must be positive`);
  }
  if (ms > MAX_DURATION_MS) {
    throw new RangeError(
      `Cannot use ${flag} '${text}': the longest run is 24h`,
    );
  }
  return ms;
}

/**
 * Parses a size: `512M`, `1G`, `64MiB`, or a bare number of MiB.
 *
 * @param text The size.
 * @returns Mebibytes (rounded up).
 * @throws {SyntaxError} If it is not a positive size.
 *
 * @example Usage
 * ```ts
 * import { parseSizeMb } from "./_units.ts";
 * console.log(parseSizeMb("1G")); // 1024
 * ```
 */
export function parseSizeMb(text: string): number {
  const match = text.trim().match(/^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i);
  if (!match) {
    throw new SyntaxError(
      `Cannot parse size '${text}': use e.g. '512M', '1G' or a number of MiB`,
    );
  }
  const unit = (match[2] ?? "").toLowerCase();
  const scale = { "": 1, k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024 }[unit]!;
  const mb = Math.ceil(Number(match[1]) * scale);
  if (mb <= 0) {
    throw new SyntaxError(`Cannot use size '${text}': it must be positive`);
  }
  return mb;
}
