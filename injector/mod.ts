/**
 * The way out: the egress proxy that is a sandbox's only route to the
 * network. It decides every request on the target the program asked for,
 * injects the operator's credentials on the way out, and keeps them from
 * coming back in an upstream's echo. Each run is served on its own unix
 * socket (the socket is the sandbox's identity); each sandbox has its own
 * partition of the connection pool and its own leaf certificates.
 *
 * This module lists what the harness uses: the {@linkcode Injector}, the
 * network policy (schema, types, compilation), the rest of a sandbox's
 * egress policy (placeholder secrets, upstream settings), name resolution
 * and the audit record.
 *
 * @example Serve one run with a policy, then close
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   compileEgressPolicy,
 *   type EgressEvent,
 *   Injector,
 *   NetworkPolicySchema,
 *   systemResolver,
 * } from "./mod.ts";
 *
 * const { active } = await compileEgressPolicy({
 *   network: NetworkPolicySchema.parse({ allow: ["api.example.com"] }),
 *   secrets: {},
 *   upstream: { connectTo: [], caCerts: [] },
 * }, { sources: {}, resolver: systemResolver });
 * assert.equal(active.network.decide("evil.example", 443).allowed, false);
 *
 * const dir = await Deno.makeTempDir();
 * const events: EgressEvent[] = [];
 * await using injector = await Injector.create();
 * const binding = await injector.bind({
 *   socketPath: `${dir}/egress.sock`,
 *   sandboxId: "example",
 *   policy: () => active,
 *   audit: (event) => events.push(event),
 * });
 * assert.match(injector.caCertificatePem, /BEGIN CERTIFICATE/);
 * await binding.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

export {
  type BindOptions,
  type EgressBinding,
  type EgressScope,
  Injector,
  type InjectorOptions,
} from "./injector.ts";
export {
  CertificateAuthority,
  type CertificateAuthorityOptions,
  LeafCache,
  type LeafCredentials,
  type LeafOptions,
} from "./ca.ts";
export type { ActivePolicy, Placeholder } from "./session_context.ts";
export {
  type CompiledNetworkPolicy,
  type CompiledRule,
  compileNetworkPolicy,
  type Decision,
  type KeyValueMatch,
  learnNetworkPolicy,
  type LocalResponse,
  type Match,
  MatchSchema,
  MIN_SECRET_LENGTH,
  type NetworkPolicy,
  NetworkPolicyError,
  type NetworkPolicyInput,
  NetworkPolicyObjectSchema,
  NetworkPolicySchema,
  type PathMatch,
  redactNetworkPolicy,
  type ResponseRule,
  type Rule,
  type RuleInput,
  RuleSchema,
  type Subnets,
  type TransformRule,
  type TransformRuleInput,
} from "./network_policy.ts";
export { selectRules } from "./select_rules.ts";
export {
  type CompileContext,
  compileEgressPolicy,
  type PlaceholderSecrets,
  PlaceholderSecretsSchema,
  UpstreamSchema,
  type UpstreamSettings,
  withNetworkPolicy,
} from "./egress_policy.ts";
export {
  type ConnectTo,
  createSystemResolver,
  findConnectTo,
  parseConnectTo,
  type Resolver,
  systemResolver,
  type SystemResolverOptions,
} from "./resolver.ts";
export {
  AddressGuard,
  type AddressGuardOptions,
  type AddressVerdict,
  type BlockReason,
} from "./address_guard.ts";
export type { DialPolicy } from "./upstream.ts";
export type { HostKind, HostPattern } from "./host_pattern.ts";
export {
  hasSecretRef,
  REDACTED,
  resolveSecretRefs,
  type SecretSources,
} from "./secret_refs.ts";
export { type AuditSink, type EgressEvent, redactQuery } from "./audit.ts";
