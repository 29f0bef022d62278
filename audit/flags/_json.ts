/**
 * Checks on parsed JSON shared by the flag audit's readers (deno.json,
 * package.json, audit trails).
 *
 * @module
 */

/**
 * Whether a parsed JSON value is an object (not null, not an array).
 *
 * @param value Any parsed JSON.
 * @returns True for a plain object.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isRecord } from "./_json.ts";
 * assert.equal(isRecord({ tasks: {} }), true);
 * assert.equal(isRecord(["deno run x.ts"]), false);
 * ```
 */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
