import assert from "node:assert/strict";
import type { z } from "zod";
import {
  type CompiledNetworkPolicy,
  compileNetworkPolicy,
  type Decision,
  MIN_SECRET_LENGTH,
  NetworkPolicyError,
  type NetworkPolicyInput,
  NetworkPolicyObjectSchema,
  NetworkPolicySchema,
} from "./network_policy.ts";
import { REDACTED } from "./secret_refs.ts";
import { canonicalHost } from "./host_pattern.ts";

const SECRET = "sk-unit-0123456789abcdef";

function compile(
  input: NetworkPolicyInput,
  secrets: Record<string, string> = { T: SECRET },
  env: Record<string, string> = {},
): CompiledNetworkPolicy {
  return compileNetworkPolicy(NetworkPolicySchema.parse(input), {
    secrets,
    env: (name) => env[name],
  });
}

function allowed(decision: Decision): string | null {
  return decision.allowed ? decision.id : null;
}

function compileError(
  input: NetworkPolicyInput,
  secrets: Record<string, string> = {},
  env: Record<string, string> = {},
): NetworkPolicyError {
  try {
    compile(input, secrets, env);
  } catch (error) {
    assert.ok(error instanceof NetworkPolicyError, String(error));
    return error;
  }
  assert.fail("expected a NetworkPolicyError");
}

// ---- decide ---------------------------------------------------------------

Deno.test("network policy deny-all refuses everything with a reason", () => {
  const policy = compile("deny-all");
  const decision = policy.decide("api.example.com", 443);
  assert.equal(decision.allowed, false);
  assert.equal(decision.id, "deny-all");
  assert.ok(!decision.allowed && /denies all/.test(decision.reason));
  assert.deepEqual(policy.denoNetGrants, []);
  assert.deepEqual(policy.secretValues, []);
  assert.equal(policy.redacted, "deny-all");
});

Deno.test("network policy allow-all allows any host and port, with no rules and no Deno grant list", () => {
  const policy = compile("allow-all");
  for (const [host, port] of [["a.example", 443], ["10.0.0.1", 22]] as const) {
    const decision = policy.decide(host, port);
    assert.ok(decision.allowed);
    assert.equal(decision.id, "allow-all");
    assert.deepEqual(decision.rules, []);
  }
  assert.equal(policy.denoNetGrants, null);
});

Deno.test("network policy defaults to deny-all when no key is given", () => {
  assert.equal(NetworkPolicySchema.parse("deny-all"), "deny-all");
  const policy = compile({});
  assert.equal(policy.decide("api.example.com", 443).allowed, false);
  assert.deepEqual(policy.denoNetGrants, []);
});

Deno.test("network policy decide(): exact, wildcard (any depth, never the apex) and ports", () => {
  const policy = compile({
    allow: ["api.example.com", "*.example.org", "alt.example.net:8443"],
  });
  assert.equal(
    allowed(policy.decide("api.example.com", 443)),
    "api.example.com",
  );
  assert.equal(
    allowed(policy.decide("api.example.com", 80)),
    "api.example.com",
  );
  assert.equal(allowed(policy.decide("api.example.com", 8443)), null);
  assert.equal(allowed(policy.decide("www.api.example.com", 443)), null);
  assert.equal(allowed(policy.decide("example.com", 443)), null);
  assert.equal(allowed(policy.decide("a.example.org", 443)), "*.example.org");
  assert.equal(
    allowed(policy.decide("a.b.c.example.org", 80)),
    "*.example.org",
  );
  assert.equal(allowed(policy.decide("example.org", 443)), null);
  assert.equal(allowed(policy.decide("badexample.org", 443)), null);
  assert.equal(
    allowed(policy.decide("alt.example.net", 8443)),
    "alt.example.net:8443",
  );
  assert.equal(allowed(policy.decide("alt.example.net", 443)), null);
  const refused = policy.decide("evil.example", 443);
  assert.ok(!refused.allowed);
  assert.equal(refused.id, "not-in-allowlist");
  assert.match(refused.reason, /'evil\.example:443' is not in the allowlist/);
});

