/**
 * Many sandboxes at once through one injector (the shared default one: one
 * CA, one upstream connection pool), each with its own secret injected
 * toward the same echo upstream. Every request must carry exactly its own
 * sandbox's secret (pooled upstream connections must not mix them up),
 * every sandbox sees only the marker, and no sandbox's output holds any
 * secret, its own or another's.
 */

import assert from "node:assert/strict";
import { Sandbox } from "../mod.ts";
import type { RunResult } from "../mod.ts";
import {
  assertNoBytes,
  egressEvents,
  lastJson,
  MARKER,
  randomSecret,
  startUpstreams,
  upstreamPolicy,
} from "./kits/upstreams.ts";

const SANDBOXES = 50;
const REQUESTS = 3;

Deno.test(`${SANDBOXES} concurrent sandboxes each inject only their own secret; each sees only the marker`, async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  const jobs = Array.from({ length: SANDBOXES }, (_, i) => ({
    id: `box-${i}`,
    secret: randomSecret(`sk-${i}`),
  }));
  const results = await Promise.all(
    jobs.map(async (job): Promise<{ result: RunResult; sandboxId: string }> => {
      await using sandbox = await Sandbox.create({
        policy: {
          limits: { timeoutMs: 120_000 },
          network: {
            allow: {
              "api.example.test": [{
                transform: [{
                  headers: { authorization: "Bearer ${secret:TOKEN}" },
                }],
              }],
            },
          },
          upstream: upstreamPolicy(ups),
        },
        secrets: { TOKEN: job.secret },
      });
      const result = await sandbox.run({
        code: `const out = [];
          for (let n = 0; n < ${REQUESTS}; n++) {
            const r = await fetch("https://api.example.test/echo?n=" + n, {
              method: "POST",
              headers: { "x-sandbox": ${
          JSON.stringify(job.id)
        }, authorization: "mine" },
              body: ${JSON.stringify(job.id)},
            });
            const echo = await r.json();
            out.push({
              status: r.status,
              authorization: echo.headers.filter(([k]) => k === "authorization").map(([, v]) => v),
              sandbox: echo.headers.find(([k]) => k === "x-sandbox")?.[1],
            });
          }
          console.log(JSON.stringify(out));`,
      });
      return { result, sandboxId: sandbox.id };
    }),
  );
  const api = ups.get("api.example.test");
  assert.equal(api.seen.length, SANDBOXES * REQUESTS);
  const bySandbox = new Map(jobs.map((j) => [j.id, j]));
  const counts = new Map<string, number>();
  for (const request of api.seen) {
    const id = request.headers.find(([k]) => k === "x-sandbox")?.[1];
    const job = id === undefined ? undefined : bySandbox.get(id);
    assert.ok(job, `a request without a known x-sandbox: ${id}`);
    assert.equal(request.body, job.id);
    assert.deepEqual(
      request.headers.filter(([k]) => k === "authorization"),
      [["authorization", `Bearer ${job.secret}`]],
      `${job.id} got another sandbox's secret`,
    );
    counts.set(job.id, (counts.get(job.id) ?? 0) + 1);
  }
  for (const job of jobs) assert.equal(counts.get(job.id), REQUESTS, job.id);

  const secrets = jobs.map((j) => j.secret);
  results.forEach(({ result, sandboxId }, i) => {
    const job = jobs[i]!;
    assert.equal(
      result.exitCode,
      0,
      `${job.id}: ${result.stderr.slice(0, 500)}`,
    );
    const out = lastJson<
      { status: number; authorization: string[]; sandbox: string }[]
    >(result);
    assert.deepEqual(
      out,
      Array.from({ length: REQUESTS }, () => ({
        status: 200,
        authorization: [MARKER],
        sandbox: job.id,
      })),
      job.id,
    );
    for (const secret of secrets) {
      assertNoBytes(result.stdoutBytes, secret, `${job.id} stdout`);
      assertNoBytes(result.stderrBytes, secret, `${job.id} stderr`);
    }
    const events = egressEvents(result.audit);
    assert.ok(events.length >= REQUESTS);
    assert.ok(
      events.every((e) => e.sandboxId === sandboxId),
      `${job.id}: only its own sandbox's events`,
    );
    assert.equal(
      events.filter((e) => e.kind === "request" && e.decision === "allow")
        .length,
      REQUESTS,
    );
    const trail = JSON.stringify(result.audit);
    for (const secret of secrets) assert.ok(!trail.includes(secret));
  });
});
