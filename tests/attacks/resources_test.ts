/**
 * Resource attacks: a Worker bomb, heap and ArrayBuffer growth, a CPU spin,
 * output floods, a huge file, many small files, descriptor exhaustion,
 * connection floods and a slowloris against the injector, a program that
 * never ends. Each runs in a batch of its own beside a bystander sandbox
 * that must finish correctly (with a request through the injector): the
 * limit fires with the right `reason`, and nobody else is hurt.
 *
 * A resource limit is enforced by the kernel (rlimits, tmpfs sizes), V8 or
 * the harness's watchers, not by a permission check: the run's `reason` is
 * its record, so most cases say `audit: none`.
 */

import assert from "node:assert/strict";
import {
  assertThrew,
  basePolicy,
  type BatchSpec,
  type CaseView,
  Corpus,
  type Fixtures,
  NOT_CAPABLE,
  valueOf,
} from "./_corpus.ts";
import { egressBridgeChildren } from "../../runtime/launcher.ts";
import { DEFAULT_LIMITS } from "../../runtime/limits.ts";

// Batches run three at a time: each has its own sandbox, uid and limits.
const corpus = new Corpus("resources", { concurrency: 3 });

function bystanderOk(v: CaseView): void {
  const bystander = v.extra.bystander as
    | { ok: boolean; detail: string }
    | undefined;
  assert.ok(bystander, "a bystander ran");
  assert.ok(bystander.ok, `the bystander was hurt: ${bystander.detail}`);
}

/**
 * The scratch quota stopped the writes: a scratch filesystem refuses them
 * (the program sees ENOSPC and the run goes on; the host holds at most the
 * quota), a measured scratch ends the run as "disk-limit".
 */
function scratchFull(v: CaseView, quotaMb: number): void {
  if (v.extra.quotaMode === "walk") {
    assert.equal(v.run.reason, "disk-limit", `ended as ${v.run.reason}`);
    return;
  }
  assertThrew(v, /No space left on device/);
  assert.equal(v.run.reason, "exit", v.run.stderr);
  const usage = v.extra.scratchUsage as { hostBytes: number };
  assert.ok(usage.hostBytes <= quotaMb * 1024 * 1024, `${usage.hostBytes}`);
}

/** One resource case in a batch of its own, with a bystander. */
function solo(
  c: Parameters<Corpus["add"]>[0] & {
    limits?: Record<string, number>;
    spec?: BatchSpec;
    policy?: (fx: Fixtures) => Record<string, unknown>;
  },
) {
  const { limits, spec, policy, ...rest } = c;
  corpus.batch(c.id, {
    bystander: "after",
    ...spec,
    policy: (fx) => {
      const base = basePolicy(fx);
      return {
        ...base,
        ...(policy?.(fx) ?? {}),
        limits: { ...base.limits, ...limits },
      };
    },
  });
  corpus.add({ ...rest, batch: c.id });
}

