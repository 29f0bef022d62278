/**
 * The policy matcher against an independent oracle (see `bench/fuzz.ts`):
 * `compileNetworkPolicy(...).decide()` never allows a destination the
 * policy does not allow, picks the entry the documented precedence picks,
 * refuses non-canonical spellings, and refuses invalid patterns at load.
 */

import assert from "node:assert/strict";
import { runPolicyFuzz } from "../bench/fuzz.ts";

Deno.test("compileNetworkPolicy().decide() agrees with an independent oracle on 20,000 fuzzed policies (fixed seed)", () => {
  const { inputs, failures } = runPolicyFuzz(0x5eed, 20_000);
  assert.ok(inputs >= 20_000, `only ${inputs} inputs`);
  assert.deepEqual(failures, []);
});

Deno.test("runPolicyFuzz() is deterministic for a seed", () => {
  assert.deepEqual(runPolicyFuzz(7, 500), runPolicyFuzz(7, 500));
});
