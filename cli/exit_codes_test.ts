import assert from "node:assert/strict";
import type { ExitReason } from "../runtime/exit_reason.ts";
import { EXIT_CODES, exitCodeFor } from "./exit_codes.ts";

Deno.test("exitCodeFor() passes the program's own code through when it exited", () => {
  for (const code of [0, 1, 42, 117, 255]) {
    assert.equal(exitCodeFor("exit", code), code);
  }
});

Deno.test("exitCodeFor() maps each stop reason to its documented code", () => {
  const expected: Record<Exclude<ExitReason, "exit">, number> = {
    oom: 117,
    cpu: 118,
    "file-size": 119,
    "disk-limit": 120,
    "output-limit": 121,
    killed: 122,
    crashed: 123,
    timeout: 124,
  };
  for (const [reason, code] of Object.entries(expected)) {
    // The program's own code never leaks through a stop reason.
    assert.equal(exitCodeFor(reason as ExitReason, 0), code, reason);
    assert.equal(exitCodeFor(reason as ExitReason, 137), code, reason);
  }
});

Deno.test("EXIT_CODES are distinct, in 117..127, with timeout at 124 like timeout(1)", () => {
  const codes = Object.values(EXIT_CODES);
  assert.equal(new Set(codes).size, codes.length);
  for (const code of codes) assert.ok(code >= 117 && code <= 127, `${code}`);
  assert.equal(EXIT_CODES.timeout, 124);
  assert.equal(EXIT_CODES.usage, 125);
  assert.equal(EXIT_CODES.setup, 126);
  assert.equal(EXIT_CODES.bundle, 127);
});
