import assert from "node:assert/strict";
import { runHostFuzz } from "../tests/kits/host_fuzz.ts";

Deno.test("canonicalHost(), parseHostPattern() and matchHost() hold their properties on 20,000 fuzzed inputs", () => {
  const { inputs, failures } = runHostFuzz(0x5eed, 20_000);
  assert.ok(inputs >= 20_000, `only ${inputs} inputs`);
  assert.deepEqual(failures, []);
});

Deno.test("runHostFuzz() is deterministic for a seed", () => {
  assert.deepEqual(runHostFuzz(7, 500), runHostFuzz(7, 500));
});
