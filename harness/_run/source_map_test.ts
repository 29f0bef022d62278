import assert from "node:assert/strict";
import { MAP_FILE, separateSourceMap } from "./source_map.ts";
import { Sandbox } from "../sandbox.ts";

const MARK = "//# sourceMappingURL=data:application/json;base64,";

Deno.test("separateSourceMap() moves the bundler's trailing map out and links it", () => {
  const map = JSON.stringify({ version: 3, sources: ["airlock:/main.ts"] });
  const out = separateSourceMap(`let a = 1;\n${MARK}${btoa(map)}\n`);
  assert.equal(out.code, `let a = 1;\n//# sourceMappingURL=${MAP_FILE}\n`);
  assert.equal(new TextDecoder().decode(out.map!), map);
  // The same bundle again: the same answer (kept for the next run).
  assert.equal(separateSourceMap(`let a = 1;\n${MARK}${btoa(map)}\n`), out);
});

Deno.test("separateSourceMap() leaves a program alone unless the map is base64 to its very end", () => {
  const map = btoa("{}");
  for (
    const js of [
      "console.log(1);\n", // no map
      `console.log(1);\n${MARK}${map}\nfoo\n`, // something follows the map
      `console.log(1);\n${MARK}${map} x\n`,
      `console.log(1);\n${MARK}not*base64\n`,
    ]
  ) {
    assert.deepEqual(separateSourceMap(js), { code: js, map: null }, js);
  }
});

Deno.test({
  name:
    "a sandbox run's uncaught error still names the program's own file and line, with the map beside main.js",
  ignore: Deno.uid() !== 0,
  async fn() {
    await using sandbox = await Sandbox.create({ policy: {} });
    const result = await sandbox.run({
      files: {
        "main.ts": 'import { fail } from "./lib/fail.ts";\n\nfail("boom");\n',
        "lib/fail.ts": "export function fail(what: string): never {\n" +
          "  const message: string = `failed: ${what}`;\n" +
          "  throw new Error(message);\n}\n",
      },
      entry: "main.ts",
    });
    assert.equal(result.exitCode, 1);
    assert.match(result.stderr, /failed: boom/);
    assert.match(result.stderr, /lib\/fail\.ts:3:9/);
    assert.match(result.stderr, /main\.ts:3:1/);
    assert.doesNotMatch(result.stderr, /main\.js/);
  },
});
