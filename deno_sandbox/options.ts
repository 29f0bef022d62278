/**
 * The options of the `@deno/sandbox`-compatible API, in the SDK's formats:
 * `timeout` (`"session"`, `"30s"`, `"5m"`) and `memory` (bytes, `"1GiB"`,
 * `"1280MiB"`...), parsed with the SDK's checks and errors.
 *
 * @module
 */

import { InvalidMemoryError, InvalidTimeoutError } from "./errors.ts";

/** The SDK's `timeout` option. */
export type SandboxTimeout = "session" | `${number}s` | `${number}m`;

const TIMEOUT_HELP = 'Examples of valid timeout: "session", "600s", "15m"';

/**
 * Parses the SDK's duration (`"30s"`, `"5m"`), or `"session"` / undefined
 * (no lifetime limit: null).
 *
 * @param timeout The option.
 * @returns Milliseconds, or null for "session".
 * @throws {InvalidTimeoutError} For anything else, or a duration of zero.
 */
export function parseTimeout(timeout: string | undefined): number | null {
  if (timeout === undefined || timeout === "session") return null;
  const match = typeof timeout === "string"
    ? /^(\d+)([sm])$/.exec(timeout)
    : null;
  if (!match) {
    throw new InvalidTimeoutError(
      `Invalid timeout: ${String(timeout)}. ${TIMEOUT_HELP}`,
    );
  }
  const amount = Number(match[1]);
  if (amount <= 0) {
    throw new InvalidTimeoutError("Timeout duration must be positive");
  }
  return amount * (match[2] === "m" ? 60_000 : 1_000);
}

/** The SDK's `memory` option: bytes, or a number with a unit. */
export type Memory =
  | number
  | `${number}GB`
  | `${number}MB`
  | `${number}kB`
  | `${number}GiB`
  | `${number}MiB`
  | `${number}KiB`;

const UNIT_BYTES: Record<string, number> = {
  GiB: 1024 ** 3,
  MiB: 1024 ** 2,
  KiB: 1024,
  GB: 1e9,
  MB: 1e6,
  kB: 1e3,
};
/** The SDK's accepted range (MiB). */
const MEMORY_RANGE = { min: 768, max: 4096 };

/**
 * Parses the SDK's `memory` option to whole MiB, with the SDK's range check.
 *
 * @param value Bytes, or `"1GiB"`, `"1280MiB"`, `"2GB"`...
 * @returns MiB.
 * @throws {InvalidMemoryError} For a bad format or a value outside 768..4096 MiB.
 */
export function parseMemory(value: Memory): number {
  let bytes: number;
  if (typeof value === "number") {
    bytes = value;
  } else {
    const match = typeof value === "string"
      ? /^(\d+(?:\.\d+)?)([A-Za-z]+)$/.exec(value)
      : null;
    const unit = match ? UNIT_BYTES[match[2]!] : undefined;
    if (!match || unit === undefined) {
      throw new InvalidMemoryError(
        match
          ? `Unknown memory unit "${match[2]}". Supported units: ${
            Object.keys(UNIT_BYTES).join(", ")
          }`
          : `Invalid memory format: "${
            String(value)
          }". Expected a number or a string like "1GiB", "1280MiB", "1GB", etc.`,
      );
    }
    bytes = Number(match[1]) * unit;
  }
  const mib = Math.floor(bytes / 1024 ** 2);
  if (!(mib >= MEMORY_RANGE.min && mib <= MEMORY_RANGE.max)) {
    throw new InvalidMemoryError(
      `Memory value ${mib} MiB is out of range. It must be between ${MEMORY_RANGE.min} MiB and ${MEMORY_RANGE.max} MiB.`,
    );
  }
  return mib;
}
