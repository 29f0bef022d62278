/**
 * Processes of the `@deno/sandbox`-compatible API against real sandboxes:
 * `kill()` resolves only once the run has ended, so the sandbox's files
 * (refused by airlock while a run is live) are usable right after it.
 */

import assert from "node:assert/strict";
import { AirlockUnsupportedError, Sandbox } from "./mod.ts";

Deno.test("ChildProcess.kill() resolves after the run has ended: the next sandbox.fs call goes through", async () => {
  await using sandbox = await Sandbox.create({ allowNet: [] });
  await sandbox.fs.writeTextFile("before.txt", "kept");
  const child = await sandbox.deno.run({
    code: "setInterval(() => {}, 1000)",
  });
  // Control: while the run is live, airlock refuses file operations.
  await assert.rejects(
    sandbox.fs.readTextFile("before.txt"),
    /while a run of this sandbox is live/,
  );
  let ended = false;
  child.status.then(() => ended = true, () => ended = true);
  await child.kill();
  assert.equal(ended, true, "status settled by the time kill() resolved");
  assert.equal(await sandbox.fs.readTextFile("before.txt"), "kept");
  await sandbox.fs.writeTextFile("after.txt", "written");
  assert.deepEqual(await child.status, {
    success: false,
    code: 143,
    signal: "SIGTERM",
    oom: false,
  });
  // Killing a process that has ended resolves at once, status unchanged.
  await child.kill("SIGKILL");
  assert.equal((await child.status).signal, "SIGTERM");
});

Deno.test("ChildProcess.kill() by an AbortSignal, then a second kill(): both leave the sandbox usable", async () => {
  await using sandbox = await Sandbox.create({ allowNet: [] });
  const controller = new AbortController();
  const child = await sandbox.deno.run({
    code: "setInterval(() => {}, 1000)",
    signal: controller.signal,
  });
  controller.abort();
  await child.kill("SIGINT"); // the abort's kill is already under way
  assert.equal((await child.status).code, 143, "the first request wins");
  await sandbox.fs.writeTextFile("x.txt", "x");
  assert.equal(await sandbox.fs.readTextFile("x.txt"), "x");
});

Deno.test("ChildProcess.kill() with a signal that would not end a program is refused and leaves the run alone", async () => {
  await using sandbox = await Sandbox.create({ allowNet: [] });
  const child = await sandbox.deno.run({
    code: "setInterval(() => {}, 1000)",
  });
  await assert.rejects(child.kill("SIGUSR1"), AirlockUnsupportedError);
  let ended = false;
  child.status.then(() => ended = true);
  await sandbox.deno.eval("1").catch(() => {}); // lets time pass
  assert.equal(ended, false, "still running");
  await child.kill("SIGKILL");
  assert.equal((await child.status).code, 137);
});
