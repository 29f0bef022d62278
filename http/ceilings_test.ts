import assert from "node:assert/strict";
import { DEFAULT_LIMITS } from "../runtime/limits.ts";
import { parsePolicy } from "../harness/policy.ts";
import {
  ceilingIssues,
  clientPolicyIssues,
  DEFAULT_CEILINGS,
  NO_CLIENT_RULES,
  resolveCeilings,
  usesNpm,
  withDefaultLimits,
} from "./ceilings.ts";

Deno.test("DEFAULT_CEILINGS refuse what the tenants issue found clients could take", () => {
  const asked = {
    outputBytes: 1024 ** 3,
    tmpMb: 4096,
    memoryMb: 65_536,
    processes: 4096,
  };
  const issues = ceilingIssues(asked, DEFAULT_CEILINGS, "policy.limits");
  assert.deepEqual(issues.map((i) => i.path).sort(), [
    "policy.limits.memoryMb",
    "policy.limits.outputBytes",
    "policy.limits.processes",
    "policy.limits.tmpMb",
  ]);
  const tmp = issues.find((i) => i.path.endsWith("tmpMb"))!;
  assert.equal(
    tmp.message,
    "4096 MiB is over this server's ceiling of 256 MiB",
  );
  // The policy's own defaults are within the default ceilings.
  assert.deepEqual(
    ceilingIssues(DEFAULT_LIMITS, DEFAULT_CEILINGS, "policy.limits"),
    [],
  );
});

Deno.test("resolveCeilings() lowers unwritten defaults to their ceiling and refuses written ones above it", () => {
  const { ceilings, issues } = resolveCeilings({
    limits: { memoryMb: 128, timeoutMs: 60_000 },
    defaults: { timeoutMs: 10_000 },
    runsPerToken: 4,
  });
  assert.deepEqual(issues, []);
  assert.equal(ceilings.defaults.memoryMb, 128);
  assert.equal(ceilings.defaults.timeoutMs, 10_000);
  assert.equal(ceilings.defaults.tmpMb, DEFAULT_LIMITS.tmpMb);
  assert.equal(ceilings.runsPerToken, 4);
  assert.equal(ceilings.sandboxes, DEFAULT_CEILINGS.sandboxes);
  // A token's own ceilings go over the server's.
  const own = resolveCeilings({ runsPerSandbox: 1 }, ceilings).ceilings;
  assert.equal(own.limits.memoryMb, 128);
  assert.equal(own.runsPerSandbox, 1);
  const bad = resolveCeilings({
    limits: { tmpMb: 16 },
    defaults: { tmpMb: 64 },
  });
  assert.deepEqual(bad.issues, [{
    path: "defaults.tmpMb",
    message: "64 MiB is over its ceiling (limits.tmpMb: 16 MiB)",
  }]);
});

Deno.test("withDefaultLimits() fills only the limits a client leaves out", () => {
  const defaults = { ...DEFAULT_LIMITS, timeoutMs: 5_000 };
  const filled = parsePolicy(
    withDefaultLimits({ limits: { memoryMb: 64 }, scratch: true }, defaults),
  );
  assert.equal(filled.limits.memoryMb, 64);
  assert.equal(filled.limits.timeoutMs, 5_000);
  assert.equal(filled.scratch, true);
  assert.equal(
    parsePolicy(withDefaultLimits(undefined, defaults)).limits.timeoutMs,
    5_000,
  );
  // What is not a policy object is left for the parser to report.
  assert.equal(withDefaultLimits("x", defaults), "x");
  const odd = { limits: [1] };
  assert.equal(withDefaultLimits(odd, defaults), odd);
});

Deno.test("clientPolicyIssues() refuses each part that reaches the server unless its switch is on", () => {
  const policy = {
    inputs: ["/etc/passwd"],
    upstream: { connectTo: ["a.test:443:127.0.0.1:22"], caCerts: ["/x.pem"] },
    network: { allow: ["a.test"], subnets: { allow: ["10.0.0.0/8"] } },
  };
  assert.deepEqual(
    clientPolicyIssues(policy, NO_CLIENT_RULES).map((i) => i.path),
    [
      "policy.inputs",
      "policy.upstream.connectTo",
      "policy.upstream.caCerts",
      "policy.network.subnets.allow",
    ],
  );
  const some = { ...NO_CLIENT_RULES, inputs: true, subnets: true };
  assert.deepEqual(
    clientPolicyIssues(policy, some).map((i) => i.path),
    ["policy.upstream.connectTo", "policy.upstream.caCerts"],
  );
  // Empty lists ask for nothing.
  assert.deepEqual(
    clientPolicyIssues(
      { inputs: [], upstream: { connectTo: [] } },
      NO_CLIENT_RULES,
    ),
    [],
  );
  assert.equal(usesNpm({ npm: { allow: ["ms"] } }), true);
  assert.equal(usesNpm({ npm: { allow: [] } }), false);
  assert.equal(usesNpm(undefined), false);
});
