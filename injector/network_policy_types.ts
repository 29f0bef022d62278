/**
 * The network policy's types, as written (`...Input`) and after defaults:
 * written out rather than inferred from the schema of
 * network_policy_schema.ts, so that reading them needs no zod.
 * network_policy_schema_test.ts checks each one equal to what the schema
 * accepts or gives, so they cannot drift.
 *
 * @example Usage
 * ```ts
 * import type { NetworkPolicyInput } from "./network_policy_types.ts";
 * const policy: NetworkPolicyInput = { allow: ["api.github.com", "*.example.com:8443"] };
 * console.log(policy);
 * ```
 *
 * @module
 */

/**
 * A header (or query parameter) that must be present.
 *
 * @example Usage
 * ```ts
 * import type { KeyValueMatch } from "./network_policy_types.ts";
 *
 * const tenant: KeyValueMatch = { key: "X-Tenant", value: "acme" };
 * const anyDebug: KeyValueMatch = { key: "debug" }; // present, any value
 * console.log(tenant.key, anyDebug.key);
 * ```
 */
export interface KeyValueMatch {
  /** Its name. */
  key: string;
  /** When absent, the key only has to be present. */
  value?: string | undefined;
}

/**
 * How a rule matches the request path (without the query).
 *
 * @example Usage
 * ```ts
 * import type { PathMatch } from "./network_policy_types.ts";
 *
 * const paths: PathMatch[] = [
 *   { exact: "/v1/models" },
 *   { startsWith: "/v1/" },
 *   { regex: "^/v1/chat/[a-z]+$" },
 * ];
 * console.log(paths.length);
 * ```
 */
export type PathMatch =
  | {
    /** The path, exactly. */
    exact: string;
  }
  | {
    /** A prefix of the path. */
    startsWith: string;
  }
  | {
    /** A regular expression the path must match. */
    regex: string;
  };

/**
 * Which requests a rule applies to; every given condition must hold.
 *
 * @example Usage
 * ```ts
 * import type { Match } from "./network_policy_types.ts";
 *
 * const deletes: Match = { methods: ["DELETE"], path: { startsWith: "/repos/" } };
 * console.log(deletes.methods);
 * ```
 */
export interface Match {
  /** The request path (without the query): exactly, by prefix or regex. */
  path?: PathMatch | undefined;
  /** HTTP methods, compared case-insensitively. */
  methods?: string[] | undefined;
  /** Query parameters that must be present. */
  query?: KeyValueMatch[] | undefined;
  /** Request headers that must be present (names case-insensitive). */
  headers?: KeyValueMatch[] | undefined;
}

/**
 * What a `response` rule answers, locally.
 *
 * @example Usage
 * ```ts
 * import type { LocalResponse } from "./network_policy_types.ts";
 *
 * const refusal: LocalResponse = {
 *   statusCode: 403,
 *   contentType: "text/plain",
 *   body: "deletes are not allowed",
 * };
 * console.log(refusal.statusCode);
 * ```
 */
export interface LocalResponse {
  /** Its status, 200 to 599. */
  statusCode: number;
  /** Its headers (framing headers are the injector's own). */
  headers?: Record<string, string> | undefined;
  /** Its body. */
  body?: string | undefined;
  /** Its content type. */
  contentType?: string | undefined;
}

/**
 * A rule that answers locally: the request never leaves the injector.
 *
 * @example Usage
 * ```ts
 * import type { ResponseRule } from "./network_policy_types.ts";
 *
 * const noDeletes: ResponseRule = {
 *   match: { methods: ["DELETE"] },
 *   response: { statusCode: 403, body: "deletes are not allowed" },
 * };
 * console.log(noDeletes.response.statusCode);
 * ```
 */
export interface ResponseRule {
  /** Which requests; default every one. */
  match?: Match | undefined;
  /** The answer. */
  response: LocalResponse;
}

/**
 * A rule that sets headers, as written.
 *
 * @example Usage
 * ```ts
 * import type { TransformRuleInput } from "./network_policy_types.ts";
 *
 * const auth: TransformRuleInput = {
 *   match: { path: { startsWith: "/v1/" } },
 *   transform: [{ headers: { authorization: "Bearer ${env:API_TOKEN}" } }],
 * };
 * console.log(auth.transform.length);
 * ```
 */
