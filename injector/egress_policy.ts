/**
 * Everything about egress a sandbox policy can say, besides `network`:
 * placeholder secrets (Deno Sandbox's model) and how upstreams are reached
 * (`upstream.connectTo`, `upstream.caCerts`). Compiles them, with the
 * network policy, into the {@linkcode ActivePolicy} a binding reads at every
 * request.
 *
 * @module
 */

import { z } from "zod";
import { AddressGuard } from "./address_guard.ts";
import { HostError, parseHostPattern } from "./host_pattern.ts";
import {
  type CompiledNetworkPolicy,
  compileNetworkPolicy,
  MIN_SECRET_LENGTH,
  type NetworkPolicy,
  NetworkPolicyError,
} from "./network_policy.ts";
import type { ActivePolicy, Placeholder } from "./proxy_session.ts";
import { type ConnectTo, parseConnectTo, type Resolver } from "./resolver.ts";
import { resolveSecretRefs, type SecretSources } from "./secret_refs.ts";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const HostPatternString = z.string().superRefine((text, ctx) => {
  try {
    parseHostPattern(text);
  } catch (error) {
    ctx.addIssue({
      code: "custom",
      message: error instanceof HostError ? error.message : String(error),
    });
  }
});

/**
 * Placeholder secrets: the program sees an opaque stand-in in the named
 * environment variable; the injector swaps it for the real value in request
 * headers, only over TLS, only toward `hosts`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { PlaceholderSecretsSchema } from "./egress_policy.ts";
 *
 * assert.ok(PlaceholderSecretsSchema.safeParse({
 *   API_KEY: { hosts: ["api.example.com"], value: "${env:API_KEY}" },
 * }).success);
 * // A secret without hosts would go anywhere.
 * assert.ok(!PlaceholderSecretsSchema.safeParse({
 *   API_KEY: { hosts: [], value: "${env:API_KEY}" },
 * }).success);
 * ```
 */
export const PlaceholderSecretsSchema = z.record(
  z.string().regex(ENV_NAME, "must be an environment variable name"),
  z.strictObject({
    hosts: z.array(HostPatternString).min(1).describe(
      "Hosts the real value may be sent to (required: a secret without hosts would go anywhere)",
    ),
    value: z.string().min(1).describe(
      "The value, usually a reference: ${env:NAME} or ${secret:NAME}",
    ),
  }),
).describe("Placeholder secrets by environment variable name");

/**
 * How upstreams are reached.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { UpstreamSchema } from "./egress_policy.ts";
 *
 * assert.deepEqual(UpstreamSchema.parse({}), { connectTo: [], caCerts: [] });
 * assert.ok(!UpstreamSchema.safeParse({ connectTo: ["api.example.com"] }).success);
 * ```
 */
export const UpstreamSchema = z.strictObject({
  connectTo: z.array(
    z.string().superRefine((text, ctx) => {
      try {
        parseConnectTo(text);
      } catch (error) {
        ctx.addIssue({ code: "custom", message: (error as Error).message });
      }
    }),
  ).default([]).describe(
    "HOST1:PORT1:HOST2:PORT2 mappings, as curl --connect-to",
  ),
  caCerts: z.array(z.string().min(1)).default([]).describe(
    "PEM files of extra CAs trusted for upstream TLS (the system roots are always trusted)",
  ),
}).describe("How the injector reaches upstreams");

/**
 * Placeholder secrets after validation, by environment variable name
 * (written out rather than inferred from the schema so their docs need no
 * zod; egress_policy_test.ts checks them equal).
 *
 * @example Usage
 * ```ts
 * import type { PlaceholderSecrets } from "./egress_policy.ts";
 *
 * const secrets: PlaceholderSecrets = {
 *   OPENAI_API_KEY: { hosts: ["api.openai.com"], value: "${env:OPENAI_API_KEY}" },
 * };
 * console.log(Object.keys(secrets)); // the sandbox sees a stand-in in each
 * ```
 */
export type PlaceholderSecrets = Record<string, {
  /** Hosts the real value may be sent to. */
  hosts: string[];
  /** The value, usually a reference: `${env:NAME}` or `${secret:NAME}`. */
  value: string;
}>;

/**
 * How upstreams are reached, after defaults.
 *
 * @example Usage
 * ```ts
 * import type { UpstreamSettings } from "./egress_policy.ts";
 *
 * const upstream: UpstreamSettings = {
 *   connectTo: ["api.example.test:443:127.0.0.1:8443"],
 *   caCerts: ["./test-ca.pem"],
 * };
 * console.log(upstream.connectTo);
 * ```
 */
export interface UpstreamSettings {
  /** `HOST1:PORT1:HOST2:PORT2` mappings, as curl's `--connect-to`. */
  connectTo: string[];
  /** PEM files of extra CAs trusted for upstream TLS. */
  caCerts: string[];
}

/**
 * Harness-level inputs to compilation.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { type CompileContext, compileEgressPolicy } from "./egress_policy.ts";
 * import { systemResolver } from "./resolver.ts";
 *
 * const context: CompileContext = {
 *   sources: { secrets: { TOKEN: "sk-example-0123456789" } },
 *   resolver: systemResolver,
 * };
 * const { active, placeholderEnv } = await compileEgressPolicy({
 *   network: { allow: ["api.example.com"] },
 *   secrets: { TOKEN: { hosts: ["api.example.com"], value: "${secret:TOKEN}" } },
 *   upstream: { connectTo: [], caCerts: [] },
 * }, context);
 * assert.match(placeholderEnv.TOKEN ?? "", /^airlock-placeholder-TOKEN-/);
 * assert.equal(active.placeholders[0]?.value, "sk-example-0123456789");
 * ```
 */
