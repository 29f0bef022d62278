/**
 * Concurrency: many sandboxes at once share nothing; each result carries
 * exactly its own program's output and exit code.
 */

import assert from "node:assert/strict";
import { Sandbox } from "../mod.ts";
import type { RunResult } from "../mod.ts";

const SANDBOXES = 20;
const REPEATS = 500;

function token(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(8)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Prints its token REPEATS times to stdout and stderr, then exits `code`. */
function program(tok: string, code: number): string {
  return `
    const tok = ${JSON.stringify(tok)};
    for (let i = 0; i < ${REPEATS}; i++) {
      console.log(tok);
      console.error("err-" + tok);
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    Deno.exit(${code});`;
}

Deno.test(`${SANDBOXES} concurrent sandboxes each get exactly their own output and exit code`, async () => {
  const jobs = Array.from({ length: SANDBOXES }, (_, i) => ({
    token: token(),
    code: 10 + i,
  }));
  const results = await Promise.all(
    jobs.map(async (job): Promise<RunResult> => {
      await using sandbox = await Sandbox.create({
        // A hang guard only: 20 sandboxes at once on a loaded 2-core
        // machine took 46 s in all (measured beside two CPU burners).
        policy: { scratch: true, limits: { timeoutMs: 300_000 } },
      });
      return await sandbox.run({ code: program(job.token, job.code) });
    }),
  );
  const sandboxIds = new Set(results.map((r) => r.sandboxId));
  assert.equal(sandboxIds.size, SANDBOXES, "distinct sandbox ids");
  results.forEach((result, i) => {
    const job = jobs[i]!;
    assert.equal(
      result.reason,
      "exit",
      `sandbox ${i}: ${result.stderr.slice(0, 300)}`,
    );
    assert.equal(result.exitCode, job.code, `sandbox ${i} exit code`);
    assert.equal(
      result.stdout,
      `${job.token}\n`.repeat(REPEATS),
      `sandbox ${i} stdout`,
    );
    assert.equal(
      result.stderr,
      `err-${job.token}\n`.repeat(REPEATS),
      `sandbox ${i} stderr`,
    );
    assert.equal(result.truncated, false);
  });
});

Deno.test("concurrent runs of one sandbox each get their own output", async () => {
  await using sandbox = await Sandbox.create({ policy: { scratch: true } });
  const tokens = Array.from({ length: 5 }, token);
  const results = await Promise.all(
    tokens.map((tok, i) => sandbox.run({ code: program(tok, i) })),
  );
  assert.equal(new Set(results.map((r) => r.runId)).size, tokens.length);
  results.forEach((result, i) => {
    assert.equal(result.exitCode, i);
    assert.equal(result.stdout, `${tokens[i]}\n`.repeat(REPEATS));
  });
});

Deno.test("concurrent sandboxes cannot see each other's scratch files", async () => {
  const boxes = await Promise.all(
    Array.from(
      { length: 5 },
      () => Sandbox.create({ policy: { scratch: true } }),
    ),
  );
  try {
    const tokens = boxes.map(() => token());
    const results = await Promise.all(boxes.map((box, i) =>
      box.run({
        code: `Deno.writeTextFileSync("mine-${tokens[i]}", "x");
               await new Promise((r) => setTimeout(r, 200));
               console.log([...Deno.readDirSync("/scratch")].map((e) => e.name).join(","));`,
      })
    ));
    results.forEach((result, i) => {
      assert.equal(result.stdout, `mine-${tokens[i]}\n`, result.stderr);
    });
  } finally {
    await Promise.all(boxes.map((box) => box.close()));
  }
});
