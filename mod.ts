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
  SandboxFs,
  SandboxFsError,
  SandboxSetupError,
  ScratchQuotaError,
} from "./harness/mod.ts";
export { Injector } from "./injector/injector.ts";
export type { InjectorOptions } from "./injector/injector.ts";
export type { Resolver } from "./injector/resolver.ts";
export type {
  AuditEvent,
  AuditOverflowEvent,
  EgressEvent,
  ExitReason,
  PermissionEvent,
  Policy,
  PolicyInput,
  ProgramSource,
  RunOptions,
  RunResult,
  RunStatus,
  SandboxOptions,
  SandboxProcess,
  ScratchFsRequest,
  ScratchQuotaMode,
  ScratchUsage,
} from "./harness/mod.ts";
export {
  HarnessAccessError,
  MissingHostToolError,
} from "./runtime/host_tools.ts";
export { DEFAULT_LIMITS, type ResourceLimits } from "./runtime/limits.ts";