Deno.test("network policy decide(): exact beats wildcard, the longest wildcard wins, an explicit port beats the default", () => {
  const rules = (id: string) => [{ response: { statusCode: 200, body: id } }];
  const policy = compile({
    allow: {
      "*.example.com": rules("wild"),
      "*.api.example.com": rules("longer"),
      "api.example.com": rules("exact"),
      "api.example.com:443": rules("exact-port"),
      "*.example.com:8443": rules("wild-port"),
    },
  });
  const body = (host: string, port: number) => {
    const d = policy.decide(host, port);
    return d.allowed ? d.rules[0]?.response?.body : null;
  };
  assert.equal(body("api.example.com", 443), "exact-port");
  assert.equal(body("api.example.com", 80), "exact");
  assert.equal(body("v1.api.example.com", 443), "longer");
  assert.equal(body("www.example.com", 443), "wild");
  assert.equal(body("www.example.com", 8443), "wild-port");
  assert.equal(body("v1.api.example.com", 8443), "wild-port");
});

Deno.test("network policy never merges entries: the winner's rules only", () => {
  const policy = compile({
    allow: {
      "*.example.com": [{ transform: [{ headers: { "X-Wild": "1" } }] }],
      "api.example.com": [],
    },
  });
  const d = policy.decide("api.example.com", 443);
  assert.ok(d.allowed);
  assert.deepEqual(d.rules, []);
});

Deno.test("network policy decide() insists on canonical hosts (a raw spelling cannot dodge an entry)", () => {
  const policy = compile({ allow: ["api.example.com"] });
  assert.throws(() => policy.decide("API.example.com", 443));
  assert.throws(() => policy.decide("api.example.com.", 443));
});

Deno.test("network policy: IP patterns match only that literal and wildcards never match IPs", () => {
  const policy = compile({
    allow: ["192.0.2.7", "*.example.com", "[2001:db8::1]:8443"],
  });
  assert.equal(allowed(policy.decide("192.0.2.7", 443)), "192.0.2.7");
  assert.equal(allowed(policy.decide("192.0.2.8", 443)), null);
  assert.equal(
    allowed(policy.decide("2001:db8::1", 8443)),
    "[2001:db8::1]:8443",
  );
  assert.deepEqual(policy.denoNetGrants, [
    "192.0.2.7:443",
    "192.0.2.7:80",
    "*.example.com:443",
    "*.example.com:80",
    "[2001:db8::1]:8443",
  ]);
});

Deno.test("network policy rule ids are pattern#index", () => {
  const policy = compile({
    allow: {
      "api.example.com": [
        { transform: [{ headers: { "X-A": "1" } }] },
        { response: { statusCode: 403 } },
      ],
    },
  });
  const d = policy.decide("api.example.com", 443);
  assert.ok(d.allowed);
  assert.deepEqual(d.rules.map((r) => r.id), [
    "api.example.com#0",
    "api.example.com#1",
  ]);
});

// ---- secrets ----------------------------------------------------------------

Deno.test("network policy resolves ${secret:…} and ${env:…} and records secret values for the echo guard", () => {
  const policy = compile(
    {
      allow: {
        "api.example.com": [{
          transform: [{
            headers: {
              Authorization: "Bearer ${secret:T}",
              "X-Env": "${env:AIRLOCK_TEST_KEY}",
              "X-Literal": "not-a-reference",
            },
          }],
        }],
      },
    },
    { T: SECRET },
    { AIRLOCK_TEST_KEY: "env-value-123456" },
  );
  const d = policy.decide("api.example.com", 443);
  assert.ok(d.allowed);
  const rule = d.rules[0]!;
  assert.deepEqual(rule.headers, [
    ["Authorization", `Bearer ${SECRET}`],
    ["X-Env", "env-value-123456"],
    ["X-Literal", "not-a-reference"],
  ]);
  assert.equal(rule.carriesSecret, true);
  assert.ok(policy.secretValues.some((v) => v.includes(SECRET)));
  assert.ok(policy.secretValues.some((v) => v.includes("env-value-123456")));
  // A literal value is a credential too (a pasted or shell-expanded token).
  assert.ok(policy.secretValues.includes("not-a-reference"));
});

