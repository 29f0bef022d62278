/**
 * Permission sets (`-P`, `--permission-set`): reads a deno.json's
 * `permissions` (and the `test`, `bench`, `compile` sections' own) and
 * expands a command's `-P` into the grants and denies it stands for, so a
 * set is rated like the same flags written out.
 *
 * @module
 */

import { parseJsonc } from "../../harness/_jsonc.ts";
import { isRecord } from "./_json.ts";
import { type Deny, type Grant, LIST_KINDS } from "./model.ts";
import type { ParsedDenoCommand } from "./parse.ts";

/** The `permissions` of a deno.json, and `test`/`bench`/`compile` ones. */
export interface PermissionSets {
  /** Named sets (`-P=name`; bare `-P` is "default"). */
  sets: Record<string, unknown>;
  /** `test.permissions` etc., used by a bare `-P` of that subcommand. */
  bySubcommand: Record<string, unknown>;
}

/**
 * Reads the permission sets of a deno.json/deno.jsonc text.
 *
 * @param text The config text (JSONC).
 * @returns The sets, or null when it has none or does not parse.
 *
 * @example Usage
 * ```ts
 * import { permissionSetsOf } from "./mod.ts";
 * console.log(permissionSetsOf('{ "permissions": { "default": { "net": true } } }')?.sets);
 * // { default: { net: true } }
 * ```
 */
export function permissionSetsOf(text: string): PermissionSets | null {
  let json: unknown;
  try {
    json = parseJsonc(text);
  } catch {
    return null;
  }
  if (!isRecord(json)) return null;
  const sets = isRecord(json.permissions) ? json.permissions : {};
  const bySubcommand: Record<string, unknown> = {};
  for (const sub of ["test", "bench", "compile"]) {
    const section = json[sub];
    if (isRecord(section) && section.permissions !== undefined) {
      bySubcommand[sub] = section.permissions;
    }
  }
  return Object.keys(sets).length + Object.keys(bySubcommand).length > 0
    ? { sets, bySubcommand }
    : null;
}

/**
 * The grants and denies a command's `-P` set stands for: a bare `-P` of
 * `deno test`, `bench` or `compile` takes that subcommand's own set when
 * the config has one, else the set named "default".
 *
 * @param parsed The parsed command; its `permissionSet` must be set.
 * @param sets The config's permission sets, or null when none was found.
 * @returns The set's grants and denies (flags named after the set), or
 * null when the set is not found.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDenoCommand } from "./parse.ts";
 * import { expandSet, permissionSetsOf } from "./permission_sets.ts";
 * const sets = permissionSetsOf('{ "permissions": { "ci": { "read": ["./src"] } } }');
 * const expanded = expandSet(parseDenoCommand(["run", "-P=ci", "x.ts"])!, sets);
 * assert.deepEqual(expanded?.grants.map((g) => g.flag), [
 *   "--allow-read=./src (from -P=ci)",
 * ]);
 * ```
 */
export function expandSet(
  parsed: ParsedDenoCommand,
  sets: PermissionSets | null,
): { grants: Grant[]; denies: Deny[] } | null {
  const set = parsed.permissionSet!;
  const value = set.name === "default" &&
      sets?.bySubcommand[parsed.subcommand] !== undefined
    ? sets.bySubcommand[parsed.subcommand]
    : sets?.sets[set.name];
  if (!isRecord(value)) return null;
  const from = ` (from ${set.flag})`;
  const grants: Grant[] = [];
  const denies: Deny[] = [];
  if (value.all === true) {
    grants.push({ kind: "all", values: null, flag: `--allow-all${from}` });
  }
  const list = (v: unknown) =>
    Array.isArray(v) ? v.filter((s) => typeof s === "string") : null;
  for (const kind of LIST_KINDS) {
    const entry = value[kind];
    const allow = isRecord(entry) ? entry.allow : entry;
    const deny = isRecord(entry) ? entry.deny : undefined;
    if (allow === true || (Array.isArray(allow) && allow.length > 0)) {
      const values = list(allow);
      grants.push({
        kind,
        values,
        flag: `--allow-${kind}${values ? `=${values}` : ""}${from}`,
      });
    }
    if (deny === true || (Array.isArray(deny) && deny.length > 0)) {
      const values = list(deny);
      denies.push({
        kind,
        values,
        flag: `--deny-${kind}${values ? `=${values}` : ""}${from}`,
      });
    }
  }
  return { grants, denies };
}
