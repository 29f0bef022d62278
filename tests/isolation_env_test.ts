/**
 * Environment isolation: a secret in the harness's environment reaches no
 * byte of the program's output, whichever way the program looks for it:
 * through the public API (Deno's permissions and the launcher's empty
 * environment) and with Deno allowing everything (the launcher alone).
 */

import assert from "node:assert/strict";
import { Sandbox } from "../mod.ts";
import { runNamespaceOnly } from "./kits/namespace_only.ts";

const CANARY_NAME = "AIRLOCK_CANARY_SECRET";

/** Each program tries one way in and prints everything it got, then "done". */
const ATTEMPTS: Record<string, string> = {
  "Deno.env.toObject()": `
    try { console.log(JSON.stringify(Deno.env.toObject())); } catch (e) { console.log("refused", e.name); }`,
  "Deno.env.get()": `
    try { console.log(String(Deno.env.get("${CANARY_NAME}"))); } catch (e) { console.log("refused", e.name); }`,
  "process.env (node:process)": `
    import process from "node:process";
    try { console.log(JSON.stringify({ ...process.env }), String(process.env.${CANARY_NAME})); } catch (e) { console.log("refused", e.name); }`,
  "/proc/self/environ": procRead("/proc/self/environ"),
  "/proc/1/environ": procRead("/proc/1/environ"),
  "/proc/1/cmdline": procRead("/proc/1/cmdline"),
  "every /proc/*/environ and cmdline": `
    try {
      for (const e of Deno.readDirSync("/proc")) {
        if (!/^\\d+$/.test(e.name)) continue;
        for (const f of ["environ", "cmdline"]) {
          try { console.log(e.name, f, JSON.stringify(Deno.readTextFileSync("/proc/" + e.name + "/" + f))); } catch (err) { console.log("refused", err.name); }
        }
      }
    } catch (e) { console.log("refused", e.name); }`,
};

function procRead(path: string): string {
  return `
    try { console.log(JSON.stringify(Deno.readTextFileSync("${path}"))); } catch (e) { console.log("refused", e.name); }`;
}

/** Runs `fn` with a fresh canary in the harness's environment. */
async function withCanary(fn: (canary: string) => Promise<void>) {
  const canary = `canary-${crypto.randomUUID()}`;
  Deno.env.set(CANARY_NAME, canary);
  try {
    await fn(canary);
  } finally {
    Deno.env.delete(CANARY_NAME);
  }
}

function assertNoCanary(
  canary: string,
  what: string,
  ...outputs: Uint8Array[]
): void {
  const needle = new TextEncoder().encode(canary);
  for (const bytes of outputs) {
    assert.equal(
      indexOfBytes(bytes, needle),
      -1,
      `${what}: the canary reached the output`,
    );
  }
}

function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

for (const [attempt, code] of Object.entries(ATTEMPTS)) {
  Deno.test(`sandbox cannot see a harness secret via ${attempt}`, async () => {
    await withCanary(async (canary) => {
      await using sandbox = await Sandbox.create();
      const result = await sandbox.run({
        code: `${code}\nconsole.log("done");`,
      });
      assert.equal(result.reason, "exit", result.stderr);
      assert.ok(result.stdout.endsWith("done\n"), result.stderr);
      assertNoCanary(canary, attempt, result.stdoutBytes, result.stderrBytes);
    });
  });

  Deno.test(`namespace alone: sandbox cannot see a harness secret via ${attempt}`, async () => {
    await withCanary(async (canary) => {
      const result = await runNamespaceOnly(`${code}\nconsole.log("done");`);
      assert.equal(result.code, 0, result.stderr);
      assert.ok(result.stdout.endsWith("done\n"), result.stderr);
      // With Deno's wall down, the reads really happen: nothing is refused.
      assert.ok(!result.stdout.includes("refused"), result.stdout);
      assertNoCanary(
        canary,
        attempt,
        result.stdoutBytes,
        new TextEncoder().encode(result.stderr),
      );
    });
  });
}

Deno.test("namespace alone: the program's environment holds only the launcher's variables", async () => {
  await withCanary(async () => {
    const result = await runNamespaceOnly(
      `console.log(JSON.stringify(Deno.env.toObject()));`,
    );
    const env = JSON.parse(result.stdout) as Record<string, string>;
    const harness = Deno.env.toObject();
    const launcherOwn = ["DENO_DIR", "DENO_NO_UPDATE_CHECK", "NO_COLOR"];
    for (const [name, value] of Object.entries(env)) {
      if (launcherOwn.includes(name)) continue;
      assert.notEqual(harness[name], value, `harness variable ${name} leaked`);
    }
    assert.equal(env[CANARY_NAME], undefined);
  });
});

/** A program that lists its environment every way an SDK does. */
const LISTING = `
  import process from "node:process";
  const listed = {
    toObject: Deno.env.toObject(),
    spread: { ...process.env },
    keys: Object.keys(process.env),
    json: JSON.parse(JSON.stringify(process.env)),
    canary: process.env.${CANARY_NAME} ?? "unset",
    byName: Deno.env.get("${CANARY_NAME}") ?? "unset",
  };
  console.log(JSON.stringify(listed));`;

for (const permissions of [true, false]) {
  Deno.test(
    `sandbox lists its environment (${
      permissions ? "broker" : "Deno's flags"
    }): only airlock's variables, no canary, even when a placeholder and an injected header hold it`,
    async () => {
      await withCanary(async (canary) => {
        await using sandbox = await Sandbox.create({
          policy: {
            audit: { permissions },
            env: { PLAIN_SETTING: "visible" },
            network: {
              allow: {
                "api.example.test": [{
                  transform: [{
                    headers: { authorization: `Bearer \${env:${CANARY_NAME}}` },
                  }],
                }],
              },
            },
            secrets: {
              API_TOKEN: {
                hosts: ["api.example.test"],
                value: `\${env:${CANARY_NAME}}`,
              },
            },
          },
        });
        const result = await sandbox.run({ code: LISTING });
        assert.equal(result.reason, "exit", result.stderr);
        assertNoCanary(
          canary,
          "listing",
          result.stdoutBytes,
          result.stderrBytes,
        );
        const listed = JSON.parse(result.stdout) as {
          toObject: Record<string, string>;
          spread: Record<string, string>;
          keys: string[];
          json: Record<string, string>;
          canary: string;
          byName: string;
        };
        // Positive control: the listing really happened, and holds the
        // sandbox's own settings.
        assert.equal(listed.toObject.PLAIN_SETTING, "visible");
        assert.match(listed.toObject.API_TOKEN ?? "", /^airlock-placeholder-/);
        assert.ok(listed.toObject.HTTPS_PROXY?.startsWith("http://127.0.0.1:"));
        assert.deepEqual(listed.spread, listed.toObject);
        assert.deepEqual(listed.json, listed.toObject);
        assert.deepEqual(
          [...listed.keys].sort(),
          Object.keys(listed.toObject).sort(),
        );
        assert.equal(listed.canary, "unset");
        assert.equal(listed.byName, "unset");
        const harness = Deno.env.toObject();
        for (const [name, value] of Object.entries(listed.toObject)) {
          if (value.length <= 1 || name === "PATH") continue; // "1", ""
          assert.notEqual(
            harness[name],
            value,
            `harness variable ${name} leaked`,
          );
        }
      });
    },
  );
}
