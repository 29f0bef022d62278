import assert from "node:assert/strict";
import { DEFAULT_LIMITS } from "../runtime/limits.ts";
import { schemaText } from "../cli/schema.ts";
import {
  loadPolicyFile,
  parsePolicy,
  PolicyError,
  type PolicyError as PolicyErrorType,
  policyJsonSchema,
} from "./policy.ts";

/** Runs `fn`, expects a PolicyError and returns it. */
function policyError(fn: () => unknown): PolicyErrorType {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof PolicyError, String(error));
    return error;
  }
  assert.fail("expected a PolicyError");
}

Deno.test("parsePolicy() fills every default, denying network and scratch", () => {
  for (const input of [{}, undefined, null]) {
    assert.deepEqual(parsePolicy(input), {
      limits: { ...DEFAULT_LIMITS },
      scratch: false,
      inputs: [],
      network: "deny-all",
      secrets: {},
      npm: { allow: [] },
      env: {},
      system: "allow",
      audit: { permissions: true },
      upstream: { connectTo: [], caCerts: [] },
    });
  }
});

Deno.test("parsePolicy() takes 'system' as allow, deny or a list of kinds, and refuses setPriority", () => {
  assert.equal(parsePolicy({ system: "deny" }).system, "deny");
  assert.deepEqual(parsePolicy({ system: ["cpus", "hostname"] }).system, [
    "cpus",
    "hostname",
  ]);
  for (const system of ["maybe", ["setPriority"], ["inspector"], true]) {
    const error = policyError(() => parsePolicy({ system }));
    assert.ok(
      error.issues.some((i) => i.path.startsWith("system")),
      JSON.stringify(error.issues),
    );
  }
});

Deno.test("parsePolicy() keeps given limits and defaults the others", () => {
  const policy = parsePolicy({ limits: { timeoutMs: 5000 }, scratch: true });
  assert.equal(policy.limits.timeoutMs, 5000);
  assert.equal(policy.limits.memoryMb, DEFAULT_LIMITS.memoryMb);
  assert.equal(policy.scratch, true);
});

Deno.test("parsePolicy() refuses unknown keys, naming the key and where it is", () => {
  const error = policyError(() =>
    parsePolicy({ netwrok: "allow", limits: { memMb: 1 } })
  );
  assert.deepEqual(
    error.issues.map((i) => i.path).sort(),
    ["", "limits"],
  );
  assert.match(error.message, /\(root\): unknown key 'netwrok'/);
  assert.match(error.message, /limits: unknown key 'memMb'/);
});

Deno.test("parsePolicy() lists every problem at once, each with its path", () => {
  const error = policyError(() =>
    parsePolicy({
      limits: { memoryMb: 1 },
      inputs: [{ source: "/data", target: "/etc/data" }],
    })
  );
  assert.deepEqual(error.issues.map((i) => i.path), [
    "limits.memoryMb",
    "inputs.0.target",
  ]);
  assert.match(error.message, /^Invalid policy: 2 problems\n/);
  assert.match(error.message, /\n {2}- limits\.memoryMb: /);
  assert.match(
    error.message,
    /\n {2}- inputs\.0\.target: must be under \/inputs\//,
  );
});

Deno.test("parsePolicy() refuses a malformed network policy, naming 'network'", () => {
  for (const network of [42, "allow-everything", true]) {
    const error = policyError(() => parsePolicy({ network }));
    assert.deepEqual(error.issues.map((i) => i.path), ["network"]);
  }
});

Deno.test("parsePolicy() reads HOST:SANDBOX input strings and resolves relative sources", () => {
  const policy = parsePolicy({
    inputs: [
      "data:/inputs/d",
      "/abs/file.txt",
      "rel/./dir/",
      "../up/x.csv",
      "/host/with:colon",
    ],
  }, { baseDir: "/base/dir" });
  assert.deepEqual(policy.inputs, [
    { source: "/base/dir/data", target: "/inputs/d", copy: false },
    { source: "/abs/file.txt", target: "/inputs/file.txt", copy: false },
    { source: "/base/dir/rel/dir", target: "/inputs/dir", copy: false },
    { source: "/base/up/x.csv", target: "/inputs/x.csv", copy: false },
    { source: "/host/with:colon", target: "/inputs/with:colon", copy: false },
  ]);
});

Deno.test("parsePolicy() refuses an input source or CA file climbing above '/' (never clamps it)", () => {
  // Clamped, "../../../etc" from /base/dir was /etc: a directory the
  // policy's writer never named.
  const error = policyError(() =>
    parsePolicy({
      inputs: ["../../../etc", "/../data", "fine"],
      upstream: { caCerts: ["../../../ca.pem", "ok.pem"] },
    }, { baseDir: "/base/dir" })
  );
  assert.deepEqual(error.issues.map((i) => i.path), [
    "inputs.0",
    "inputs.1",
    "upstream.caCerts.0",
  ]);
  assert.match(error.issues[0]!.message, /climbs above '\/'/);
  // Control: climbing within the filesystem still resolves.
  const policy = parsePolicy({
    inputs: ["../../data"],
    upstream: { caCerts: ["../ca.pem"] },
  }, { baseDir: "/base/dir" });
  assert.equal(policy.inputs[0]?.source, "/data");
  assert.deepEqual(policy.upstream.caCerts, ["/base/ca.pem"]);
});

