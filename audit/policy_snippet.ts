/**
 * The airlock policy a permission audit proposes: the hosts the run used
 * with the rules that were in force for them (injections included, so the
 * snippet still adds the credential), the placeholders it read, its inputs
 * and scratch. A literal header or placeholder value is never copied: it
 * could be the credential itself, and the snippet is printed into the
 * report, its JSON and its HTML page.
 *
 * @module
 */

import { canonicalHost } from "../injector/canonical_host.ts";
import { matchHost, parseHostPattern } from "../injector/host_pattern.ts";
import type { PermissionKind } from "../harness/run_result.ts";

/** A rule of the policy in force, as far as the snippet reads it. */
export interface SnippetRule {
  /** Which requests. */
  match?: unknown;
  /** Headers set on matching requests. */
  transform?: readonly { headers: Readonly<Record<string, string>> }[];
  /** A local answer instead of the upstream. */
  response?: unknown;
  /** Whether it injects over plain http:// too. */
  allowInsecure?: boolean;
}

/**
 * The parts of the policy in force the snippet keeps (every airlock
 * `Policy` is one).
 */
export interface PolicyInForce {
  /** The network policy: host patterns with their rules. */
  network?:
    | "deny-all"
    | "allow-all"
    | {
      allow:
        | readonly string[]
        | Readonly<Record<string, readonly SnippetRule[]>>;
    };
  /** Placeholder secrets by variable name. */
  secrets?: Readonly<
    Record<string, { hosts: readonly string[]; value: string }>
  >;
  /** Read-only inputs (host source, sandbox target). */
  inputs?: readonly { source: string; target: string }[];
}

/** A granted target, as the snippet reads it. */
export interface SnippetTarget {
  /** The permission. */
  kind: PermissionKind;
  /** As the flag names it (host path, `host:port`, name). */
  value: string;
  /** As the sandbox saw it. */
  sandboxValue: string;
}

/**
 * The policy snippet for the granted targets: their hosts with the rules
 * in force (literal header values redacted), the placeholders they read,
 * inputs and scratch.
 *
 * @param granted What the proposal grants.
 * @param policy The policy in force.
 * @returns The snippet (JSON-compatible) and notes about redactions.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { policySnippet } from "./policy_snippet.ts";
 * const { snippet } = policySnippet(
 *   [{ kind: "net", value: "api.example.com:443", sandboxValue: "api.example.com:443" }],
 *   { network: { allow: { "api.example.com": [{ transform: [{ headers: { authorization: "Bearer ${env:TOKEN}" } }] }] } } },
 * );
 * assert.deepEqual(snippet, {
 *   network: { allow: { "api.example.com": [{ transform: [{ headers: { authorization: "Bearer ${env:TOKEN}" } }] }] } },
 * });
 * ```
 */
export function policySnippet(
  granted: readonly SnippetTarget[],
  policy: PolicyInForce | undefined,
): { snippet: Record<string, unknown>; notes: string[] } {
  const notes: string[] = [];
  const hosts = new Map<string, readonly SnippetRule[]>();
  for (const t of granted) {
    if (t.kind !== "net" || t.value === "(any)") continue;
    const [host, port] = splitHostPort(t.value);
    const name = port === "443" || port === "80" ? host : `${host}:${port}`;
    const rules = rulesFor(policy, host, Number(port));
    if (!hosts.has(name) || rules.length > 0) hosts.set(name, rules);
  }
  const snippet: Record<string, unknown> = {};
  if (hosts.size > 0) {
    const withRules = [...hosts.values()].some((rules) => rules.length > 0);
    snippet.network = {
      allow: withRules
        ? Object.fromEntries(
          [...hosts].map(([name, rules]) => [name, redactRules(rules, notes)]),
        )
        : [...hosts.keys()],
    };
  }
  const secrets = placeholdersFor(granted, policy, notes);
  if (secrets) snippet.secrets = secrets;
  const inputs = new Set<string>();
  const written = granted.filter((t) => t.kind === "write").map((t) => t.value);
  for (const t of granted) {
    // What the program wrote itself and reads back is its scratch, not
    // an input.
    if (
      t.kind !== "read" || t.sandboxValue.startsWith("/scratch") ||
      written.some((w) => t.value === w || t.value.startsWith(`${w}/`))
    ) continue;
    inputs.add(inputFor(t, policy));
  }
  if (inputs.size > 0) snippet.inputs = [...inputs];
  if (granted.some((t) => t.kind === "write")) snippet.scratch = true;
  return { snippet, notes };
}

