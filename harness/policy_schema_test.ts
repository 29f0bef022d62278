/**
 * The policy's written-out types (policy_schema.ts) are the zod schemas'
 * own types: each one is checked equal, both ways, to what its schema
 * accepts (as written) or gives (validated). `deno test` type-checks this
 * file, so a schema change that the types do not follow fails here.
 */

import assert from "node:assert/strict";
import type { z } from "zod";
import type { ResourceLimits } from "../runtime/limits.ts";
import {
  InputSchema,
  type LimitsInput,
  LimitsSchema,
  type Policy,
  type PolicyInput,
  type PolicyInputEntry,
  type PolicyInputMount,
  PolicySchema,
} from "./policy_schema.ts";

/** True only when A and B are the same type (not merely assignable). */
type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends
  (<X>() => X extends B ? 1 : 2) ? true : false;

/** An intersection flattened into one object type (for Equal). */
type Flat<T> = { [K in keyof T]: T[K] };

Deno.test("policy_schema.ts: each type as written is what its schema accepts", () => {
  const checks: true[] = [
    true as Equal<PolicyInput, z.input<typeof PolicySchema>>,
    true as Equal<LimitsInput, z.input<typeof LimitsSchema>>,
    true as Equal<PolicyInputEntry, z.input<typeof InputSchema>>,
  ];
  assert.equal(checks.length, 3);
});

Deno.test("policy_schema.ts: the validated types are what the schema gives, paths resolved", () => {
  const checks: true[] = [
    true as Equal<
      Policy,
      Flat<
        & Omit<z.output<typeof PolicySchema>, "inputs" | "$schema">
        & { inputs: PolicyInputMount[] }
      >
    >,
    true as Equal<ResourceLimits, z.output<typeof LimitsSchema>>,
  ];
  assert.equal(checks.length, 2);
});

Deno.test("policy_schema.ts: the equality check fails on a type that drifted (control)", () => {
  type Drifted = Omit<PolicyInput, "scratch"> & { scratch?: string };
  const check: false = false as Equal<Drifted, z.input<typeof PolicySchema>>;
  assert.equal(check, false);
});
