/**
 * Parsing of human units on the command line: durations and sizes.
 *
 * @module
 */

/**
 * Parses a duration: `500ms`, `5s`, `2m`, or a bare number of seconds (as
 * `timeout(1)` reads it).
 *
 * @param text The duration.
 * @returns Milliseconds.
 * @throws {SyntaxError} If it is not a positive duration.
 *
 * @example Usage
 * ```ts
 * import { parseDuration } from "./_units.ts";
 * console.log(parseDuration("1.5s")); // 1500
 * ```
 */
export function parseDuration(text: string): number {
  const match = text.trim().match(/^(\d+(?:\.\d+)?)(ms|s|m|h)?$/);
  if (!match) {
    throw new SyntaxError(
      `Cannot parse duration '${text}': use e.g. '500ms', '5s', '2m' or a number of seconds`,
    );
  }
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "s"]!;
  const ms = Math.round(Number(match[1]) * scale);
  if (ms <= 0) {
    throw new SyntaxError(`Cannot use duration '${text}': it must be positive`);
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
