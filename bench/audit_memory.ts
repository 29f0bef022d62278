/**
 * Audit memory benchmark (`deno run -A --v8-flags=--expose-gc
 * bench/audit_memory.ts [--seconds 30] [--sandboxes 3] [--runs 6]`): what
 * the worst program costs the harness in audit records.
 *
 * Each program makes distinct permission checks as fast as it can for
 * `--seconds`: `Deno.statSync` on unique paths of 4,000 bytes of two-byte
 * characters (V8's widest strings), outside every grant (a deny quotes the
 * value in its reason). `--sandboxes` such programs run at once, then each
 * sandbox runs `--runs` more to fill what it retains across runs. Printed,
 * each after a GC: the harness's V8 heap and RSS before, the peak during
 * the flood (sampled every 250 ms), with the results held, with only the
 * sandboxes' trails left, and after every sandbox closed; and the checks the
 * programs made, the records kept and the attempts counted.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Sandbox } from "../mod.ts";
import type { AuditEvent, RunResult } from "../mod.ts";
import { auditEventBytes } from "../harness/_audit_bounds.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "30" },
    sandboxes: { type: "string", default: "3" },
    runs: { type: "string", default: "6" },
  },
});
const seconds = Number(args.values.seconds);
const count = Number(args.values.sandboxes);
const extraRuns = Number(args.values.runs);

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) console.warn("run with --v8-flags=--expose-gc for settled figures");

const MiB = 1024 * 1024;
function sample(): { heap: number; rss: number } {
  gc?.();
  const usage = Deno.memoryUsage();
  return { heap: usage.heapUsed, rss: usage.rss };
}
const show = (label: string, at: { heap: number; rss: number }) =>
  console.log(
    `${label.padEnd(34)} heap ${(at.heap / MiB).toFixed(1).padStart(7)} MiB` +
      `   rss ${(at.rss / MiB).toFixed(1).padStart(7)} MiB`,
  );

function flood(ms: number, tag: string): string {
  return `
    const part = "ж".repeat(1990);
    const end = Date.now() + ${ms};
    let made = 0;
    while (Date.now() < end) {
      for (let i = 0; i < 100; i++) {
        try { Deno.statSync("/etc/${tag}-" + made + "/" + part); } catch { /* denied */ }
        made++;
      }
    }
    console.log(made);
  `;
}

function tally(events: readonly AuditEvent[]) {
  let kept = 0;
  let counted = 0;
  for (const event of events) {
    if (event.source === "harness" && event.kind === "audit-overflow") {
      counted += event.count as number;
    } else kept++;
  }
  return { kept, counted };
}

const before = sample();
show("before", before);
const sandboxes = await Promise.all(
  Array.from({ length: count }, () =>
    Sandbox.create({
      policy: { limits: { timeoutMs: (seconds + 60) * 1000 } },
    })),
);
show(`${count} idle sandboxes`, sample());

let peak = sample();
const sampler = setInterval(() => {
  const now = sample();
  if (now.heap > peak.heap) peak = now;
}, 250);
let results: RunResult[] | null = await Promise.all(
  sandboxes.map((s, i) => s.run({ code: flood(seconds * 1000, `s${i}`) })),
);
clearInterval(sampler);
show("peak during the flood", peak);
show("results held", sample());
let made = 0;
for (const result of results) {
  if (result.exitCode !== 0) throw new Error(result.stderr);
  made += Number(result.stdout);
}
const { kept, counted } = results.map((r) => tally(r.audit)).reduce(
  (a, b) => ({ kept: a.kept + b.kept, counted: a.counted + b.counted }),
);
console.log(
  `checks made: ${made}; records kept: ${kept}; attempts counted: ${counted}`,
);
results = null;
show("results dropped (trails remain)", sample());

for (let run = 0; run < extraRuns; run++) {
  await Promise.all(
    sandboxes.map((s, i) => s.run({ code: flood(2_000, `s${i}r${run}`) })),
  );
}
const trails = sandboxes.reduce((n, s) => n + s.auditTrail.length, 0);
const estimated = sandboxes.reduce(
  (n, s) => n + s.auditTrail.reduce((m, e) => m + auditEventBytes(e), 0),
  0,
);
const full = sample();
show(`after ${extraRuns} more runs each`, full);
console.log(
  `records retained by ${count} sandboxes: ${trails}, estimated ${
    (estimated / MiB).toFixed(1)
  } MiB`,
);
await Promise.all(sandboxes.map((s) => s.close()));
sandboxes.length = 0;
// Native handles (sockets, child processes) let go of their JavaScript
// side a little after they close.
for (let i = 0; i < 10; i++) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  gc?.();
}
const closed = sample();
show("sandboxes closed and dropped", closed);
console.log(
  `retained per sandbox (heap freed by dropping them): ${
    ((full.heap - closed.heap) / count / MiB).toFixed(1)
  } MiB`,
);
