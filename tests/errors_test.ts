/**
 * Errors: bad policies, missing tools and unrunnable programs are refused
 * with errors that name every problem, and a refused policy starts nothing.
 */

import assert from "node:assert/strict";
import {
  BundleError,
  InputError,
  MissingHostToolError,
  PolicyError,
  Sandbox,
  SandboxSetupError,
} from "../mod.ts";
import type { PolicyInput } from "../mod.ts";
import { discoverHostTools } from "../runtime/host_tools.ts";

/**
 * Asserts `fn` left no workspace in the parent directory it is given: a
 * private one, not the shared /tmp, where another test or a previous run
 * can make or leave workspaces of its own.
 */
async function assertNoNewWorkspace(
  fn: (tmpDir: string) => Promise<void>,
): Promise<void> {
  const tmpDir = await Deno.makeTempDir({ prefix: "airlock-errors-" });
  try {
    // Traversable by the sandbox uids, as a workspace parent must be.
    await Deno.chmod(tmpDir, 0o711);
    await fn(tmpDir);
    const left = [...Deno.readDirSync(tmpDir)].map((e) => e.name);
    assert.deepEqual(left, [], "a workspace was left");
  } finally {
    await Deno.remove(tmpDir, { recursive: true });
  }
}

async function policyError(policy: unknown): Promise<PolicyError> {
  let caught: unknown;
  await assertNoNewWorkspace(async (tmpDir) => {
    try {
      await using _sandbox = await Sandbox.create({
        tmpDir,
        policy: policy as PolicyInput,
      });
    } catch (error) {
      caught = error;
    }
  });
  assert.ok(caught instanceof PolicyError, `got ${caught}`);
  return caught;
}

Deno.test("a malformed policy throws PolicyError listing every problem and starts nothing", async () => {
  const error = await policyError({
    limits: { memoryMb: "lots", timeoutMs: -1, bogusLimit: 3 },
    scratch: "yes",
    inputs: [{ source: "/etc", target: "/etc" }, 42],
    network: "allow-everything",
    extraKey: true,
  });
  const paths = error.issues.map((i) => i.path);
  for (
    const expected of [
      "limits.memoryMb",
      "limits.timeoutMs",
      "limits",
      "scratch",
      "inputs.0.target",
      "inputs.1",
      "network",
      "",
    ]
  ) {
    assert.ok(paths.includes(expected), `missing '${expected}' in ${paths}`);
  }
  assert.match(error.message, /bogusLimit/);
  assert.match(error.message, /extraKey/);
  for (const issue of error.issues) {
    assert.ok(error.message.includes(issue.message), issue.message);
  }
});

Deno.test("a policy with an unknown top-level key is refused", async () => {
  const error = await policyError({ scratch: true, allowEverything: true });
  assert.deepEqual(error.issues.map((i) => i.path), [""]);
  assert.match(error.issues[0]!.message, /'allowEverything'/);
});

Deno.test("a policy with a wrongly typed value is refused", async () => {
  const error = await policyError({ limits: { timeoutMs: "30s" } });
  assert.deepEqual(error.issues.map((i) => i.path), ["limits.timeoutMs"]);
});

Deno.test("a policy whose string input target contains '..' is refused", async () => {
  const error = await policyError({
    inputs: ["/etc/hostname:/inputs/../etc/x"],
  });
  assert.deepEqual(error.issues.map((i) => i.path), ["inputs.0"]);
});

Deno.test("a policy lists every bad input target at once, string and object forms", async () => {
  const error = await policyError({
    inputs: ["/etc/hostname:/inputs/../etc/x", {
      source: "/etc/hostname",
      target: "/airlock/main.js",
    }],
  });
  assert.deepEqual(error.issues.map((i) => i.path).sort(), [
    "inputs.0",
    "inputs.1.target",
  ]);
});

Deno.test("a policy lists duplicate input targets beside schema problems", async () => {
  const error = await policyError({
    limits: { timeoutMs: "30s" },
    inputs: ["/etc/hostname:/inputs/x", "/etc/os-release:/inputs/x"],
  });
  assert.deepEqual(error.issues.map((i) => i.path).sort(), [
    "inputs.1",
    "limits.timeoutMs",
  ]);
});

Deno.test("a policy that is not an object is refused", async () => {
  for (const policy of [42, "deny-all", [1, 2]]) {
    await policyError(policy);
  }
});

Deno.test("a missing input throws InputError and leaves no workspace", async () => {
  await assertNoNewWorkspace(async (tmpDir) => {
    await assert.rejects(
      Sandbox.create({
        tmpDir,
        policy: { inputs: ["/nonexistent/input.csv"] },
      }),
      InputError,
    );
  });
});

Deno.test("a missing bwrap makes run() throw SandboxSetupError", async () => {
  const tools = await discoverHostTools();
  await using sandbox = await Sandbox.create({
    tools: { ...tools, bwrap: "/nonexistent/bwrap" },
  });
  await assert.rejects(
    sandbox.run({ code: "console.log(1)" }),
    (e: unknown) =>
      e instanceof SandboxSetupError && /bwrap/.test(e.message) &&
      /doctor/.test(e.message),
  );
});

Deno.test("discoverHostTools on a PATH without bwrap throws MissingHostToolError naming bwrap", async () => {
  const empty = await Deno.makeTempDir({ prefix: "airlock-test-path-" });
  try {
    await assert.rejects(
      discoverHostTools({ path: empty }),
      (e: unknown) =>
        e instanceof MissingHostToolError && e.tool === "bwrap" &&
        /bubblewrap/.test(e.fix) && e.message.includes("bwrap"),
    );
  } finally {
    await Deno.remove(empty);
  }
});

Deno.test("an npm: import throws BundleError naming the import", async () => {
  await using sandbox = await Sandbox.create();
  await assert.rejects(
    sandbox.run({
      code: `import leftPad from "npm:left-pad@1.3.0"; console.log(leftPad);`,
    }),
    (e: unknown) =>
      e instanceof BundleError &&
      e.problems.some((p) => p.message.includes("npm:left-pad@1.3.0")) &&
      e.message.includes("npm:left-pad@1.3.0"),
  );
});

Deno.test("jsr:, URL and bare imports throw BundleError naming each import", async () => {
  await using sandbox = await Sandbox.create();
  for (
    const spec of [
      "jsr:@std/path",
      "https://deno.land/std/path/mod.ts",
      "lodash",
    ]
  ) {
    await assert.rejects(
      sandbox.run({ code: `import x from "${spec}"; console.log(x);` }),
      (e: unknown) => e instanceof BundleError && e.message.includes(spec),
      spec,
    );
  }
});

Deno.test("a syntax error throws BundleError with its location", async () => {
  await using sandbox = await Sandbox.create();
  await assert.rejects(
    sandbox.run({ code: "const ok = 1;\nconst = ;" }),
    (e: unknown) =>
      e instanceof BundleError && e.problems[0]?.line === 2 &&
      e.problems[0]?.file === "main.ts",
  );
});

Deno.test("a program file importing outside its own directory throws BundleError", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airlock-test-prog-" });
  try {
    await Deno.mkdir(`${dir}/app`);
    await Deno.writeTextFile(`${dir}/outside.ts`, `export const secret = "s";`);
    await Deno.writeTextFile(
      `${dir}/app/main.ts`,
      `import { secret } from "../outside.ts"; console.log(secret);`,
    );
    await using sandbox = await Sandbox.create();
    await assert.rejects(
      sandbox.run({ path: `${dir}/app/main.ts` }),
      (e: unknown) =>
        e instanceof BundleError && e.message.includes("../outside.ts"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
