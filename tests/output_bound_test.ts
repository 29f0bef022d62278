/**
 * The library's run() holds a run's output in memory, as bytes and as a
 * string, so its cap (`outputBytes`) must stay below what a string can
 * hold: a 1 GiB cap let a 600 MiB print end in `TypeError: buffer exceeds
 * maximum length` instead of a result.
 */

import assert from "node:assert/strict";
import { parsePolicy, PolicyError, run } from "../mod.ts";

const MAX_OUTPUT = 256 * 1024 * 1024;

Deno.test("outputBytes past 256 MiB is refused: a run result could not hold it", () => {
  assert.throws(
    () => parsePolicy({ limits: { outputBytes: 1024 ** 3 } }),
    (error: unknown) =>
      error instanceof PolicyError &&
      error.issues.some((i) => i.path === "limits.outputBytes"),
  );
  assert.equal(
    parsePolicy({ limits: { outputBytes: MAX_OUTPUT } }).limits.outputBytes,
    MAX_OUTPUT,
  );
});

Deno.test("run() at the largest outputBytes cuts a 300 MiB print and returns a result, not a TypeError", async () => {
  const result = await run(
    `const chunk = new TextEncoder().encode("y".repeat(65535) + "\\n");
for (let i = 0; i < 4800; i++) await Deno.stdout.write(chunk);`,
    { policy: { limits: { outputBytes: MAX_OUTPUT, timeoutMs: 120_000 } } },
  );
  assert.equal(result.reason, "output-limit");
  assert.equal(result.truncated, true);
  assert.equal(result.stdoutBytes.length, MAX_OUTPUT);
  assert.equal(result.stdout.length, MAX_OUTPUT);
  assert.ok(result.stdout.endsWith("y\n"));
});
