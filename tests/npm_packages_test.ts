/**
 * npm packages in sandboxed programs: resolved and bundled by the harness
 * from the policy's allowlist; the sandbox never fetches code.
 *
 * These tests reach the npm registry once (the one network the CI machines
 * have) to fill a private cache; the second run proves the cache is used.
 */

import assert from "node:assert/strict";
import { BundleError, Sandbox } from "../mod.ts";

const PROGRAM = `
  import isNumber from "npm:is-number@7.0.0";
  import leftPad from "left-pad";
  import { join } from "path";
  console.log(isNumber(42), isNumber("x"), leftPad("7", 3, "0"), join("a", "b"));
`;

Deno.test("npm: an allowed package is installed by the harness, bundled, and works; the second run is served from the cache", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "airlock-npm-test-" });
  try {
    const policy = { npm: { allow: ["is-number", "left-pad@1.3.0"] } };
    await using first = await Sandbox.create({ policy, npmCacheDir: cacheDir });
    const t0 = performance.now();
    const one = await first.run({ code: PROGRAM });
    const firstMs = performance.now() - t0;
    assert.equal(one.stdout, "true false 007 a/b\n", one.stderr);
    const installed = [...Deno.readDirSync(cacheDir)].map((e) => e.name).filter(
      (n) => !n.startsWith("."),
    );
    assert.equal(installed.length, 2, JSON.stringify(installed));

    // Offline from now on: any install attempt would go to a dead registry.
    const previous = Deno.env.get("NPM_CONFIG_REGISTRY");
    Deno.env.set("NPM_CONFIG_REGISTRY", "http://127.0.0.1:9/");
    try {
      await using second = await Sandbox.create({
        policy,
        npmCacheDir: cacheDir,
      });
      const t1 = performance.now();
      const two = await second.run({ code: PROGRAM });
      const secondMs = performance.now() - t1;
      assert.equal(two.stdout, "true false 007 a/b\n", two.stderr);
      console.log(
        `npm run: first ${firstMs.toFixed(0)} ms (install), second ${
          secondMs.toFixed(0)
        } ms (cache)`,
      );
    } finally {
      if (previous === undefined) Deno.env.delete("NPM_CONFIG_REGISTRY");
      else Deno.env.set("NPM_CONFIG_REGISTRY", previous);
    }
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("npm: a package outside the allowlist is a clear error naming it, and nothing is installed", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "airlock-npm-test-" });
  try {
    await using sandbox = await Sandbox.create({
      policy: { npm: { allow: ["is-number"] } },
      npmCacheDir: cacheDir,
    });
    for (
      const code of [
        `import pad from "npm:left-pad"; console.log(pad)`,
        `import pad from "left-pad"; console.log(pad)`,
      ]
    ) {
      await assert.rejects(
        () => sandbox.run({ code }),
        (error: unknown) =>
          error instanceof BundleError &&
          /'left-pad' is not in the policy's npm allowlist/.test(error.message),
      );
    }
    assert.deepEqual(
      [...Deno.readDirSync(cacheDir)].filter((e) => !e.name.startsWith(".")),
      [],
    );
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("npm: without an allowlist npm imports are refused, naming the import", async () => {
  await using sandbox = await Sandbox.create();
  await assert.rejects(
    () =>
      sandbox.run({
        code: `import isNumber from "npm:is-number"; console.log(isNumber(1));`,
      }),
    (error: unknown) =>
      error instanceof BundleError && /npm:is-number/.test(error.message) &&
      /npm\.allow/.test(error.message),
  );
});

Deno.test("npm: a package that does not exist fails clearly, naming it", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "airlock-npm-test-" });
  try {
    const name = "airlock-no-such-package-7f3e9a1c";
    await using sandbox = await Sandbox.create({
      policy: { npm: { allow: [name] } },
      npmCacheDir: cacheDir,
    });
    await assert.rejects(
      () => sandbox.run({ code: `import x from "${name}"; console.log(x);` }),
      (error: unknown) =>
        error instanceof BundleError && error.message.includes(name),
    );
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("npm: the policy's range is a ceiling: a program's range outside it is refused naming both, before any install", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "airlock-npm-test-" });
  try {
    await using sandbox = await Sandbox.create({
      policy: { npm: { allow: ["ms@^2.1.0"] } },
      npmCacheDir: cacheDir,
    });
    for (const range of ["0.7.1", "^2.0.0", "*"]) {
      await assert.rejects(
        () =>
          sandbox.run({
            code: `import ms from "npm:ms@${range}"; console.log(ms(1));`,
          }),
        (error: unknown) =>
          error instanceof BundleError &&
          error.message.includes(`'ms@${range}'`) &&
          error.message.includes("'ms@^2.1.0'"),
      );
    }
    const refused = sandbox.auditTrail.filter((e) =>
      e.kind === "import-refused"
    );
    assert.equal(refused.length, 3, JSON.stringify(refused));
    assert.deepEqual(
      [...Deno.readDirSync(cacheDir)].filter((e) => !e.name.startsWith(".")),
      [],
      "nothing installed",
    );
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("npm: ranges that resolve to one version share one install, placed by version, without the installer's own cache", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "airlock-npm-test-" });
  try {
    await using sandbox = await Sandbox.create({
      policy: { npm: { allow: ["ms@^2"] } },
      npmCacheDir: cacheDir,
    });
    for (const spec of ["npm:ms@^2.1", "npm:ms@2", "ms", "npm:ms@>=2.0.0 <3"]) {
      const result = await sandbox.run({
        code: `import ms from "${spec}"; console.log(ms(60000));`,
      });
      assert.equal(result.stdout, "1m\n", result.stderr);
    }
    const installs = [...Deno.readDirSync(cacheDir)].map((e) => e.name);
    assert.equal(installs.length, 1, JSON.stringify(installs));
    assert.match(installs[0]!, /^ms@2\.\d+\.\d+$/);
    const inside = [...Deno.readDirSync(`${cacheDir}/${installs[0]}`)].map((
      e,
    ) => e.name).sort();
    assert.ok(inside.includes("node_modules"), JSON.stringify(inside));
    assert.ok(!inside.includes(".deno-dir"), "the installer's cache is gone");
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});