Deno.test("network policy treats literal header values as credentials for the cleartext rule", () => {
  const policy = compile({
    allow: {
      "api.example.com": [{
        transform: [{ headers: { "X-Api-Key": "pasted-token" } }],
      }],
    },
  });
  const d = policy.decide("api.example.com", 443);
  assert.ok(d.allowed);
  assert.equal(d.rules[0]!.carriesSecret, true);
  assert.equal(d.rules[0]!.allowInsecure, false);
});

Deno.test("network policy redacted read-back shows <redacted> for every injected value and keeps the rest", () => {
  const input: NetworkPolicyInput = {
    allow: {
      "api.example.com": [
        {
          match: { path: { startsWith: "/v1/" }, methods: ["GET"] },
          transform: [
            { headers: { Authorization: "Bearer ${secret:T}" } },
            { headers: { "X-Literal": "literal-value" } },
          ],
        },
        {
          match: { methods: ["DELETE"] },
          response: { statusCode: 403, body: "deletes are not allowed" },
        },
      ],
      "*.example.org": [],
    },
    subnets: { allow: ["10.1.0.0/16"] },
  };
  const snapshot = structuredClone(input);
  const policy = compile(input);
  assert.equal(REDACTED, "<redacted>");
  assert.deepEqual(policy.redacted, {
    allow: {
      "api.example.com": [
        {
          match: { path: { startsWith: "/v1/" }, methods: ["GET"] },
          allowInsecure: false,
          transform: [
            { headers: { Authorization: "<redacted>" } },
            { headers: { "X-Literal": "<redacted>" } },
          ],
        },
        {
          match: { methods: ["DELETE"] },
          response: { statusCode: 403, body: "deletes are not allowed" },
        },
      ],
      "*.example.org": [],
    },
    subnets: { allow: ["10.1.0.0/16"] },
  });
  assert.ok(!JSON.stringify(policy.redacted).includes(SECRET));
  assert.deepEqual(input, snapshot, "the input is not mutated");
  assert.deepEqual(policy.allowSubnets, ["10.1.0.0/16"]);
});

Deno.test("network policy: an unresolved reference is an error listing its path (never an empty header)", () => {
  const error = compileError({
    allow: {
      "api.example.com": [
        { transform: [{ headers: { "X-Ok": "fine" } }] },
        {
          transform: [
            { headers: { "X-Ok": "fine" } },
            { headers: { Authorization: "Bearer ${secret:MISSING}" } },
          ],
        },
      ],
      "*.example.org": [{
        transform: [{ headers: { "X-Key": "${env:AIRLOCK_TEST_NOT_SET}" } }],
      }],
    },
  });
  assert.deepEqual(error.issues.map((i) => i.path), [
    "network.allow.api.example.com.1.transform.1.headers.Authorization",
    "network.allow.*.example.org.0.transform.0.headers.X-Key",
  ]);
  assert.match(error.issues[0]!.message, /\$\{secret:MISSING\}/);
  assert.match(error.issues[0]!.message, /secrets map/);
  assert.match(error.issues[1]!.message, /\$\{env:AIRLOCK_TEST_NOT_SET\}/);
  assert.match(error.issues[1]!.message, /environment/);
  assert.match(error.message, /2 problems/);
  assert.match(
    error.message,
    /network\.allow\.api\.example\.com\.1\.transform\.1\.headers\.Authorization/,
  );
  assert.equal(error.name, "NetworkPolicyError");
});

Deno.test("network policy: an empty secret value counts as unresolved", () => {
  const error = compileError({
    allow: {
      "api.example.com": [{
        transform: [{ headers: { Authorization: "${secret:T}" } }],
      }],
    },
  }, { T: "" });
  assert.equal(error.issues.length, 1);
  assert.match(error.issues[0]!.message, /unresolved/);
});

Deno.test("network policy: a resolved secret containing CR, LF or NUL is refused (header injection)", () => {
  for (const value of ["abcdefgh\r\nX-Evil: 1", "abcdefgh\nx", "abcdefgh\0x"]) {
    const error = compileError({
      allow: {
        "api.example.com": [{
          transform: [{ headers: { Authorization: "${secret:T}" } }],
        }],
      },
    }, { T: value });
    assert.match(error.issues[0]!.message, /NUL, CR or LF/);
  }
});

