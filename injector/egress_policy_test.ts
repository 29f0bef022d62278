import assert from "node:assert/strict";
import type { z } from "zod";
import {
  compileEgressPolicy,
  type PlaceholderSecrets,
  PlaceholderSecretsSchema,
  UpstreamSchema,
  type UpstreamSettings,
  withNetworkPolicy,
} from "./egress_policy.ts";
import {
  NetworkPolicyError,
  type NetworkPolicyInput,
  NetworkPolicySchema,
} from "./network_policy.ts";
import { parseConnectTo } from "./resolver.ts";
import { fixedResolver, sharedTestPki } from "../tests/kits/injector.ts";

const resolver = fixedResolver({});

async function compile(
  parts: {
    network?: NetworkPolicyInput;
    secrets?: Record<string, { hosts: string[]; value: string }>;
    upstream?: { connectTo?: string[]; caCerts?: string[] };
  },
  context: {
    secrets?: Record<string, string>;
    caCerts?: string[];
    connectTo?: string[];
    baseDir?: string;
  } = {},
) {
  return await compileEgressPolicy({
    network: NetworkPolicySchema.parse(parts.network ?? "deny-all"),
    secrets: PlaceholderSecretsSchema.parse(parts.secrets ?? {}),
    upstream: UpstreamSchema.parse(parts.upstream ?? {}),
  }, {
    sources: { secrets: context.secrets ?? {}, env: () => undefined },
    resolver,
    ...(context.caCerts ? { caCerts: context.caCerts } : {}),
    ...(context.connectTo
      ? { connectTo: context.connectTo.map(parseConnectTo) }
      : {}),
    ...(context.baseDir ? { baseDir: context.baseDir } : {}),
  });
}

async function compileError(
  ...args: Parameters<typeof compile>
): Promise<NetworkPolicyError> {
  try {
    await compile(...args);
  } catch (error) {
    assert.ok(error instanceof NetworkPolicyError, String(error));
    return error;
  }
  assert.fail("expected a NetworkPolicyError");
}

Deno.test("egress policy: placeholders give the program opaque tokens and keep the real value in the injector", async () => {
  const { active, placeholderEnv } = await compile({
    network: { allow: ["api.github.com"] },
    secrets: {
      GITHUB_TOKEN: { hosts: ["api.github.com"], value: "${secret:GH}" },
      OTHER_KEY: { hosts: ["*.example.com:8443"], value: "literal-value-1" },
    },
  }, { secrets: { GH: "ghp_realvalue123456" } });
  assert.deepEqual(Object.keys(placeholderEnv).sort(), [
    "GITHUB_TOKEN",
    "OTHER_KEY",
  ]);
  assert.match(
    placeholderEnv.GITHUB_TOKEN!,
    /^airlock-placeholder-GITHUB_TOKEN-[0-9a-f]{32}$/,
  );
  assert.match(
    placeholderEnv.OTHER_KEY!,
    /^airlock-placeholder-OTHER_KEY-[0-9a-f]{32}$/,
  );
  assert.ok(!Object.values(placeholderEnv).join().includes("ghp_realvalue"));
  const gh = active.placeholders.find((p) => p.name === "GITHUB_TOKEN")!;
  assert.equal(gh.token, placeholderEnv.GITHUB_TOKEN);
  assert.equal(gh.value, "ghp_realvalue123456");
  assert.deepEqual(gh.hosts.map((h) => h.pattern.source), ["api.github.com"]);
  const other = active.placeholders.find((p) => p.name === "OTHER_KEY")!;
  assert.equal(other.hosts[0]!.pattern.port, 8443);
});

Deno.test("egress policy: placeholder tokens differ per compilation (not guessable from a previous run)", async () => {
  const secrets = { T: { hosts: ["a.example.com"], value: "value-123456" } };
  const one = await compile({ secrets });
  const two = await compile({ secrets });
  assert.notEqual(one.placeholderEnv.T, two.placeholderEnv.T);
});

Deno.test("egress policy: placeholder problems are listed by path (unresolved, too short, CR/LF)", async () => {
  const error = await compileError({
    secrets: {
      MISSING: { hosts: ["a.example.com"], value: "${secret:NOPE}" },
      SHORT: { hosts: ["a.example.com"], value: "abc" },
      CRLF: { hosts: ["a.example.com"], value: "abcdefgh\r\nX: y" },
    },
  });
  const byPath = Object.fromEntries(
    error.issues.map((i) => [i.path, i.message]),
  );
  assert.match(byPath["secrets.MISSING.value"]!, /\$\{secret:NOPE\}/);
  assert.match(byPath["secrets.SHORT.value"]!, /3 characters.*at least 8/);
  assert.match(byPath["secrets.CRLF.value"]!, /NUL, CR or LF/);
});

Deno.test("egress policy: placeholder schema refuses bad names and hosts", () => {
  const bad: unknown[] = [
    { "1ABC": { hosts: ["a.example.com"], value: "v" } },
    { "A-B": { hosts: ["a.example.com"], value: "v" } },
    { A: { hosts: [], value: "v" } },
    { A: { hosts: ["*"], value: "v" } },
    { A: { hosts: ["a.example.com"], value: "" } },
    { A: { hosts: ["a.example.com"], value: "v", extra: 1 } },
  ];
  for (const value of bad) {
    assert.equal(
      PlaceholderSecretsSchema.safeParse(value).success,
      false,
      JSON.stringify(value),
    );
  }
  assert.equal(
    UpstreamSchema.safeParse({ connectTo: ["a:443:b"] }).success,
    false,
  );
  assert.equal(
    UpstreamSchema.safeParse({ connectTo: ["a:443:127.0.0.1:8443"] }).success,
    true,
  );
});

