/**
 * Resource limits: each limit ends the run with the right `reason`, while
 * the harness stays up and another sandbox, running at the same time,
 * finishes correctly.
 */

import assert from "node:assert/strict";
import { Sandbox, ScratchQuotaError } from "../mod.ts";
import type {
  PolicyInput,
  RunOptions,
  RunResult,
  SandboxOptions,
} from "../mod.ts";
import { runNamespaceOnly } from "./kits/namespace_only.ts";

/**
 * Runs `code` under `policy` while a bystander sandbox is live (it waits
 * on stdin, so it overlaps the whole run without any timing), then checks
 * the bystander still ends normally with its own output.
 */
async function runBesideBystander(
  policy: PolicyInput,
  code: string,
  options: Omit<RunOptions, "code" | "files" | "entry" | "path"> = {},
  sandboxOptions: Omit<SandboxOptions, "policy"> = {},
): Promise<RunResult> {
  await using bystanderBox = await Sandbox.create();
  const bystander = await bystanderBox.spawn({
    code: `const input = await new Response(Deno.stdin.readable).text();
           console.log("bystander:" + input);`,
    stdin: "piped",
  });
  const bystanderOut = Promise.all([
    new Response(bystander.stdout).text(),
    new Response(bystander.stderr).text(),
  ]);
  let result: RunResult;
  {
    await using sandbox = await Sandbox.create({ ...sandboxOptions, policy });
    result = await sandbox.run({ ...options, code });
  }
  const writer = bystander.stdin!.getWriter();
  await writer.write(new TextEncoder().encode("still fine"));
  await writer.close();
  const [stdout, stderr] = await bystanderOut;
  const status = await bystander.status;
  assert.equal(status.reason, "exit", `bystander: ${stderr}`);
  assert.equal(stdout, "bystander:still fine\n");
  return result;
}

const FOREVER = "setInterval(() => {}, 1000);";

Deno.test("limits: the wall clock stops a run with reason 'timeout'", async () => {
  // 5 s, not 500 ms: the clock runs from the launch, and on a loaded
  // machine a program took over 1 s to print its first line (measured), so
  // a short timeout could end it before the "started" asserted below.
  const result = await runBesideBystander(
    { limits: { timeoutMs: 5_000 } },
    `console.log("started"); ${FOREVER}`,
  );
  assert.equal(result.reason, "timeout");
  assert.equal(result.signal, "SIGKILL");
  assert.equal(result.success, false);
  assert.equal(result.stdout, "started\n");
});

Deno.test("limits: a per-run timeoutMs overrides the policy's", async () => {
  const result = await runBesideBystander({}, FOREVER, { timeoutMs: 300 });
  assert.equal(result.reason, "timeout");
  assert.equal(result.limits.timeoutMs, 300);
});

Deno.test("limits: a JS heap overflow ends the run with reason 'oom'", async () => {
  const result = await runBesideBystander(
    { limits: { memoryMb: 64 } },
    `const keep = []; while (true) keep.push({ n: Math.random(), s: "x".repeat(64) + Math.random() });`,
  );
  assert.equal(result.reason, "oom");
  assert.equal(result.success, false);
});

Deno.test("limits: big ArrayBuffers past the memory limit throw a catchable RangeError", async () => {
  const result = await runBesideBystander(
    { limits: { memoryMb: 64 } },
    `const keep = [];
     try {
       for (let i = 0; i < 4096; i++) keep.push(new ArrayBuffer(32 * 1024 * 1024));
       console.log("never refused", keep.length);
     } catch (e) {
       const held = keep.length;
       keep.length = 0;
       console.log("caught " + e.constructor.name + " after " + held);
     }`,
  );
  assert.equal(result.reason, "exit", result.stderr);
  assert.match(result.stdout, /^caught RangeError after \d+\n$/);
});

Deno.test("limits: a CPU spin stops at cpuSeconds with reason 'cpu'", async () => {
  const result = await runBesideBystander(
    { limits: { cpuSeconds: 1, timeoutMs: 60_000 } },
    "while (true) {}",
  );
  assert.equal(result.reason, "cpu");
  assert.equal(result.signal, "SIGXCPU");
});

Deno.test("limits: an output flood stops at outputBytes with reason 'output-limit'", async () => {
  const outputBytes = 10_000;
  const result = await runBesideBystander(
    { limits: { outputBytes } },
    `const line = "y".repeat(999); while (true) console.log(line);`,
  );
  assert.equal(result.reason, "output-limit");
  assert.equal(result.truncated, true);
  assert.equal(result.stdoutBytes.length, outputBytes);
  assert.equal(result.stdout, ("y".repeat(999) + "\n").repeat(10));
});

Deno.test("limits: a stderr flood also stops at outputBytes", async () => {
  const outputBytes = 4096;
  const result = await runBesideBystander(
    { limits: { outputBytes } },
    `const line = "e".repeat(99); while (true) console.error(line);`,
  );
  assert.equal(result.reason, "output-limit");
  assert.equal(result.truncated, true);
  assert.equal(result.stderrBytes.length, outputBytes);
});

Deno.test("limits: output exactly at outputBytes is not truncated", async () => {
  const result = await runBesideBystander(
    { limits: { outputBytes: 100 } },
    `Deno.stdout.writeSync(new TextEncoder().encode("z".repeat(100)));`,
  );
  assert.equal(result.reason, "exit", result.stderr);
  assert.equal(result.truncated, false);
  assert.equal(result.stdout, "z".repeat(100));
});

