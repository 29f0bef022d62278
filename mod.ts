/**
 * airlock: run LLM-generated Deno code in an ephemeral bubblewrap sandbox,
 * without handing it your secrets.
 *
 * @example Run a program
 * ```ts ignore
 * import { run } from "./mod.ts";
 * const result = await run("console.log('hello from the sandbox')");
 * console.log(result.reason, result.exitCode, result.stdout);
 * ```
 *
 * @module
 */

export {
  BundleError,
  InputError,
  loadPolicyFile,
  parsePolicy,
  PolicyError,
  policyJsonSchema,
  run,
  runResultToJson,
  Sandbox,
  SandboxSetupError,
} from "./harness/mod.ts";
export type {
  AuditEvent,
  ExitReason,
  Policy,
  PolicyInput,
  ProgramSource,
  RunOptions,
  RunResult,
  RunStatus,
  SandboxOptions,
  SandboxProcess,
} from "./harness/mod.ts";
export { MissingHostToolError } from "./runtime/host_tools.ts";
export { DEFAULT_LIMITS, type ResourceLimits } from "./runtime/limits.ts";
