/**
 * The airlock-only `npm` option of the `@deno/sandbox`-compatible API:
 * listed packages can be imported by `deno.run()` programs (installed and
 * bundled by the harness); anything else is refused naming the package.
 *
 * Reaches the npm registry once (the one network CI machines have) to fill
 * a private cache.
 */

import assert from "node:assert/strict";
import { Sandbox } from "./mod.ts";
import { airlockSandboxOptions, checkOptions } from "./options.ts";

Deno.test("airlock: { npm, npmCacheDir } become the policy's npm.allow and the sandbox's cache", () => {
  const options = {
    airlock: { npm: ["ms@^2"], npmCacheDir: "/var/tmp/cache" },
  };
  const mapped = airlockSandboxOptions(options, checkOptions(options), []);
  assert.deepEqual(mapped.policy?.npm, { allow: ["ms@^2"] });
  assert.equal(mapped.npmCacheDir, "/var/tmp/cache");
  const none = airlockSandboxOptions({}, checkOptions({}), []);
  assert.equal(none.policy?.npm, undefined, "no packages unless listed");
});

Deno.test("deno.run() imports the npm packages listed in airlock.npm, entrypoint and inline code alike; others are refused by name", async () => {
  const npmCacheDir = await Deno.makeTempDir({ prefix: "airlock-sdk-npm-" });
  try {
    await using sandbox = await Sandbox.create({
      allowNet: [],
      airlock: { npm: ["is-number@^7", "left-pad@1.3.0"], npmCacheDir },
    });
    await sandbox.fs.writeTextFile(
      "main.ts",
      `import isNumber from "npm:is-number@7.0.0";
       import leftPad from "left-pad";
       console.log(isNumber(42), isNumber("x"), leftPad("7", 3, "0"));`,
    );
    const fromFile = await sandbox.deno.run({
      entrypoint: "main.ts",
      stdout: "piped",
      stderr: "piped",
    });
    const output = await fromFile.output();
    assert.equal(output.stdoutText, "true false 007\n", output.stderrText!);
    const inline = await sandbox.deno.run({
      code: `import isNumber from "is-number"; console.log(isNumber("12"))`,
      stdout: "piped",
    });
    assert.equal((await inline.output()).stdoutText, "true\n");
    await assert.rejects(
      sandbox.deno.run({ code: `import ms from "npm:ms"; console.log(ms)` }),
      /'ms' is not in the policy's npm allowlist/,
    );
    await assert.rejects(
      sandbox.deno.run({ code: `import n from "npm:is-number@6"; n` }),
      /is-number/,
      "the listed range is a ceiling",
    );

    // Control: the same program without the option is refused.
    await using plain = await Sandbox.create({
      allowNet: [],
      airlock: { npmCacheDir },
    });
    await plain.fs.writeTextFile("main.ts", `import n from "npm:is-number"; n`);
    await assert.rejects(
      plain.deno.run({ entrypoint: "main.ts" }),
      (e: Error) =>
        e.name === "BundleError" && /'npm:is-number'/.test(e.message) &&
        e.message.includes("Sandbox.create({ airlock: { npm: ["),
    );
    // eval and REPLs have no module loader: import() says where to go.
    await assert.rejects(
      sandbox.deno.eval(`(await import("npm:is-number")).default(1)`),
      /Cannot import 'npm:is-number' in sandbox\.deno\.eval\(\) or a REPL: .*sandbox\.deno\.run\(\)/,
    );
  } finally {
    await Deno.remove(npmCacheDir, { recursive: true });
  }
});
