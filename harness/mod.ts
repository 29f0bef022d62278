/**
 * The trusted side: policies, sandbox sessions and their results.
 *
 * @example Usage
 * ```ts ignore
 * import { Sandbox } from "./mod.ts";
 * await using sandbox = await Sandbox.create();
 * console.log((await sandbox.run({ code: "console.log(42)" })).stdout);
 * ```
 *
 * @module
 */

export * from "./bundle/bundle.ts";
export * from "./policy.ts";
export * from "./run_result.ts";
export * from "./sandbox.ts";
export * from "./sandbox_fs.ts";
export * from "./permission_broker.ts";
export * from "./errors.ts";