Deno.test("parsePolicy() reads input objects with copy", () => {
  const policy = parsePolicy({
    inputs: [{ source: "src", target: "/inputs/s", copy: true }],
  }, { baseDir: "/b" });
  assert.deepEqual(policy.inputs, [
    { source: "/b/src", target: "/inputs/s", copy: true },
  ]);
});

Deno.test("parsePolicy() never lets an input target leave /inputs", () => {
  const outside = [
    { source: "/a", target: "/etc/passwd" },
    { source: "/a", target: "/inputs" },
    { source: "/a", target: "/inputs/../etc" },
    { source: "/a", target: "relative" },
    "/a:/inputs/../etc",
    "/a:/inputs/x/../../proc",
  ];
  for (const input of outside) {
    const error = policyError(() => parsePolicy({ inputs: [input] }));
    assert.ok(error.issues[0]?.path.startsWith("inputs.0"), error.message);
  }
  // A string whose sandbox part is not under /inputs/ is read as a host path
  // (host paths may contain colons): its target still stays under /inputs/.
  const policy = parsePolicy({ inputs: ["/a:/etc/passwd"] });
  assert.ok(policy.inputs[0]!.target.startsWith("/inputs/"));
});

Deno.test("parsePolicy() refuses a comma in a target (it would split the read grant)", () => {
  const error = policyError(() =>
    parsePolicy({ inputs: [{ source: "/a", target: "/inputs/a,/etc" }] })
  );
  assert.deepEqual(error.issues.map((i) => i.path), ["inputs.0.target"]);
  const fromName = policyError(() => parsePolicy({ inputs: ["/data/a,b"] }));
  assert.match(fromName.message, /give a target/);
});

Deno.test("parsePolicy() refuses two inputs with the same target", () => {
  const error = policyError(() =>
    parsePolicy({
      inputs: ["/a/x", { source: "/b/x" }, "/c:/inputs/other"],
    })
  );
  assert.deepEqual(error.issues, [{
    path: "inputs.1",
    message: "target '/inputs/x' is also used by inputs.0",
  }]);
});

Deno.test("parsePolicy() refuses targets that differ only by a trailing slash", () => {
  policyError(() =>
    parsePolicy({
      inputs: [
        { source: "/a", target: "/inputs/x" },
        { source: "/b", target: "/inputs/x/" },
      ],
    })
  );
});

Deno.test("parsePolicy() refuses '/' as a source", () => {
  const error = policyError(() => parsePolicy({ inputs: ["/"] }));
  assert.match(error.message, /inputs\.0: source must not be '\/'/);
});

Deno.test("loadPolicyFile() reads JSONC and resolves inputs against the file's directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airlock-policy-" });
  try {
    const path = `${dir}/policy.jsonc`;
    await Deno.writeTextFile(
      path,
      `{
  // five seconds
  "limits": { "timeoutMs": 5000, },
  /* data next to the policy */
  "inputs": ["data"],
}`,
    );
    const policy = await loadPolicyFile(path);
    assert.equal(policy.limits.timeoutMs, 5000);
    assert.deepEqual(policy.inputs, [
      { source: `${dir}/data`, target: "/inputs/data", copy: false },
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadPolicyFile() names the file in validation errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airlock-policy-" });
  try {
    const path = `${dir}/bad.json`;
    await Deno.writeTextFile(path, '{ "limits": { "cpuSeconds": 0 } }');
    await assert.rejects(loadPolicyFile(path), (error: unknown) => {
      assert.ok(error instanceof PolicyError);
      assert.ok(error.message.startsWith(`Invalid policy file '${path}'`));
      assert.deepEqual(error.issues.map((i) => i.path), ["limits.cpuSeconds"]);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadPolicyFile() fails closed on a missing, unreadable or unparsable file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airlock-policy-" });
  try {
    await assert.rejects(loadPolicyFile(`${dir}/missing.json`), (error) => {
      assert.ok(error instanceof PolicyError);
      assert.match(error.message, /cannot read the file/);
      return true;
    });
    // A directory cannot be read as a file, even by root.
    await assert.rejects(loadPolicyFile(dir), PolicyError);
    await Deno.writeTextFile(`${dir}/broken.json`, "{ not json");
    await assert.rejects(loadPolicyFile(`${dir}/broken.json`), (error) => {
      assert.ok(error instanceof PolicyError);
      assert.match(error.message, /Cannot parse JSON/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("policyJsonSchema() describes every top-level key and forbids others", () => {
  const schema = policyJsonSchema();
  const properties = schema.properties as Record<string, unknown>;
  assert.deepEqual(
    Object.keys(properties).sort(),
    [
      "$schema",
      "audit",
      "env",
      "inputs",
      "limits",
      "network",
      "npm",
      "scratch",
      "secrets",
      "system",
      "upstream",
    ],
  );
  assert.equal(schema.additionalProperties, false);
});

Deno.test("schema/policy.schema.json matches policyJsonSchema()", async () => {
  const committed = await Deno.readTextFile(
    new URL("../schema/policy.schema.json", import.meta.url),
  );
  // A plain comparison: a diff of the whole schema would bury the fix.
  assert.ok(
    committed === schemaText(),
    "schema/policy.schema.json is out of date: run 'deno task schema'",
  );
});
