/**
 * `deno task schema`: writes `schema/policy.schema.json` from the zod policy
 * schema and `schema/server.schema.json` from the server config schema, so
 * editors validate policy and config files against exactly what the harness
 * accepts. `--check` fails if a committed file is out of date.
 *
 * @module
 */

import { policyJsonSchema } from "../harness/policy.ts";
import { serverConfigJsonSchema } from "../http/config.ts";

/** Where the generated server config schema lives. */
export const SERVER_SCHEMA_PATH = new URL(
  "../schema/server.schema.json",
  import.meta.url,
);

/**
 * The server config schema file's text.
 *
 * @returns Pretty-printed JSON with a trailing newline.
 *
 * @example Usage
 * ```ts
 * import { serverSchemaText } from "./schema.ts";
 * console.log(serverSchemaText().includes("ceilings"));
 * ```
 */
export function serverSchemaText(): string {
  return JSON.stringify(
    { ...serverConfigJsonSchema(), title: "airlock server config" },
    null,
    2,
  ) + "\n";
}

/** Where the generated schema lives. */
export const SCHEMA_PATH = new URL(
  "../schema/policy.schema.json",
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
  const files: [URL, string][] = [
    [SCHEMA_PATH, schemaText()],
    [SERVER_SCHEMA_PATH, serverSchemaText()],
  ];
  for (const [path, text] of files) {
    const name = `schema/${path.pathname.split("/").at(-1)}`;
    if (Deno.args.includes("--check")) {
      const current = await Deno.readTextFile(path).catch(() => "");
      if (current !== text) {
        console.error(`${name} is out of date: run 'deno task schema'`);
        Deno.exit(1);
      }
    } else {
      await Deno.writeTextFile(path, text);
      console.log(`wrote ${path.pathname}`);
    }
  }
}