solo({
  id: "res-001",
  title: "Worker bomb (the fork bomb of a Deno program)",
  // 60 s: some 30 Workers (each its own V8 isolate) start on a loaded
  // machine before the program reports; only the process cap may stop it.
  limits: { processes: 32, memoryMb: 16_384, timeoutMs: 60_000 },
  spec: { caseTimeoutMs: 50_000 },
  code:
    `const url = URL.createObjectURL(new Blob(["postMessage('up'); setInterval(() => {}, 1000);"], { type: "application/javascript" }));
    let started = 0, up = 0, refusal = "";
    for (let i = 0; i < 500; i++) {
      try {
        const w = new Worker(url, { type: "module" });
        w.onmessage = () => { up++; };
        started++;
      } catch (e) { refusal = e.message; break; }
      await new Promise((r) => setTimeout(r, 2));
    }
    while (up < started) await new Promise((r) => setTimeout(r, 20));
    return { started, up, refusal };`,
  expect: (v) => {
    const got = valueOf<{ started: number; refusal: string }>(v);
    assert.ok(got.started > 0, "positive control: Workers can start");
    assert.ok(got.started < 32, `started ${got.started}`);
    assert.match(got.refusal, /Resource temporarily unavailable/);
    bystanderOk(v);
  },
  audit: {
    none:
      "RLIMIT_NPROC on the sandbox's own host uid refuses the thread (EAGAIN): a kernel limit",
  },
});
solo({
  id: "res-002",
  title: "grow the JS heap without end",
  limits: { memoryMb: 64 },
  code:
    `const keep = []; while (true) keep.push({ n: Math.random(), s: "x".repeat(64) + Math.random() });`,
  expect: (v) => {
    assert.equal(v.run.reason, "oom");
    bystanderOk(v);
  },
  audit: {
    none: "V8's heap limit (--max-old-space-size) ends the run: reason 'oom'",
  },
});
solo({
  id: "res-003",
  title: "allocate ArrayBuffers past the memory limit (off-heap)",
  limits: { memoryMb: 64 },
  code: `const keep = [];
    try { for (let i = 0; i < 4096; i++) keep.push(new ArrayBuffer(32 * 1024 * 1024)); return "never refused " + keep.length; }
    catch (e) { const held = keep.length; keep.length = 0; return e.constructor.name + " after " + held; }`,
  expect: (v) => {
    // Refused either as a catchable RangeError or, when V8 itself cannot
    // get memory past RLIMIT_DATA, by ending the run as "oom".
    if (v.outcome) {
      const got = valueOf<string>(v);
      assert.match(got, /^RangeError after \d+$/);
      const held = Number(got.split(" ").at(-1));
      assert.ok(held * 32 < 64 + 640, `held ${held * 32} MiB`);
    } else {
      assert.equal(v.run.reason, "oom");
    }
    bystanderOk(v);
  },
  audit: {
    none:
      "RLIMIT_DATA (640 MiB baseline + memoryMb) refuses the mapping: a kernel limit (RangeError, or reason 'oom')",
  },
});
solo({
  id: "res-004",
  title: "spin the CPU forever",
  limits: { cpuSeconds: 1, timeoutMs: 30_000 },
  code: `while (true) {}`,
  expect: (v) => {
    assert.equal(v.run.reason, "cpu");
    assert.equal(v.run.signal, "SIGXCPU");
    bystanderOk(v);
  },
  audit: { none: "RLIMIT_CPU sends SIGXCPU: a kernel limit, reason 'cpu'" },
});
solo({
  id: "res-005",
  title: "flood stdout",
  limits: { outputBytes: 10_000 },
  code: `const line = "y".repeat(999); while (true) console.log(line);`,
  expect: (v) => {
    assert.equal(v.run.reason, "output-limit");
    assert.equal(v.run.truncated, true);
    assert.ok(v.run.stdout.length <= 10_000);
    bystanderOk(v);
  },
  audit: {
    none: "the harness's output cap kills the run: reason 'output-limit'",
  },
});
solo({
  id: "res-006",
  title: "flood stderr",
  limits: { outputBytes: 4096 },
  code: `const line = "e".repeat(99); while (true) console.error(line);`,
  expect: (v) => {
    assert.equal(v.run.reason, "output-limit");
    assert.ok(v.run.stderr.length <= 4096);
    bystanderOk(v);
  },
  audit: {
    none: "the harness's output cap kills the run: reason 'output-limit'",
  },
});
solo({
  id: "res-007",
  title: "write one file past fileSizeMb",
  limits: { fileSizeMb: 1 },
  code:
    `const file = Deno.openSync("/scratch/big", { write: true, create: true });
    const chunk = new Uint8Array(64 * 1024);
    while (true) file.writeSync(chunk);`,
  expect: (v) => {
    assert.equal(v.run.reason, "file-size");
    assert.equal(v.run.signal, "SIGXFSZ");
    bystanderOk(v);
  },
  audit: {
    none: "RLIMIT_FSIZE sends SIGXFSZ: a kernel limit, reason 'file-size'",
  },
});
solo({
  id: "res-008",
  title: "fill the scratch quota with many small files",
  limits: { scratchMb: 1, fileSizeMb: 1 },
  code: `const chunk = new Uint8Array(8 * 1024);
    for (let i = 0; ; i++) Deno.writeFileSync("/scratch/f" + i, chunk);`,
  expect: (v) => {
    scratchFull(v, 1);
    bystanderOk(v);
  },
  audit: {
    none:
      "the scratch filesystem refuses the write (ENOSPC); where the quota is only measured, the harness's watcher kills the run ('disk-limit')",
  },
});
solo({
  id: "res-009",
  title: "exhaust the scratch quota with empty files (zero data blocks each)",
  // Each empty file is an inode of the host filesystem (and an entry the
  // quota watcher lstat()s every 100 ms); 1 MiB of quota must stop it long
  // before the wall clock does. The timeout is no part of the claim (it
  // was 3 s, which a loaded machine's start alone can take): a quota that
  // failed would show as "created 300000" or a timeout, both refused below.
  limits: { scratchMb: 1, timeoutMs: 30_000 },
  code:
    `for (let i = 0; i < 300000; i++) Deno.writeFileSync("/scratch/e" + i, new Uint8Array(0));
    return "created 300000";`,
  expect: (v) => {
    scratchFull(v, 1);
    bystanderOk(v);
  },
  audit: {
    none:
      "the scratch filesystem runs out of inodes (ENOSPC); a walk counts each entry a block ('disk-limit')",
  },
});
solo({
  id: "res-010",
  title: "exhaust file descriptors by opening one file many times",
  limits: { openFiles: 64 },
  code: `Deno.writeTextFileSync("/scratch/f", "x");
    const files = [];
    try { for (let i = 0; i < 1000; i++) files.push(Deno.openSync("/scratch/f")); return "never refused"; }
    catch (e) { return "refused after " + files.length + ": " + e.message; }`,
  expect: (v) => {
    const got = valueOf<string>(v);
    assert.match(got, /^refused after \d+: Too many open files/);
    assert.ok(Number(got.match(/after (\d+)/)![1]) < 64);
    bystanderOk(v);
  },
  audit: {
    none: "RLIMIT_NOFILE refuses the descriptor (EMFILE): a kernel limit",
  },
});
solo({
  id: "res-011",
  title:
    "exhaust descriptors with connections to the proxy, held while another sandbox works",
  limits: { openFiles: 64, timeoutMs: 30_000 },
  spec: { bystander: "during", holdAfterCases: true },
  code: `globalThis.__held = [];
    try { for (let i = 0; i < 1000; i++) __held.push(await Deno.connect({ hostname: "127.0.0.1", port: 3128 })); return "never refused"; }
    catch (e) { return "refused after " + __held.length + ": " + e.message; }`,
  expect: (v) => {
    const got = valueOf<string>(v);
    assert.match(got, /^refused after \d+: Too many open files/);
    bystanderOk(v);
  },
  audit: {
    none:
      "RLIMIT_NOFILE refuses the socket (EMFILE) inside the sandbox; held connections carry no request to audit",
  },
});
solo({
  id: "res-012",
  title: "thousands of CONNECTs to a disallowed host through the proxy",
  limits: { timeoutMs: 60_000 },
  spec: { bystander: "during", holdAfterCases: true, caseTimeoutMs: 50_000 },
  code: `const statuses = {};
    for (let i = 0; i < 1000; i++) {
      const r = await rawProxy("", { connect: "evil.attack.test:443" });
      const s = (r.connectReply ?? "none").slice(9, 12);
      statuses[s] = (statuses[s] ?? 0) + 1;
    }
    return statuses;`,
  expect: (v) => {
    assert.deepEqual(valueOf(v), { "403": 1000 });
    bystanderOk(v);
  },
  audit: {
    injector: { kind: "connect", host: "evil.attack.test", status: 403 },
  },
});
solo({
  id: "res-013",
  title:
    "slowloris: hundreds of request heads trickled byte by byte to the proxy",
  limits: { timeoutMs: 30_000 },
  spec: { bystander: "during", holdAfterCases: true },
  // Each connection the bridge carries to the injector is a socat process
  // of the sandbox uid. The bridge carries at most half the process cap at
  // once (egressBridgeChildren); the rest wait in its listen backlog inside
  // the sandbox's own network namespace, costing the harness nothing. So
  // the flood can neither exhaust the injector nor the run's own process
  // budget (before the bound, socat's forks spent it: socat died or Deno
  // could not start a thread, and the run ended without an outcome).
  code: `globalThis.__held = [];
    let stopped = null;
    for (let i = 0; i < 200; i++) {
      try {
        const c = await Deno.connect({ hostname: "127.0.0.1", port: 3128 });
        await c.write(__enc.encode("GET http://other.attack.test/slow HTTP/1.1\\r\\nX-Slow-" + i + ": a"));
        __held.push(c);
      } catch (e) { stopped = errText(e); break; }
    }
    // Keep trickling in the background while the bystander works.
    (async () => { for (;;) { for (const c of __held) { try { await c.write(__enc.encode("a")); } catch {} } await new Promise((r) => setTimeout(r, 200)); } })();
    return { held: __held.length, stopped };`,
  expect: (v) => {
    // The program was not starved: it reported, and held what it opened.
    const got = valueOf<{ held: number; stopped: string | null }>(v);
    assert.ok(got.held >= 10, `held ${got.held} (${got.stopped})`);
    const bridge = v.extra.bridgeProcesses as number | null;
    const cap = egressBridgeChildren(DEFAULT_LIMITS);
    if (bridge === null) {
      console.log(
        "res-013: sandboxes share the harness uid here; bridge not counted",
      );
    } else {
      // The listener plus at most `cap` connections reach the injector.
      assert.ok(bridge <= cap + 1, `${bridge} bridge processes, cap ${cap}`);
      assert.ok(bridge >= 2, `the flood reached the bridge (${bridge})`);
    }
    bystanderOk(v);
    assert.ok(["killed", "exit"].includes(v.run.reason), v.run.reason);
  },
  audit: {
    none:
      "no request head ever completes, so the injector has nothing to decide; the connections die with the run",
  },
});
solo({
  id: "res-014",
  title: "never finish (an unresolved await and a live timer)",
  limits: { timeoutMs: 800 },
  code: `setInterval(() => {}, 1000); await new Promise(() => {});`,
  expect: (v) => {
    assert.equal(v.run.reason, "timeout");
    assert.equal(v.run.signal, "SIGKILL");
    bystanderOk(v);
  },
  audit: {
    none: "the harness's wall clock kills the namespace: reason 'timeout'",
  },
});
solo({
  id: "res-015",
  title:
    "fill the private /tmp with empty temp dirs (tmpfs inodes are kernel memory that tmpMb does not bound)",
  limits: { timeoutMs: 30_000 },
  code: `let n = 0; let first = "";
    try { for (; n < 5000; n++) { const d = Deno.makeTempDirSync(); first ||= d; } return first + " " + n; }
    catch (e) { return "refused after " + n + ": " + errText(e); }`,
  // Contained: TMPDIR is the run's own /var/tmp, charged with the scratch
  // to its quota (at least one block per entry), never the private /tmp.
  expect: (v) => {
    assert.match(
      valueOf<string>(v),
      /^(\/var\/tmp\/\S+ \d+|refused after \d+: .*)$/,
    );
    bystanderOk(v);
  },
  audit: { broker: "write", value: "/var/tmp", decisions: ["allow"] },
});
solo({
  id: "res-016",
  title: "a single string bigger than the heap limit",
  code:
    `let s = "x"; try { for (;;) s += s; } catch (e) { return errText(e) + " at " + s.length; }`,
  expect: (v) => {
    const outcome = v.outcome;
    // V8 refuses the string (RangeError) before the heap fills.
    if (outcome) {
      assert.match(
        outcome.ok ? String(outcome.value) : outcome.error,
        /RangeError/,
      );
    } else assert.equal(v.run.reason, "oom");
  },
  audit: {
    none:
      "V8's string length and heap limits refuse it: no permission involved",
  },
});
solo({
  id: "res-017",
  title: "ask for a scratch file bigger than fileSizeMb by truncate (sparse)",
  code:
    `const f = Deno.openSync("/scratch/sparse", { write: true, create: true });
    try { f.truncateSync(1024 * 1024 * 1024 * 10); return "truncated"; } finally { f.close(); }`,
  expect: (v) => {
    // RLIMIT_FSIZE covers ftruncate too: SIGXFSZ (ignored by Deno) or EFBIG.
    if (v.outcome) {
      assertThrew(v, /File too large|os error 27/);
    } else {
      assert.equal(v.run.reason, "file-size");
    }
  },
  audit: {
    none: "RLIMIT_FSIZE refuses the size (EFBIG/SIGXFSZ): a kernel limit",
  },
});

// Not a resource limit, but the same wall: the bystander proves the
// sandboxes share nothing even under attack.
corpus.batch("no-network", { policy: () => ({}) });
corpus.add({
  id: "res-018",
  title: "connect to the proxy's port from a sandbox without network",
  batch: "no-network",
  code:
    `const c = await Deno.connect({ hostname: "127.0.0.1", port: 3128 }); c.close(); return "CONNECTED";`,
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: "net", value: "127.0.0.1:3128" },
});

corpus.register();
