/**
 * The trusted side: policies, sandbox sessions and their results, the
 * permission broker and the bundler. The front doors (`cli/`, `http/`,
 * `deno_sandbox/`) and the root `mod.ts` build on these names; what one run
 * is made of (`_run/`) stays private.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Sandbox } from "./mod.ts";
 * await using sandbox = await Sandbox.create();
 * assert.equal((await sandbox.run({ code: "console.log(42)" })).stdout, "42\n");
 * ```
 *
 * @module
 */

export * from "./bundle/bundle.ts";
export * from "./errors.ts";
export * from "./options.ts";
export * from "./paths.ts";
export * from "./permission_broker.ts";
export * from "./policy.ts";
export * from "./run_result.ts";
export * from "./sandbox.ts";
export * from "./sandbox_fs.ts";