export interface CompileContext {
  /** Where secret references resolve. */
  sources: SecretSources;
  /** Name resolution (the harness's resolver hook). */
  resolver: Resolver;
  /** Mappings that apply to every sandbox (before the policy's own). */
  connectTo?: readonly ConnectTo[];
  /** CA certificates (PEM) trusted for every sandbox. */
  caCerts?: readonly string[];
  /** Directory relative CA file paths resolve against. */
  baseDir?: string;
}

/**
 * Compiles the egress parts of a policy. Reads CA files: an unreadable one is
 * an error, never "no extra CA" (fail closed).
 *
 * @param parts The policy's `network`, `secrets` and `upstream`.
 * @param context Harness-level settings.
 * @returns The policy a binding reads, and the placeholder environment.
 * @throws {NetworkPolicyError} With every problem listed by path.
 *
 * @example Usage
 * ```ts ignore
 * const { active, placeholderEnv } = await compileEgressPolicy(
 *   { network: { allow: ["api.example.com"] }, secrets: {}, upstream: { connectTo: [], caCerts: [] } },
 *   { sources: {}, resolver: systemResolver },
 * );
 * ```
 */
export async function compileEgressPolicy(
  parts: {
    network: NetworkPolicy;
    secrets: PlaceholderSecrets;
    upstream: UpstreamSettings;
  },
  context: CompileContext,
): Promise<{ active: ActivePolicy; placeholderEnv: Record<string, string> }> {
  const issues: { path: string; message: string }[] = [];
  let network: CompiledNetworkPolicy | null = null;
  try {
    network = compileNetworkPolicy(parts.network, context.sources);
  } catch (error) {
    if (!(error instanceof NetworkPolicyError)) throw error;
    issues.push(...error.issues);
  }
  const placeholders: Placeholder[] = [];
  const placeholderEnv: Record<string, string> = {};
  for (const [name, secret] of Object.entries(parts.secrets)) {
    const { value, missing } = resolveSecretRefs(secret.value, context.sources);
    for (const ref of missing) {
      issues.push({
        path: `secrets.${name}.value`,
        message: `unresolved secret reference '\${${ref}}'`,
      });
    }
    if (/[\0\r\n]/.test(value)) {
      issues.push({
        path: `secrets.${name}.value`,
        message: "the value contains NUL, CR or LF",
      });
    }
    if (missing.length === 0 && value.length < MIN_SECRET_LENGTH) {
      issues.push({
        path: `secrets.${name}.value`,
        message:
          `the secret has ${value.length} characters: the echo guard needs at least ${MIN_SECRET_LENGTH}`,
      });
    }
    const token = `airlock-placeholder-${name}-${randomHex(16)}`;
    placeholders.push({
      name,
      token,
      value,
      hosts: secret.hosts.map((h) => ({
        pattern: parseHostPattern(h),
        value: true as const,
      })),
    });
    placeholderEnv[name] = token;
  }
  const caCerts = [...(context.caCerts ?? [])];
  for (const [index, file] of parts.upstream.caCerts.entries()) {
    const path = file.startsWith("/") || !context.baseDir
      ? file
      : `${context.baseDir}/${file}`;
    try {
      const pem = await Deno.readTextFile(path);
      if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
        throw new Error("no PEM certificate in it");
      }
      caCerts.push(pem);
    } catch (error) {
      issues.push({
        path: `upstream.caCerts.${index}`,
        message: `cannot read CA file '${path}': ${(error as Error).message}`,
      });
    }
  }
  if (issues.length > 0 || !network) throw new NetworkPolicyError(issues);
  const connectTo = [
    ...(context.connectTo ?? []),
    ...parts.upstream.connectTo.map(parseConnectTo),
  ];
  return {
    active: {
      network,
      placeholders,
      dial: {
        resolver: context.resolver,
        connectTo,
        guard: new AddressGuard({
          allowSubnets: network.allowSubnets,
          denySubnets: network.denySubnets,
        }),
        caCerts,
      },
    },
    placeholderEnv,
  };
}

/**
 * Recompiles only the network part (live updates keep placeholders and
 * upstream settings as they were at creation).
 *
 * @param previous The policy in force.
 * @param network The new network policy.
 * @param sources Where secret references resolve.
 * @returns The new active policy.
 * @throws {NetworkPolicyError} If the new policy is invalid.
 *
 * @example Usage
 * ```ts ignore
 * active = withNetworkPolicy(active, "deny-all", {});
 * ```
 */
export function withNetworkPolicy(
  previous: ActivePolicy,
  network: NetworkPolicy,
  sources: SecretSources,
): ActivePolicy {
  const compiled = compileNetworkPolicy(network, sources);
  return {
    network: compiled,
    placeholders: previous.placeholders,
    dial: {
      ...previous.dial,
      guard: new AddressGuard({
        allowSubnets: compiled.allowSubnets,
        denySubnets: compiled.denySubnets,
      }),
    },
  };
}

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}
