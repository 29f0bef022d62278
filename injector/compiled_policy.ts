/**
 * The network policy compiled: what the injector asks of it for every
 * request (may the sandbox reach this host and port, under which rules?)
 * and what the harness reads from it (subnets for the address guard, the
 * secrets for the echo guard, Deno's `--allow-net` grants). Made by
 * `compileNetworkPolicy` and `learnNetworkPolicy` (network_policy.ts).
 *
 * @module
 */

import type {
  LocalResponse,
  Match,
  NetworkPolicy,
} from "./network_policy_types.ts";

/**
 * A rule ready to evaluate, with secrets resolved.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { compileNetworkPolicy } from "./network_policy.ts";
 *
 * const policy = compileNetworkPolicy({
 *   allow: {
 *     "api.example.com": [{
 *       transform: [{ headers: { authorization: "Bearer ${secret:TOKEN}" } }],
 *       allowInsecure: false,
 *     }],
 *   },
 * }, { secrets: { TOKEN: "sk-example-0123456789" } });
 * const decision = policy.decide("api.example.com", 443);
 * assert.ok(decision.allowed);
 * const [rule] = decision.rules;
 * assert.deepEqual(rule?.headers, [["authorization", "Bearer sk-example-0123456789"]]);
 * assert.ok(rule?.secrets.includes("sk-example-0123456789"));
 * ```
 */
export interface CompiledRule {
  /** `pattern#index`, for audit records. */
  id: string;
  /** Which requests it applies to; undefined: every one. */
  match: Match | undefined;
  /** The compiled `match.path.regex`, if any. */
  pathRegex: RegExp | undefined;
  /** Headers to set (resolved values), for transform rules. */
  headers: [string, string][] | null;
  /** Whether the rule may inject over plain http. */
  allowInsecure: boolean;
  /** Local answer, for response rules. */
  response: LocalResponse | null;
  /** Whether the rule sets any header (credentials, for the cleartext rule). */
  carriesSecret: boolean;
  /**
   * What the echo guard looks for in responses after this rule injected:
   * each referenced secret on its own, and every injected value, literal
   * or not, with the credential in it (see `credentialForms`), when at
   * least `MIN_SECRET_LENGTH` (network_policy.ts) characters long.
   */
  secrets: string[];
}

/**
 * The injector's decision about a destination.
 *
 * @example Usage
 * ```ts
 * import { compileNetworkPolicy, type Decision } from "./network_policy.ts";
 *
 * const policy = compileNetworkPolicy({ allow: ["api.example.com"] }, {});
 * const decision: Decision = policy.decide("evil.example", 443);
 * if (!decision.allowed) console.log(decision.id, decision.reason); // not-in-allowlist
 * ```
 */
export type Decision =
  | { allowed: true; id: string; rules: readonly CompiledRule[] }
  | { allowed: false; id: string; reason: string };

/**
 * A compiled policy: decides destinations and finds rules.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   type CompiledNetworkPolicy,
 *   compileNetworkPolicy,
 * } from "./network_policy.ts";
 *
 * const policy: CompiledNetworkPolicy = compileNetworkPolicy(
 *   { allow: ["*.example.com:8443"], subnets: { allow: ["10.1.0.0/16"] } },
 *   {},
 * );
 * assert.equal(policy.decide("api.example.com", 8443).allowed, true);
 * assert.equal(policy.decide("api.example.com", 443).allowed, false);
 * assert.deepEqual(policy.allowSubnets, ["10.1.0.0/16"]);
 * assert.deepEqual(policy.denoNetGrants, ["*.example.com:8443"]);
 * assert.deepEqual(policy.ports, { http: [443, 80, 8443], tcp: [] });
 * assert.equal(policy.decideTcp("api.example.com", 8443).allowed, false);
 * ```
 */
export interface CompiledNetworkPolicy {
  /** The policy as given, with secret values replaced by `<redacted>`. */
  readonly redacted: NetworkPolicy;
  /** Subnets the address guard opens. */
  readonly allowSubnets: readonly string[];
  /** Subnets the address guard always refuses. */
  readonly denySubnets: readonly string[];
  /** Every resolved secret value (for the echo guard). */
  readonly secretValues: readonly string[];
  /** Host patterns for Deno's `--allow-net`, or null for any host. */
  readonly denoNetGrants: readonly string[] | null;
  /**
   * Decides a destination by the CONNECT or absolute-form target, never by
   * anything the sandbox says later.
   */
  decide(host: string, port: number): Decision;
  /**
   * Decides a plain TCP destination by the policy's `tcp` rules (a tunnel:
   * no TLS termination, no injection). Allowed decisions have no rules.
   */
  decideTcp(host: string, port: number): Decision;
  /**
   * The ports a destination can be allowed on: `http` for HTTP(S) (443,
   * 80 and each pattern's own port), `tcp` for each TCP rule's. Transparent
   * egress listens on both.
   */
  readonly ports: {
    readonly http: readonly number[];
    readonly tcp: readonly number[];
  };
}
