import assert from "node:assert/strict";
import { classifyExit } from "./exit_reason.ts";

const exit = (code: number) => classifyExit({ code, killedFor: null });

Deno.test("classifyExit() reports 133 (SIGTRAP from V8's heap limit) as oom", () => {
  assert.deepEqual(exit(133), { reason: "oom", signal: "SIGTRAP" });
});

Deno.test("classifyExit() reports 152 (SIGXCPU) as cpu", () => {
  assert.deepEqual(exit(152), { reason: "cpu", signal: "SIGXCPU" });
});

Deno.test("classifyExit() reports 153 (SIGXFSZ) as file-size", () => {
  assert.deepEqual(exit(153), { reason: "file-size", signal: "SIGXFSZ" });
});

Deno.test("classifyExit() reports 137 (SIGKILL) as killed", () => {
  assert.deepEqual(exit(137), { reason: "killed", signal: "SIGKILL" });
});

Deno.test("classifyExit() reports other signal deaths as crashed, with the signal", () => {
  assert.deepEqual(exit(139), { reason: "crashed", signal: "SIGSEGV" });
  assert.deepEqual(exit(134), { reason: "crashed", signal: "SIGABRT" });
  assert.deepEqual(exit(159), { reason: "crashed", signal: "SIGSYS" });
  assert.deepEqual(exit(148), { reason: "crashed", signal: "SIG20" });
});

Deno.test("classifyExit() passes plain exit codes through as exit", () => {
  for (const code of [0, 1, 2, 125, 127, 128, 160, 255]) {
    assert.deepEqual(exit(code), { reason: "exit", signal: null }, `${code}`);
  }
});

Deno.test("classifyExit() lets the harness's own kill win over the exit code", () => {
  for (
    const killedFor of [
      "timeout",
      "output-limit",
      "disk-limit",
      "killed",
    ] as const
  ) {
    for (const code of [0, 133, 137, 152]) {
      assert.deepEqual(classifyExit({ code, killedFor }), {
        reason: killedFor,
        signal: "SIGKILL",
      });
    }
  }
});
