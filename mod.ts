/**
 * airlock: run LLM-generated Deno code in an ephemeral bubblewrap sandbox,
 * without handing it your secrets.
 *
 * @example Run a program
 * ```ts
 * import { run } from "./mod.ts";
 * const result = await run("console.log('hello from the sandbox')");
 * console.log(result.reason, result.exitCode, result.stdout);
 * ```
 *
 * @module
 */

// The sandbox session and its options.
export { run, Sandbox } from "./harness/sandbox.ts";
export type {
  RunOptions,
  SandboxOptions,
  SandboxProcess,
} from "./harness/options.ts";
export { SandboxFs } from "./harness/sandbox_fs.ts";
export type { SandboxDirEntry, SandboxFileInfo } from "./harness/sandbox_fs.ts";
export type { ProgramSource } from "./harness/bundle/bundle.ts";
export type {
  ScratchFsRequest,
  ScratchQuotaMode,
} from "./runtime/scratch_volume.ts";
export type { ScratchUsage } from "./harness/_run/scratch_quota.ts";

// The policy.
export {
  loadPolicyFile,
  parsePolicy,
  type ParsePolicyOptions,
  policyJsonSchema,
} from "./harness/policy.ts";
export type {
  LimitsInput,
  PlaceholderSecret,
  Policy,
  PolicyInput,
  PolicyInputEntry,
  PolicyInputMount,
  SystemPolicy,
} from "./harness/policy_schema.ts";
export {
  SYSTEM_INFO_KINDS,
  type SystemInfoKind,
} from "./runtime/deno_permissions.ts";
// The network policy's parts (NetworkPolicy refers to each).
export type {
  KeyValueMatch,
  LocalResponse,
  Match,
  NetworkPolicy,
  NetworkPolicyInput,
  PathMatch,
  ResponseRule,
  Rule,
  RuleInput,
  Subnets,
  TransformRule,
  TransformRuleInput,
} from "./injector/network_policy.ts";
export { DEFAULT_LIMITS, type ResourceLimits } from "./runtime/limits.ts";

// What a run reports.
export { runResultToJson } from "./harness/run_result.ts";
export type {
  AuditEvent,
  AuditOverflowEvent,
  EgressEvent,
  ExitReason,
  OtherAuditEvent,
  PermissionEvent,
  PermissionKind,
  RunResult,
  RunStatus,
} from "./harness/run_result.ts";

// The audit report of runs (text and HTML).
export {
  type AuditReport,
  type BoundedOutput,
  buildAuditReport,
  type Callout,
  egressEvents,
  type MirrorInfo,
  type PathMapping,
  permissionEvents,
  type PolicyInForce,
  type RefusedTarget,
  renderAuditHtml,
  renderAuditText,
  type RenderAuditTextOptions,
  REPORT_KINDS,
  type ReportedRun,
  type ReportEntry,
  type ReportKind,
  type ReportOptions,
  type RunOutcome,
  type SnippetRule,
} from "./audit/mod.ts";

// Errors.
export {
  BundleError,
  type BundleProblem,
  HarnessAccessError,
  InputError,
  MissingHostToolError,
  PolicyError,
  type PolicyIssue,
  SandboxFsError,
  SandboxSetupError,
  ScratchQuotaError,
} from "./harness/errors.ts";

// Host resources a harness may share between sandboxes.
export type { HostTools } from "./runtime/host_tools.ts";
export {
  type IdentityPoolOptions,
  type SandboxIdentity,
  SandboxIdentityPool,
} from "./runtime/host_identity.ts";

// The egress injector, and the types its API refers to.
export {
  type ActivePolicy,
  AddressGuard,
  type AddressGuardOptions,
  type AddressVerdict,
  type AuditSink,
  type BindOptions,
  type BlockReason,
  CertificateAuthority,
  type CertificateAuthorityOptions,
  type CompiledNetworkPolicy,
  type CompiledRule,
  type ConnectTo,
  type Decision,
  type DialPolicy,
  type EgressBinding,
  type EgressScope,
  type HostPattern,
  Injector,
  type InjectorOptions,
  LeafCache,
  type LeafCredentials,
  type LeafOptions,
  type Placeholder,
  type Resolver,
} from "./injector/mod.ts";