Deno.test("limits: a file past fileSizeMb ends the run with reason 'file-size'", async () => {
  const result = await runBesideBystander(
    { scratch: true, limits: { fileSizeMb: 1 } },
    `const file = Deno.openSync("/scratch/big", { write: true, create: true });
     const chunk = new Uint8Array(64 * 1024);
     while (true) file.writeSync(chunk);`,
  );
  assert.equal(result.reason, "file-size");
  assert.equal(result.signal, "SIGXFSZ");
});

// Where the quota is a filesystem (root with loop devices), the kernel
// refuses the write past it instead (tests/scratch_quota_test.ts); the walk
// is the fallback elsewhere, and these two tests hold it to its contract.
Deno.test("limits: walked quota: many small files past scratchMb end the run with reason 'disk-limit'", async () => {
  const result = await runBesideBystander(
    { scratch: true, limits: { scratchMb: 1, fileSizeMb: 1 } },
    `const chunk = new Uint8Array(8 * 1024);
     for (let i = 0; ; i++) Deno.writeFileSync("/scratch/f" + i, chunk);`,
    {},
    { scratchFs: "walk" },
  );
  assert.equal(result.reason, "disk-limit");
});

Deno.test("limits: the private /tmp cannot be written by the program", async () => {
  const result = await runBesideBystander(
    {},
    `try { Deno.writeTextFileSync("/tmp/x", "x"); console.log("wrote"); } catch (e) { console.log("refused", e.name); }`,
  );
  assert.equal(result.stdout, "refused NotCapable\n", result.stderr);
});

Deno.test("limits: namespace alone: /tmp is bounded by tmpMb", async () => {
  const result = await runNamespaceOnly(
    `const chunk = new Uint8Array(1024 * 1024);
     let mb = 0;
     try {
       const file = Deno.openSync("/tmp/fill", { write: true, create: true });
       for (; mb < 64; mb++) file.writeSync(chunk);
       console.log("wrote " + mb);
     } catch (e) { console.log("stopped " + mb + " " + e.message); }`,
    { limits: { tmpMb: 4, fileSizeMb: 64 } },
  );
  assert.match(result.stdout, /^stopped [0-4] .*os error 28/, result.stderr);
});

Deno.test("limits: openFiles stops descriptor exhaustion inside the sandbox", async () => {
  const result = await runBesideBystander(
    { scratch: true, limits: { openFiles: 64 } },
    `Deno.writeTextFileSync("/scratch/f", "x");
     const files = [];
     try { for (let i = 0; i < 1000; i++) files.push(Deno.openSync("/scratch/f")); console.log("never refused"); }
     catch (e) { console.log("refused after " + files.length + ": " + e.message); }`,
  );
  assert.equal(result.reason, "exit", result.stderr);
  assert.match(result.stdout, /^refused after \d+: Too many open files/);
  const opened = Number(result.stdout.match(/after (\d+)/)![1]);
  assert.ok(opened < 64, `opened ${opened}`);
});

Deno.test("limits: aborting the signal stops a run with reason 'killed'", async () => {
  await using sandbox = await Sandbox.create();
  const controller = new AbortController();
  const child = await sandbox.spawn({
    code: `console.log("started"); ${FOREVER}`,
    signal: controller.signal,
  });
  const reader = child.stdout.getReader();
  const first = await reader.read();
  assert.equal(new TextDecoder().decode(first.value), "started\n");
  controller.abort();
  reader.releaseLock();
  await child.stdout.cancel();
  await child.stderr.cancel();
  const status = await child.status;
  assert.equal(status.reason, "killed");
  assert.equal(status.signal, "SIGKILL");
});

Deno.test("limits: an already-aborted signal never lets the program run", async () => {
  await using sandbox = await Sandbox.create({ policy: { scratch: true } });
  const result = await sandbox.run({
    code: `Deno.writeTextFileSync("/scratch/ran", "1"); ${FOREVER}`,
    signal: AbortSignal.abort(),
  });
  assert.equal(result.reason, "killed");
  await assert.rejects(Deno.stat(`${sandbox.scratchPath}/ran`));
});

Deno.test("walked quota: a scratch over its quota gets no new run (files left by earlier runs count), until files are deleted", async () => {
  await using sandbox = await Sandbox.create({
    policy: { scratch: true, limits: { scratchMb: 1 } },
    scratchFs: "walk",
  });
  // 600 empty files left behind (as an earlier run would): no data blocks,
  // but each entry is charged one block.
  for (let i = 0; i < 600; i++) {
    await Deno.writeTextFile(`${sandbox.scratchPath}/f${i}`, "");
  }
  await assert.rejects(
    () => sandbox.run({ code: "console.log('ran')" }),
    (error: unknown) =>
      error instanceof ScratchQuotaError &&
      /is full .*delete files with sandbox.fs/.test(error.message),
  );
  for (let i = 0; i < 600; i++) await sandbox.fs.remove(`f${i}`);
  const result = await sandbox.run({ code: "console.log('ran')" });
  assert.equal(result.stdout, "ran\n");
  // The program's TMPDIR is gone again once the run left nothing in it.
  assert.deepEqual((await sandbox.fs.readDir(".")).map((e) => e.name), []);
});