Deno.test("network policy: MIN_SECRET_LENGTH is 8 and shorter secrets are refused", () => {
  assert.equal(MIN_SECRET_LENGTH, 8);
  const policy = (secret: string) => ({
    input: {
      allow: {
        "api.example.com": [{
          transform: [{ headers: { "X-Key": "${secret:T}" } }],
        }],
      },
    },
    secrets: { T: secret },
  });
  const short = policy("x".repeat(MIN_SECRET_LENGTH - 1));
  const error = compileError(short.input, short.secrets);
  assert.equal(
    error.issues[0]!.path,
    "network.allow.api.example.com.0.transform.0.headers.X-Key",
  );
  assert.match(error.issues[0]!.message, /7 characters/);
  assert.match(error.issues[0]!.message, /at least 8/);
  const enough = policy("x".repeat(MIN_SECRET_LENGTH));
  compile(enough.input, enough.secrets);
  // Literal values are not secrets: no minimum.
  compile({
    allow: {
      "api.example.com": [{ transform: [{ headers: { "X-A": "1" } }] }],
    },
  });
});

Deno.test("network policy: MIN_SECRET_LENGTH applies to the secret itself, not to the header it is embedded in", () => {
  // "Bearer abc" is 10 characters, but the secret is 3: the echo guard
  // cannot recognise an echo of "abc" alone.
  const error = compileError({
    allow: {
      "api.example.com": [{
        transform: [{ headers: { Authorization: "Bearer ${secret:T}" } }],
      }],
    },
  }, { T: "abc" });
  assert.match(error.issues[0]!.message, /3 characters/);
});

// ---- schema ------------------------------------------------------------------

Deno.test("network policy schema refuses bad patterns, header names and values, regexes, statuses and unknown keys", () => {
  const bad: unknown[] = [
    { allow: ["*"] },
    { allow: ["*.com"] },
    { allow: ["a.*.com"] },
    { allow: ["https://api.example.com"] },
    { allow: ["api.example.com/path"] },
    { allow: ["*.192.0.2.1"] },
    { allow: ["api.example.com:0"] },
    {
      allow: {
        "api.example.com": [{ transform: [{ headers: { "Bad Name": "v" } }] }],
      },
    },
    {
      allow: {
        "api.example.com": [{ transform: [{ headers: { "X-A": "a\r\nb" } }] }],
      },
    },
    { allow: { "api.example.com": [{ transform: [] }] } },
    {
      allow: {
        "api.example.com": [{
          match: { path: { regex: "(" } },
          transform: [{ headers: { "X-A": "1" } }],
        }],
      },
    },
    {
      allow: {
        "api.example.com": [{
          match: { path: { startsWith: "v1" } },
          transform: [{ headers: { "X-A": "1" } }],
        }],
      },
    },
    { allow: { "api.example.com": [{ response: { statusCode: 100 } }] } },
    {
      allow: {
        "api.example.com": [{ response: { statusCode: 200, extra: 1 } }],
      },
    },
    { allow: [], unknown: true },
    { subnets: { allow: ["10.0.0.1/8"] } },
    { subnets: { allow: ["not-a-cidr"] } },
    "allow-some",
  ];
  for (const value of bad) {
    assert.equal(
      NetworkPolicySchema.safeParse(value).success,
      false,
      JSON.stringify(value),
    );
  }
});

// ---- names: public suffixes, single labels, trailing dots -------------------

/**
 * The object schema's issues as "path: message", unions opened (a branch
 * that failed on the value's type is not the one meant).
 */
function schemaIssues(value: unknown): string[] {
  const parsed = NetworkPolicyObjectSchema.safeParse(value);
  assert.equal(parsed.success, false, JSON.stringify(value));
  const lines: string[] = [];
  const walk = (issues: readonly z.core.$ZodIssue[], prefix: PropertyKey[]) => {
    for (const issue of issues) {
      const path = [...prefix, ...issue.path];
      if (issue.code === "invalid_union") {
        for (const branch of issue.errors) {
          if (
            !branch.some((i) => i.code === "invalid_type" && !i.path.length)
          ) {
            walk(branch, path);
          }
        }
      } else if (issue.code === "invalid_key") {
        walk(issue.issues, path);
      } else lines.push(`${path.join(".")}: ${issue.message}`);
    }
  };
  walk(parsed.error!.issues, []);
  return lines;
}

