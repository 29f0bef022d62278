/**
 * Process isolation: the program cannot start processes, load native code,
 * signal host processes (the harness included; it cannot even see them),
 * and a thread bomb stops at the processes limit without hurting the harness
 * or a sandbox running beside it.
 */

import assert from "node:assert/strict";
import { Sandbox } from "../mod.ts";
import type { PolicyInput, RunResult } from "../mod.ts";
import { runNamespaceOnly } from "./kits/namespace_only.ts";

async function runIn(
  code: string,
  policy: PolicyInput = {},
): Promise<RunResult> {
  await using sandbox = await Sandbox.create({ policy });
  return await sandbox.run({ code });
}

/** A host process for the sandbox to try to kill; killed by the test. */
function startVictim(): Deno.ChildProcess & AsyncDisposable {
  const child = new Deno.Command("sleep", {
    args: ["300"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  return Object.assign(child, {
    [Symbol.asyncDispose]: async () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await child.status;
    },
  });
}

async function isAlive(child: Deno.ChildProcess): Promise<boolean> {
  const ended = await Promise.race([
    child.status.then(() => true),
    new Promise<false>((resolve) => setTimeout(() => resolve(false), 50)),
  ]);
  return !ended;
}

/** A bystander sandbox that stays busy until `finish()` is called. */
async function startBystander() {
  const sandbox = await Sandbox.create();
  const child = await sandbox.spawn({
    code: `const input = await new Response(Deno.stdin.readable).text();
           console.log("bystander:" + input);`,
    stdin: "piped",
  });
  return {
    async finish(): Promise<RunResult> {
      const writer = child.stdin!.getWriter();
      await writer.write(new TextEncoder().encode("ok"));
      await writer.close();
      const [stdout, stderr] = await Promise.all([
        new Response(child.stdout).text(),
        new Response(child.stderr).text(),
      ]);
      const status = await child.status;
      await sandbox.close();
      return {
        ...status,
        stdout,
        stderr,
        stdoutBytes: new Uint8Array(),
        stderrBytes: new Uint8Array(),
      };
    },
  };
}

Deno.test("sandbox cannot spawn processes with Deno.Command", async () => {
  const result = await runIn(`
    try {
      const out = await new Deno.Command("/usr/bin/deno", { args: ["--version"] }).output();
      console.log("SPAWNED", out.code, new TextDecoder().decode(out.stdout));
    } catch (e) { console.log("refused", e.name); }`);
  assert.equal(result.stdout, "refused NotCapable\n", result.stderr);
});

Deno.test("sandbox cannot spawn processes with node:child_process", async () => {
  const result = await runIn(`
    import cp from "node:child_process";
    for (const attempt of [
      () => cp.execFileSync("/usr/bin/deno", ["--version"]),
      // spawnSync reports a failure in its result rather than throwing (Deno
      // 2.9.6 answers a refused spawn with an empty object): only an exit
      // status means a process ran.
      () => { const r = cp.spawnSync("/usr/bin/deno", ["--version"]); if (r.error) throw r.error; if (typeof r.status !== "number") throw new Error("no process ran"); return r.stdout; },
      () => cp.execSync("/usr/bin/deno --version"),
    ]) {
      try { const out = attempt(); console.log("SPAWNED", String(out)); } catch (e) { console.log("refused", e.name); }
    }
    const child = (() => { try { return cp.spawn("/usr/bin/deno", ["--version"]); } catch (e) { console.log("refused", e.name); } })();
    if (child) await new Promise((resolve) => { child.on("error", () => { console.log("refused async"); resolve(); }); child.on("exit", (code) => { console.log("SPAWNED exit", code); resolve(); }); });`);
  assert.equal(result.reason, "exit", result.stderr);
  assert.ok(!result.stdout.includes("SPAWNED"), result.stdout);
  assert.ok(!result.stdout.includes("deno 2."), result.stdout);
  assert.equal(
    result.stdout.split("\n").filter((l) => l.startsWith("refused")).length,
    4,
    result.stdout,
  );
});

Deno.test("sandbox cannot load native code with Deno.dlopen", async () => {
  const result = await runIn(`
    try {
      const lib = Deno.dlopen("/lib/x86_64-linux-gnu/libc.so.6", { getpid: { parameters: [], result: "i32" } });
      console.log("LOADED", lib.symbols.getpid());
    } catch (e) { console.log("refused", e.name); }`);
  assert.equal(result.stdout, "refused NotCapable\n", result.stderr);
});

Deno.test("sandbox cannot kill the harness or another host process", async () => {
  await using victim = startVictim();
  const result = await runIn(`
    import process from "node:process";
    for (const pid of [${Deno.pid}, ${victim.pid}]) {
      try { Deno.kill(pid, "SIGKILL"); console.log("KILLED", pid); } catch (e) { console.log("refused", e.name); }
      try { process.kill(pid, "SIGKILL"); console.log("KILLED", pid); } catch (e) { console.log("refused", e.name); }
    }`);
  assert.equal(result.reason, "exit", result.stderr);
  assert.ok(!result.stdout.includes("KILLED"), result.stdout);
  assert.ok(await isAlive(victim), "the host process survived");
});

Deno.test("namespace alone: host processes are invisible and cannot be signalled", async () => {
  await using victim = startVictim();
  const result = await runNamespaceOnly(`
    const out = { visible: [], kills: [] };
    for (const e of Deno.readDirSync("/proc")) {
      if (/^\\d+$/.test(e.name)) out.visible.push(Deno.readTextFileSync("/proc/" + e.name + "/cmdline").split("\\0")[0]);
    }
    for (const pid of [${Deno.pid}, ${victim.pid}]) {
      try { Deno.kill(pid, "SIGKILL"); out.kills.push("KILLED " + pid); } catch (e) { out.kills.push(e.name); }
    }
    console.log(JSON.stringify(out));`);
  const out = JSON.parse(result.stdout) as {
    visible: string[];
    kills: string[];
  };
  assert.ok(
    out.visible.every((c) => c === "/usr/bin/bwrap" || c === "/usr/bin/deno"),
    `visible: ${out.visible}`,
  );
  assert.ok(!out.kills.some((k) => k.startsWith("KILLED")), `${out.kills}`);
  assert.equal(out.kills.length, 2);
  assert.ok(await isAlive(victim), "the host process survived");
});

const WORKER_FLOOD = `
const url = URL.createObjectURL(new Blob(["postMessage('up'); setInterval(() => {}, 1000);"], { type: "application/javascript" }));
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
console.log(JSON.stringify({ started, up, refusal }));
Deno.exit(0);
`;

Deno.test("sandbox Worker flood stops at the processes limit without hurting the harness", async () => {
  const bystander = await startBystander();
  // memoryMb is raised so the flood meets the process cap before the data
  // limit (each Worker reserves address space that RLIMIT_DATA counts).
  const processes = 32;
  const result = await runIn(WORKER_FLOOD, {
    // 60 s: some 30 Workers (each its own V8 isolate) start on a loaded
    // machine before the program reports; only the process cap may stop it.
    limits: { processes, memoryMb: 16_384, timeoutMs: 60_000 },
  });
  assert.equal(result.reason, "exit", result.stderr.slice(0, 500));
  const flood = JSON.parse(result.stdout) as {
    started: number;
    up: number;
    refusal: string;
  };
  assert.ok(flood.started > 0, "positive control: Workers can start");
  assert.ok(flood.started < processes, `started ${flood.started}`);
  assert.match(flood.refusal, /Resource temporarily unavailable/);
  const other = await bystander.finish();
  assert.equal(other.stdout, "bystander:ok\n", other.stderr);
  assert.equal(other.reason, "exit");
});

// Each V8 isolate reserves ~520 MiB of address space that RLIMIT_DATA
// counts (measured; no V8 flag shrinks it short of --jitless, which would
// also remove WebAssembly). The memory limit stays strict, so a Worker needs
// memoryMb >= ~600 of its own; under the default the run ends as "oom".
const WORKER_CODE = `
    const url = URL.createObjectURL(new Blob(["postMessage('up');"], { type: "application/javascript" }));
    const w = new Worker(url, { type: "module" });
    console.log(await new Promise((resolve) => { w.onmessage = (e) => resolve(e.data); }));
    w.terminate();`;

Deno.test("sandbox program cannot start a Worker under the default memory limit (reported as oom)", async () => {
  const result = await runIn(WORKER_CODE);
  assert.equal(result.reason, "oom", result.stderr.slice(0, 300));
  assert.equal(result.stdout, "");
});

Deno.test("sandbox program can start a Worker with memoryMb raised to 1024", async () => {
  await using sandbox = await Sandbox.create({
    policy: { limits: { memoryMb: 1024 } },
  });
  const result = await sandbox.run({ code: WORKER_CODE });
  assert.equal(result.reason, "exit", result.stderr.slice(0, 300));
  assert.equal(result.stdout, "up\n");
});