/** The rules the policy in force had for a host (an exact or wildcard
 * pattern), or none. */
function rulesFor(
  policy: PolicyInForce | undefined,
  host: string,
  port: number,
): readonly SnippetRule[] {
  const network = policy?.network;
  if (!network || typeof network !== "object" || Array.isArray(network.allow)) {
    return [];
  }
  let canonical: string;
  try {
    canonical = canonicalHost(host);
  } catch {
    return [];
  }
  const entries = Object.entries(network.allow).flatMap(([text, rules]) => {
    try {
      return [{
        pattern: parseHostPattern(text, { allowPublicSuffixWildcard: true }),
        value: rules,
      }];
    } catch {
      return [];
    }
  });
  return matchHost(entries, canonical, port)?.value ?? [];
}

/** A header value is kept when its only literal text is an auth scheme
 * word; anything else could be the credential itself. */
const KEPT_LITERAL =
  /^\s*(?:(?:Bearer|Basic|Token|token|Bot|Digest|ApiKey)\s*)?$/;
const REFERENCE = /\$\{(?:env|secret):[A-Za-z_][A-Za-z0-9_]*\}/g;

function redactRules(
  rules: readonly SnippetRule[],
  notes: string[],
): SnippetRule[] {
  return rules.map((rule) => {
    if (!rule.transform) return structuredClone(rule);
    return {
      ...structuredClone(rule),
      transform: rule.transform.map((step) => ({
        headers: Object.fromEntries(
          Object.entries(step.headers).map(([name, value]) => {
            // Attack: a literal credential in the policy (--inject
            // 'h:Authorization=Bearer abc') would be printed into the
            // report, its JSON and its HTML page.
            if (KEPT_LITERAL.test(value.replace(REFERENCE, ""))) {
              return [name, value];
            }
            const note =
              `The injected value of '${name}' was written literally and is shown as <redacted>: put it in an environment variable and write \${env:NAME}.`;
            if (!notes.includes(note)) notes.push(note);
            return [name, "<redacted>"];
          }),
        ),
      })),
    };
  });
}

/** Placeholders the program read, with their value as a reference only. */
function placeholdersFor(
  granted: readonly SnippetTarget[],
  policy: PolicyInForce | undefined,
  notes: string[],
): Record<string, unknown> | null {
  if (!policy) return null;
  const out: Record<string, unknown> = {};
  for (const t of granted) {
    if (t.kind !== "env") continue;
    const secret = policy.secrets?.[t.value];
    if (!secret) continue;
    const literal = !KEPT_LITERAL.test(secret.value.replace(REFERENCE, ""));
    if (literal) {
      notes.push(
        `The placeholder '${t.value}' had a literal value, shown as <redacted>: write \${env:NAME} instead.`,
      );
    }
    out[t.value] = {
      hosts: [...secret.hosts],
      value: literal ? "<redacted>" : secret.value,
    };
  }
  return Object.keys(out).length > 0 ? out : null;
}

/** A read as a policy input: the policy's own input entry when the read
 * was under one, else the host path. */
function inputFor(
  read: SnippetTarget,
  policy: PolicyInForce | undefined,
): string {
  const path = read.sandboxValue;
  for (const input of policy?.inputs ?? []) {
    if (path === input.target || path.startsWith(`${input.target}/`)) {
      return `${input.source}:${input.target}`;
    }
  }
  return read.value;
}

function splitHostPort(value: string): [string, string] {
  const bracket = value.match(/^(\[[^\]]+\])(?::(\d+))?$/);
  if (bracket) return [bracket[1]!, bracket[2] ?? "443"];
  const at = value.lastIndexOf(":");
  return at === -1 || value.indexOf(":") !== at
    ? [value, "443"]
    : [value.slice(0, at), value.slice(at + 1)];
}