export interface TransformRuleInput {
  /** Which requests; default every one. */
  match?: Match | undefined;
  /**
   * Headers to set, replacing any the sandbox sent under the same name (any
   * letter case); values may reference `${env:NAME}` or `${secret:NAME}`.
   */
  transform: {
    /** Header names and values. */
    headers: Record<string, string>;
  }[];
  /** Also inject over plain http:// (clear text); default false. */
  allowInsecure?: boolean | undefined;
}

/**
 * A rule that sets headers, after defaults.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { RuleSchema } from "./network_policy_schema.ts";
 * import type { TransformRule } from "./network_policy_types.ts";
 *
 * const rule = RuleSchema.parse({ transform: [{ headers: { "x-key": "${env:KEY}" } }] });
 * assert.ok("transform" in rule);
 * const transform: TransformRule = rule;
 * assert.equal(transform.allowInsecure, false);
 * ```
 */
export interface TransformRule extends TransformRuleInput {
  /** Whether it also injects over plain http:// (clear text). */
  allowInsecure: boolean;
}

/**
 * A rule as written: set headers (`transform`) or answer locally (`response`).
 *
 * @example Usage
 * ```ts
 * import type { RuleInput } from "./network_policy_types.ts";
 *
 * const rules: RuleInput[] = [
 *   { transform: [{ headers: { authorization: "Bearer ${env:API_TOKEN}" } }] },
 *   { match: { methods: ["DELETE"] }, response: { statusCode: 403 } },
 * ];
 * console.log(rules.length);
 * ```
 */
export type RuleInput = TransformRuleInput | ResponseRule;

/**
 * A rule after defaults.
 *
 * @example Usage
 * ```ts
 * import type { Rule } from "./network_policy_types.ts";
 *
 * const describe = (rule: Rule) =>
 *   "response" in rule ? `answers ${rule.response.statusCode}` : "sets headers";
 * console.log(describe({ response: { statusCode: 403 } })); // "answers 403"
 * ```
 */
export type Rule = TransformRule | ResponseRule;

/**
 * Private ranges the injector may, or may never, dial.
 *
 * @example Usage
 * ```ts
 * import type { Subnets } from "./network_policy_types.ts";
 *
 * const subnets: Subnets = { allow: ["10.1.0.0/16"], deny: ["10.1.2.0/24"] };
 * console.log(subnets.allow);
 * ```
 */
export interface Subnets {
  /** Private ranges it may dial (loopback, link-local and metadata stay blocked). */
  allow?: string[] | undefined;
  /** Ranges never dialled; beats allow. */
  deny?: string[] | undefined;
}

/**
 * A network policy as written: `"deny-all"` (the default), `"allow-all"`,
 * or an allowlist of host patterns, with rules or without.
 *
 * @example Usage
 * ```ts
 * import type { NetworkPolicyInput } from "./network_policy_types.ts";
 *
 * const policy: NetworkPolicyInput = {
 *   allow: {
 *     "api.example.com": [
 *       { transform: [{ headers: { authorization: "Bearer ${env:API_TOKEN}" } }] },
 *     ],
 *   },
 *   subnets: { deny: ["10.0.0.0/8"] },
 * };
 * console.log(typeof policy);
 * ```
 */
export type NetworkPolicyInput = "deny-all" | "allow-all" | {
  /** Allowed host patterns, or host patterns with their rules. */
  allow?: string[] | Record<string, RuleInput[]> | undefined;
  /** Plain TCP destinations (`host:port`, port required): tunnelled, never terminated. */
  tcp?: string[] | undefined;
  /** Accept wildcards over a public suffix (`*.github.io`); default false. */
  allowPublicSuffixWildcards?: boolean | undefined;
  /** Private ranges. */
  subnets?: Subnets | undefined;
};

/**
 * A network policy after defaults.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { NetworkPolicySchema } from "./network_policy_schema.ts";
 * import type { NetworkPolicy } from "./network_policy_types.ts";
 *
 * const policy: NetworkPolicy = NetworkPolicySchema.parse({});
 * assert.deepEqual(policy, { allow: [] }); // defaults filled in
 * ```
 */
export type NetworkPolicy = "deny-all" | "allow-all" | {
  /** Allowed host patterns, or host patterns with their rules. */
  allow: string[] | Record<string, Rule[]>;
  /** Plain TCP destinations (`host:port`, port required): tunnelled, never terminated. */
  tcp?: string[] | undefined;
  /** Whether wildcards over a public suffix are accepted. */
  allowPublicSuffixWildcards?: boolean | undefined;
  /** Private ranges. */
  subnets?: Subnets | undefined;
};