Deno.test("egress policy: an unreadable CA file is a NetworkPolicyError naming the path (fail closed)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const notPem = `${dir}/not.pem`;
    await Deno.writeTextFile(notPem, "hello");
    const error = await compileError({
      upstream: { caCerts: [`${dir}/missing.pem`, notPem] },
    });
    assert.deepEqual(error.issues.map((i) => i.path), [
      "upstream.caCerts.0",
      "upstream.caCerts.1",
    ]);
    assert.match(error.issues[0]!.message, /cannot read CA file/);
    assert.match(error.issues[0]!.message, /missing\.pem/);
    assert.match(error.issues[1]!.message, /no PEM certificate/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("egress policy: CA files are read (relative to baseDir) and added after the harness-level CAs", async () => {
  const pki = await sharedTestPki();
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ca.pem`, pki.caPem);
    const { active } = await compile(
      { upstream: { caCerts: ["ca.pem", `${dir}/ca.pem`] } },
      { caCerts: ["harness-ca"], baseDir: dir },
    );
    assert.deepEqual(active.dial.caCerts, ["harness-ca", pki.caPem, pki.caPem]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("egress policy: network, placeholder and CA problems are reported together", async () => {
  const error = await compileError({
    network: {
      allow: {
        "api.example.com": [{
          transform: [{ headers: { Authorization: "${secret:NOPE}" } }],
        }],
      },
    },
    secrets: { A: { hosts: ["a.example.com"], value: "${env:NOPE}" } },
    upstream: { caCerts: ["/nonexistent/airlock-ca.pem"] },
  });
  assert.deepEqual(error.issues.map((i) => i.path), [
    "network.allow.api.example.com.0.transform.0.headers.Authorization",
    "secrets.A.value",
    "upstream.caCerts.0",
  ]);
});

Deno.test("egress policy: connectTo puts the harness's mappings before the policy's", async () => {
  const { active } = await compile(
    { upstream: { connectTo: ["api.example.com:443:127.0.0.1:9002"] } },
    { connectTo: ["api.example.com:443:127.0.0.1:9001"] },
  );
  assert.deepEqual(active.dial.connectTo.map((c) => c.toPort), [9001, 9002]);
  assert.equal(active.dial.resolver, resolver);
});

Deno.test("egress policy: subnets reach the address guard", async () => {
  const { active } = await compile({
    network: {
      allow: ["a.example.com"],
      subnets: { allow: ["10.1.0.0/16"], deny: ["10.1.2.0/24"] },
    },
  });
  assert.equal(active.dial.guard.check("10.1.1.1").allowed, true);
  assert.equal(active.dial.guard.check("10.1.2.1").allowed, false);
  assert.equal(active.dial.guard.check("10.2.0.1").allowed, false);
  assert.equal(active.dial.guard.check("127.0.0.1").allowed, false);
});

Deno.test("withNetworkPolicy() replaces the network part and keeps placeholders and upstream settings", async () => {
  const pki = await sharedTestPki();
  const { active, placeholderEnv } = await compile({
    network: { allow: ["a.example.com"] },
    secrets: { T: { hosts: ["a.example.com"], value: "value-123456" } },
    upstream: { connectTo: ["a.example.com:443:127.0.0.1:9001"] },
  }, { caCerts: [pki.caPem] });
  const next = withNetworkPolicy(
    active,
    NetworkPolicySchema.parse({
      allow: ["b.example.com"],
      subnets: { allow: ["10.0.0.0/8"] },
    }),
    {},
  );
  assert.equal(next.placeholders, active.placeholders);
  assert.equal(next.placeholders[0]!.token, placeholderEnv.T);
  assert.equal(next.dial.connectTo, active.dial.connectTo);
  assert.equal(next.dial.caCerts, active.dial.caCerts);
  assert.equal(next.dial.resolver, active.dial.resolver);
  assert.equal(next.network.decide("a.example.com", 443).allowed, false);
  assert.equal(next.network.decide("b.example.com", 443).allowed, true);
  // The guard follows the new subnets.
  assert.equal(active.dial.guard.check("10.1.2.3").allowed, false);
  assert.equal(next.dial.guard.check("10.1.2.3").allowed, true);
  // The previous policy object is untouched.
  assert.equal(active.network.decide("a.example.com", 443).allowed, true);
});

Deno.test("withNetworkPolicy() throws NetworkPolicyError for an unresolved reference and changes nothing", async () => {
  const { active } = await compile({ network: { allow: ["a.example.com"] } });
  assert.throws(
    () =>
      withNetworkPolicy(
        active,
        NetworkPolicySchema.parse({
          allow: {
            "a.example.com": [{
              transform: [{ headers: { "X-Key": "${secret:NOPE}" } }],
            }],
          },
        }),
        {},
      ),
    NetworkPolicyError,
  );
  assert.equal(active.network.decide("a.example.com", 443).allowed, true);
});

/** True only when A and B are the same type (not merely assignable). */
type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends
  (<X>() => X extends B ? 1 : 2) ? true : false;

Deno.test("PlaceholderSecrets and UpstreamSettings are what their schemas give", () => {
  const checks: true[] = [
    true as Equal<
      PlaceholderSecrets,
      z.output<typeof PlaceholderSecretsSchema>
    >,
    true as Equal<UpstreamSettings, z.output<typeof UpstreamSchema>>,
  ];
  const inputForOutput: Equal<
    UpstreamSettings,
    z.input<typeof UpstreamSchema>
  > = false;
  assert.deepEqual([checks.length, inputForOutput], [2, false]);
});
