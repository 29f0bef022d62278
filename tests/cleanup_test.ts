/**
 * Cleanup: a sandbox leaves no process and no file behind: after close(),
 * after a run that threw, and after the harness itself is SIGKILLed.
 */

import assert from "node:assert/strict";
import { BundleError, Sandbox, SandboxSetupError } from "../mod.ts";
import { discoverHostTools } from "../runtime/host_tools.ts";
import { pathExists, pollUntil } from "./kits/sandbox_processes.ts";

const MOD_URL = new URL("../mod.ts", import.meta.url).href;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const FOREVER = `console.log("started"); setInterval(() => {}, 1000);`;

/** The workspace root of a sandbox that has a scratch directory. */
function workspaceRoot(sandbox: Sandbox): string {
  const scratch = sandbox.scratchPath ?? "";
  assert.ok(scratch.endsWith("/box/scratch"), `scratch: ${scratch}`);
  return scratch.slice(0, -"/box/scratch".length);
}

/** Host processes whose command line mentions `text`, as argv[0]s. */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      if (cmdline.includes(text)) found.push(cmdline.split("\0")[0]!);
    } catch {
      // exited while we looked
    }
  }
  return found;
}

function bwrapProcesses(root: string): string[] {
  return processesMentioning(root).filter((argv0) => argv0.endsWith("bwrap"));
}

async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const lines = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) break;
    text += value;
  }
  lines.releaseLock();
  return text.split("\n")[0]!;
}

Deno.test("close() leaves no sandbox process and no workspace behind", async () => {
  const sandbox = await Sandbox.create({ policy: { scratch: true } });
  const root = workspaceRoot(sandbox);
  const child = await sandbox.spawn({ code: FOREVER });
  assert.equal(await firstLine(child.stdout), "started");
  assert.ok(bwrapProcesses(root).length > 0, "positive control: bwrap runs");
  assert.ok(pathExists(root), "positive control: the workspace exists");

  await sandbox.close();
  assert.equal((await child.status).reason, "killed");
  assert.equal(pathExists(root), false, "workspace deleted");
  // The watchdog shell (it also names the root) exits shortly after.
  assert.ok(
    await pollUntil(() => processesMentioning(root).length === 0),
    `still running: ${processesMentioning(root)}`,
  );
  await child.stderr.cancel();
});

Deno.test("close() resolves only once every process of the sandbox has exited", async () => {
  // SandboxProcess.status documents "resolves when the run has ended and the
  // sandbox is gone"; checked on several runs, as the window is short.
  const lingering: string[] = [];
  for (let i = 0; i < 5; i++) {
    const sandbox = await Sandbox.create({ policy: { scratch: true } });
    const root = workspaceRoot(sandbox);
    const child = await sandbox.spawn({ code: FOREVER });
    assert.equal(await firstLine(child.stdout), "started");
    await sandbox.close();
    await child.status;
    lingering.push(...bwrapProcesses(root).map((p) => `run ${i}: ${p}`));
    await child.stderr.cancel();
    await pollUntil(() => bwrapProcesses(root).length === 0);
  }
  assert.deepEqual(lingering, [], "bwrap still alive after close() resolved");
});

Deno.test("close() cleans up after a run that threw BundleError", async () => {
  const sandbox = await Sandbox.create({ policy: { scratch: true } });
  const root = workspaceRoot(sandbox);
  await assert.rejects(sandbox.run({ code: "let = ;" }), BundleError);
  await assert.rejects(
    sandbox.run({ code: `import "npm:left-pad";` }),
    BundleError,
  );
  const after = await sandbox.run({ code: `console.log("still usable")` });
  assert.equal(after.stdout, "still usable\n");
  await sandbox.close();
  assert.equal(pathExists(root), false);
  assert.ok(await pollUntil(() => bwrapProcesses(root).length === 0));
});

Deno.test("close() cleans up after a run that threw SandboxSetupError", async () => {
  const tools = await discoverHostTools();
  const sandbox = await Sandbox.create({
    policy: { scratch: true },
    tools: { ...tools, bwrap: "/nonexistent/bwrap" },
  });
  const root = workspaceRoot(sandbox);
  await assert.rejects(sandbox.run({ code: "1" }), SandboxSetupError);
  await sandbox.close();
  assert.equal(pathExists(root), false);
});

Deno.test("close() is idempotent and a closed sandbox refuses new runs", async () => {
  const sandbox = await Sandbox.create({ policy: { scratch: true } });
  const root = workspaceRoot(sandbox);
  await Promise.all([sandbox.close(), sandbox.close()]);
  await sandbox.close();
  assert.equal(sandbox.closed, true);
  assert.equal(pathExists(root), false);
  await assert.rejects(sandbox.run({ code: "1" }), /after close\(\)/);
});

Deno.test("close() kills every live run of the sandbox", async () => {
  const sandbox = await Sandbox.create({ policy: { scratch: true } });
  const root = workspaceRoot(sandbox);
  const children = await Promise.all(
    [1, 2, 3].map(() => sandbox.spawn({ code: FOREVER })),
  );
  for (const child of children) {
    assert.equal(await firstLine(child.stdout), "started");
  }
  assert.equal(bwrapProcesses(root).length >= 3, true);
  await sandbox.close();
  for (const child of children) {
    assert.equal((await child.status).reason, "killed");
    await child.stderr.cancel();
  }
  assert.ok(
    await pollUntil(() => bwrapProcesses(root).length === 0),
    `still running: ${bwrapProcesses(root)}`,
  );
});

/** A harness that starts a never-ending run, prints its scratch path, waits. */
const CHILD_HARNESS = `
import { Sandbox } from ${JSON.stringify(MOD_URL)};
const sandbox = await Sandbox.create({ policy: { scratch: true, limits: { timeoutMs: 600000 } } });
const child = await sandbox.spawn({ code: ${JSON.stringify(FOREVER)} });
const reader = child.stdout.getReader();
await reader.read();
console.log(sandbox.scratchPath);
setInterval(() => {}, 1000);
`;

Deno.test("a SIGKILLed harness leaves no sandbox process and no workspace behind", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airlock-test-harness-" });
  const script = `${dir}/harness.ts`;
  await Deno.writeTextFile(script, CHILD_HARNESS);
  const harness = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, script],
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    const scratch = await firstLine(harness.stdout);
    assert.match(scratch, /\/airlock-[^/]+\/box\/scratch$/);
    const root = scratch.slice(0, -"/box/scratch".length);
    assert.ok(bwrapProcesses(root).length > 0, "positive control: bwrap runs");

    harness.kill("SIGKILL");
    assert.equal((await harness.status).signal, "SIGKILL");

    const clean = await pollUntil(() =>
      processesMentioning(root).length === 0 && !pathExists(root)
    );
    assert.ok(
      clean,
      `left behind: processes ${processesMentioning(root)}, dir ${
        pathExists(root)
      }`,
    );
  } finally {
    try {
      harness.kill("SIGKILL");
    } catch {
      // already dead
    }
    await harness.status;
    await harness.stdout.cancel().catch(() => {});
    await harness.stderr.cancel();
    await Deno.remove(dir, { recursive: true });
  }
});
