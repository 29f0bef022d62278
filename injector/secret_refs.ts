/**
 * Secret references in policy values: `${env:NAME}` reads the harness's
 * environment, `${secret:NAME}` reads the secrets map the embedding program
 * passes. References are resolved once, in the harness, when a policy is
 * applied; the resolved values exist only in the injector's memory.
 *
 * @module
 */

/**
 * Where references are resolved from.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveSecretRefs, type SecretSources } from "./secret_refs.ts";
 *
 * const sources: SecretSources = {
 *   secrets: { TOKEN: "sk-example-0123456789" },
 *   env: () => undefined,
 * };
 * assert.equal(
 *   resolveSecretRefs("Bearer ${secret:TOKEN}", sources).value,
 *   "Bearer sk-example-0123456789",
 * );
 * ```
 */
export interface SecretSources {
  /** `${secret:NAME}` values. */
  secrets?: Readonly<Record<string, string>>;
  /** `${env:NAME}` lookup; default `Deno.env.get`. */
  env?: (name: string) => string | undefined;
}

const REFERENCE = /\$\{(env|secret):([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * The value shown wherever a policy is read back.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { REDACTED } from "./secret_refs.ts";
 * import { redactNetworkPolicy } from "./network_policy.ts";
 *
 * const shown = redactNetworkPolicy({
 *   allow: {
 *     "a.example": [{ transform: [{ headers: { authorization: "Bearer x" } }], allowInsecure: false }],
 *   },
 * });
 * assert.ok(JSON.stringify(shown).includes(REDACTED));
 * ```
 */
export const REDACTED = "<redacted>";

/**
 * Whether `value` contains a secret reference.
 *
 * @param value A policy string.
 * @returns True if it references `${env:…}` or `${secret:…}`.
 *
 * @example Usage
 * ```ts
 * import { hasSecretRef } from "./secret_refs.ts";
 * console.log(hasSecretRef("Bearer ${env:TOKEN}")); // true
 * ```
 */
export function hasSecretRef(value: string): boolean {
  REFERENCE.lastIndex = 0;
  return REFERENCE.test(value);
}

/**
 * Replaces every reference in `value`.
 *
 * @param value A policy string such as `Bearer ${env:API_TOKEN}`.
 * @param sources Where to look values up.
 * @returns The resolved string, or the list of unresolved reference names.
 *
 * @example Usage
 * ```ts
 * import { resolveSecretRefs } from "./secret_refs.ts";
 * const r = resolveSecretRefs("Bearer ${secret:T}", { secrets: { T: "abc" } });
 * console.log(r); // { value: "Bearer abc", missing: [], secrets: ["abc"] }
 * ```
 */
export function resolveSecretRefs(
  value: string,
  sources: SecretSources,
): { value: string; missing: string[]; secrets: string[] } {
  const missing: string[] = [];
  // Each referenced value on its own: an upstream may echo just the token
  // out of "Bearer <token>", so the echo guard must know the token alone.
  const secrets: string[] = [];
  const env = sources.env ?? safeEnv;
  const resolved = value.replace(
    REFERENCE,
    (whole, kind: string, name: string) => {
      const found = kind === "env" ? env(name) : sources.secrets?.[name];
      if (found === undefined || found === "") {
        missing.push(`${kind}:${name}`);
        return whole;
      }
      secrets.push(found);
      return found;
    },
  );
  return { value: resolved, missing, secrets };
}

function safeEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}
