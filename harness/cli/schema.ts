/**
 * `deno task schema`: writes `schema/policy.schema.json` from the zod policy
 * schema, so editors validate policy files against exactly what the harness
 * accepts. `--check` fails if the committed file is out of date.
 *
 * @module
 */

import { policyJsonSchema } from "../policy.ts";

/** Where the generated schema lives. */
export const SCHEMA_PATH = new URL(
  "../../schema/policy.schema.json",
  import.meta.url,
);

/**
 * The schema file's text.
 *
 * @returns Pretty-printed JSON with a trailing newline.
 *
 * @example Usage
 * ```ts
 * import { schemaText } from "./schema.ts";
 * console.log(schemaText().length > 0);
 * ```
 */
export function schemaText(): string {
  return JSON.stringify(
    { ...policyJsonSchema(), title: "airlock policy" },
    null,
    2,
  ) + "\n";
}

if (import.meta.main) {
  const text = schemaText();
  if (Deno.args.includes("--check")) {
    const current = await Deno.readTextFile(SCHEMA_PATH).catch(() => "");
    if (current !== text) {
      console.error(
        "schema/policy.schema.json is out of date: run 'deno task schema'",
      );
      Deno.exit(1);
    }
  } else {
    await Deno.writeTextFile(SCHEMA_PATH, text);
    console.log(`wrote ${SCHEMA_PATH.pathname}`);
  }
}
