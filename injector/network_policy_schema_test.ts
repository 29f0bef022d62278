/**
 * The network policy's written-out types (network_policy_types.ts) are the
 * schema's own: each one is checked equal, both ways, to what its schema
 * accepts (`...Input`) or gives (the rest). `deno test` type-checks this
 * file, so a schema change the types do not follow fails here.
 */
import assert from "node:assert/strict";
import type { z } from "zod";
import {
  MatchSchema,
  NetworkPolicySchema,
  RuleSchema,
} from "./network_policy_schema.ts";
import type {
  Match,
  NetworkPolicy,
  NetworkPolicyInput,
  Rule,
  RuleInput,
} from "./network_policy_types.ts";

/** True only when A and B are the same type (not merely assignable). */
type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends
  (<X>() => X extends B ? 1 : 2) ? true : false;

Deno.test("network policy types: each is what its schema accepts or gives", () => {
  const checks: true[] = [
    true as Equal<NetworkPolicyInput, z.input<typeof NetworkPolicySchema>>,
    true as Equal<NetworkPolicy, z.output<typeof NetworkPolicySchema>>,
    true as Equal<RuleInput, z.input<typeof RuleSchema>>,
    true as Equal<Rule, z.output<typeof RuleSchema>>,
    true as Equal<Match, z.input<typeof MatchSchema>>,
    true as Equal<Match, z.output<typeof MatchSchema>>,
  ];
  assert.equal(checks.length, 6);
});

Deno.test("network policy types: the check tells a changed type apart (control)", () => {
  const inputForOutput: Equal<
    NetworkPolicyInput,
    z.output<typeof NetworkPolicySchema>
  > = false;
  const ruleForInput: Equal<Rule, z.input<typeof RuleSchema>> = false;
  assert.deepEqual([inputForOutput, ruleForInput], [false, false]);
});