Deno.test("network policy schema refuses wildcards over public suffixes, by path, naming the opt-in", () => {
  const issues = schemaIssues({
    allow: ["api.example.com", "*.vercel.app", "*.github.io", "*.co.uk"],
  });
  assert.equal(issues.length, 3, issues.join("\n"));
  for (
    const [index, suffix] of [[1, "vercel.app"], [2, "github.io"], [
      3,
      "co.uk",
    ]]
  ) {
    const issue = issues.find((i) => i.startsWith(`allow.${index}: `));
    assert.ok(issue, `allow.${index} in ${issues.join("\n")}`);
    assert.ok(issue.includes(`'${suffix}' is a public suffix`), issue);
    assert.ok(issue.includes("'allowPublicSuffixWildcards: true'"), issue);
  }
  // The record form names the entry by its key, next to other problems.
  const record = schemaIssues({
    allow: { "*.s3.amazonaws.com": [], "intranet": [] },
    subnets: { allow: ["bad"] },
  });
  assert.ok(
    record.some((i) =>
      i.startsWith("allow.*.s3.amazonaws.com: ") && /public suffix/.test(i)
    ),
    record.join("\n"),
  );
  assert.ok(record.some((i) => /subnets/.test(i)), record.join("\n"));
  assert.ok(record.some((i) => /single label/.test(i)), record.join("\n"));
});

Deno.test("network policy allowPublicSuffixWildcards: true accepts them and matches every name under them", () => {
  const p = compile({
    allow: ["*.vercel.app", "*.amazonaws.com"],
    allowPublicSuffixWildcards: true,
  });
  assert.equal(allowed(p.decide("anyone.vercel.app", 443)), "*.vercel.app");
  assert.equal(
    allowed(p.decide("bucket.s3.amazonaws.com", 443)),
    "*.amazonaws.com",
  );
  assert.deepEqual(p.redacted, {
    allow: ["*.vercel.app", "*.amazonaws.com"],
    allowPublicSuffixWildcards: true,
  });
  // false is the default, spelled out.
  assert.equal(
    NetworkPolicySchema.safeParse({
      allow: ["*.vercel.app"],
      allowPublicSuffixWildcards: false,
    }).success,
    false,
  );
});

Deno.test("network policy accepts a wildcard under one owner's name below a public suffix", () => {
  const p = compile({ allow: ["*.myapp.vercel.app", "vercel.app"] });
  assert.equal(
    allowed(p.decide("preview.myapp.vercel.app", 443)),
    "*.myapp.vercel.app",
  );
  assert.equal(allowed(p.decide("other.vercel.app", 443)), null);
  assert.equal(allowed(p.decide("vercel.app", 443)), "vercel.app");
});

Deno.test("compileNetworkPolicy() refuses a public-suffix wildcard the schema never saw, as a NetworkPolicyError", () => {
  // A caller that skips the schema must not get the wildcard in either.
  assert.throws(
    () => compileNetworkPolicy({ allow: ["*.github.io", "intranet"] }, {}),
    (error: Error) => {
      assert.ok(error instanceof NetworkPolicyError, String(error));
      assert.deepEqual(error.issues.map((i) => i.path), [
        "network.allow.*.github.io",
        "network.allow.intranet",
      ]);
      return true;
    },
  );
});

Deno.test("network policy decide(): a trailing-dot name is the same host as the entry without it", () => {
  const p = compile({ allow: ["api.example.com", "*.example.org"] });
  const host = canonicalHost("api.example.com.");
  assert.equal(host, "api.example.com");
  assert.equal(allowed(p.decide(host, 443)), "api.example.com");
  assert.equal(
    allowed(p.decide(canonicalHost("A.Example.ORG."), 443)),
    "*.example.org",
  );
  // The policy may be written with the dot too: the same entry.
  assert.equal(
    allowed(compile({ allow: ["api.example.com."] }).decide(host, 443)),
    "api.example.com.",
  );
});
