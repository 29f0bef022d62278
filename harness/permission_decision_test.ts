/**
 * The broker's decisions from the grants alone: paths are normalised before
 * they are matched and never clamped into a grant, each kind of check is
 * allowed only as far as its grant goes, and what is never allowed in a
 * sandbox (subprocesses, FFI, changing the scheduling priority, remote
 * imports) is denied in every mode that enforces. The socket side is in
 * permission_broker_test.ts; real programs in tests/permission_audit_test.ts.
 */
import assert from "node:assert/strict";
import { decidePermission } from "./permission_decision.ts";

const grants = {
  read: ["/inputs/data", "/scratch"],
  write: ["/scratch"],
  net: ["api.example.com:443", "*.example.org", "[::1]:8080"],
  env: ["PLACEHOLDER"],
  cwd: "/scratch",
};

Deno.test("decidePermission() normalises paths before matching ('..' cannot leave a grant)", () => {
  assert.equal(
    decidePermission(grants, "read", "/scratch/a").decision,
    "allow",
  );
  assert.equal(
    decidePermission(grants, "read", "/scratch/../etc/passwd").decision,
    "deny",
  );
  assert.equal(
    decidePermission(grants, "read", "/scratchpad").decision,
    "deny",
  );
  assert.equal(
    decidePermission(grants, "write", "/inputs/data/x").decision,
    "deny",
  );
  assert.equal(decidePermission(grants, "read", null).decision, "deny");
});

Deno.test("decidePermission() refuses a path that climbs above '/' (never clamps it into a grant)", () => {
  // Clamped, "/../scratch/a" was "/scratch/a" and allowed.
  assert.equal(
    decidePermission(grants, "read", "/../scratch/a").decision,
    "deny",
  );
  assert.equal(
    decidePermission(grants, "write", "../../scratch/a").decision,
    "deny",
  );
  // Control: climbing within the root still resolves.
  assert.equal(
    decidePermission(grants, "write", "../scratch/a").decision,
    "allow",
  );
});

Deno.test("decidePermission() quotes at most 200 characters of a value in its reason", () => {
  const value = `/etc/${"a".repeat(10_000)}`;
  const { decision, reason } = decidePermission(grants, "read", value);
  assert.equal(decision, "deny");
  assert.ok(reason.length < 400, `${reason.length}`);
  assert.match(reason, /… \(10005 characters\)' is not granted/);
});

/** A broker on a temporary socket, with a raw client connected to it. */

Deno.test("decidePermission() allows each kind only as far as its grant goes", () => {
  const cases: [string, string | null, "allow" | "deny"][] = [
    ["net", "api.example.com:443", "allow"],
    ["net", "API.EXAMPLE.COM:443", "allow"],
    ["net", "api.example.com:80", "deny"],
    ["net", "example.org:443", "allow"],
    ["net", "a.b.example.org:8443", "allow"],
    ["net", "example.org.evil.test:443", "deny"],
    ["net", "[::1]:8080", "allow"],
    ["net", "[::1]:8081", "deny"],
    ["net", null, "deny"],
    // A name lookup (no port) of a host granted on some port.
    ["net", "api.example.com", "allow"],
    ["net", "evil.example.com", "deny"],
    ["env", "PLACEHOLDER", "allow"],
    ["env", "HOME", "deny"],
    ["env", null, "deny"],
    ["run", "/bin/sh", "deny"],
    ["ffi", "/lib/x.so", "deny"],
    ["sys", "hostname", "deny"],
    ["sys", null, "deny"],
    ["import", "https://example.com/x.ts", "deny"],
    ["hrtime", null, "deny"],
  ];
  for (const [permission, value, expected] of cases) {
    assert.equal(
      decidePermission(grants, permission, value).decision,
      expected,
      `${permission} ${value}`,
    );
  }
  // Control: a policy that allows any host allows any host.
  assert.equal(
    decidePermission({ ...grants, net: "all" }, "net", "x.test:1").decision,
    "allow",
  );
});

Deno.test("decidePermission() with names answered inside the sandbox allows any lookup, never a connect the grants refuse", () => {
  const lookups = { ...grants, lookups: true };
  // A lookup (no port) of a refused name: answered inside, carries nothing.
  assert.equal(
    decidePermission(lookups, "net", "evil.example.com").decision,
    "allow",
  );
  // Attack: the connect that follows is still refused, naming airlock.
  const connect = decidePermission(lookups, "net", "evil.example.com:443");
  assert.equal(connect.decision, "deny");
  assert.match(connect.reason, /airlock's network policy/);
  // Attack: an address (a synthetic one, or a raw IP) with a port.
  for (const value of ["127.64.0.1:443", "1.1.1.1:443", "127.0.0.53:53"]) {
    assert.equal(decidePermission(lookups, "net", value).decision, "deny");
  }
  // Control: without it, the lookup of a refused name is refused.
  assert.equal(
    decidePermission(grants, "net", "evil.example.com").decision,
    "deny",
  );
});

Deno.test("decidePermission() resolves <TMP> as the temp directory and refuses other placeholders", () => {
  const withTmp = { ...grants, tmp: "/scratch/.tmp" };
  assert.equal(decidePermission(withTmp, "write", "<TMP>/x").decision, "allow");
  assert.equal(decidePermission(grants, "write", "<TMP>/x").decision, "deny");
  assert.equal(decidePermission(withTmp, "read", "<HOME>/x").decision, "deny");
});

Deno.test("decidePermission() in learn mode allows and records all but subprocesses and FFI", () => {
  for (const permission of ["read", "write", "net", "env", "sys"]) {
    assert.equal(
      decidePermission(grants, permission, "/etc/shadow", "learn").decision,
      "allow",
    );
  }
  assert.equal(decidePermission(grants, "run", "sh", "learn").decision, "deny");
  assert.equal(decidePermission(grants, "ffi", null, "learn").decision, "deny");
});

Deno.test("decidePermission() grants the whole environment for env: 'all' (unset names read as undefined)", () => {
  const all = { ...grants, env: "all" as const };
  for (const value of ["OPENAI_BASE_URL", "PLACEHOLDER", null]) {
    const answer = decidePermission(all, "env", value);
    assert.equal(answer.decision, "allow", `${value}`);
    assert.match(answer.reason, /airlock's variables only/);
  }
  // Control: a list grants only its names, and never the listing.
  assert.equal(decidePermission(grants, "env", "HOME").decision, "deny");
  assert.equal(decidePermission(grants, "env", null).decision, "deny");
});

Deno.test("decidePermission() answers system information of the granted kinds only, never setPriority", () => {
  const some = { ...grants, sys: ["hostname", "cpus"] as const };
  assert.equal(decidePermission(some, "sys", "hostname").decision, "allow");
  assert.equal(decidePermission(some, "sys", "cpus").decision, "allow");
  const refused = decidePermission(some, "sys", "osRelease");
  assert.equal(refused.decision, "deny");
  assert.equal(
    refused.reason,
    "system information 'osRelease' is refused by the policy's 'system' setting",
  );
  assert.equal(decidePermission(some, "sys", null).decision, "deny");
  assert.equal(decidePermission(some, "sys", "inspector").decision, "deny");
  // Attack: setPriority changes the scheduler; no grant names it, and even
  // a grant list that (wrongly) held it would not allow it.
  const wide = { ...grants, sys: ["setPriority"] as never[] };
  const priority = decidePermission(wide, "sys", "setPriority");
  assert.equal(priority.decision, "deny");
  assert.match(priority.reason, /never allowed/);
});
