/**
 * The client's wire types (types.ts) are the zod schemas' own types: each
 * one is checked equal, both ways, to what its schema accepts (requests)
 * or answers (responses). `deno test` type-checks this file, so a schema
 * change that the types do not follow fails here.
 */

import assert from "node:assert/strict";
import type { z } from "zod";
import type { LimitsSchema, PolicySchema } from "../harness/policy.ts";
import type { NetworkPolicySchema } from "../injector/network_policy.ts";
import type * as S from "./schemas.ts";
import { ERROR_CODES } from "./types.ts";
import type * as T from "./types.ts";

/** True only when A and B are the same type (not merely assignable). */
type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends
  (<X>() => X extends B ? 1 : 2) ? true : false;

type In<S extends z.ZodType> = z.input<S>;
type Out<S extends z.ZodType> = z.output<S>;

Deno.test("types.ts: every request type is what its schema accepts", () => {
  const checks: true[] = [
    true as Equal<
      T.CreateSandboxRequest,
      In<typeof S.CreateSandboxRequestSchema>
    >,
    true as Equal<T.RunRequest, In<typeof S.RunRequestSchema>>,
    true as Equal<T.PolicyInput, In<typeof PolicySchema>>,
    true as Equal<T.LimitsInput, In<typeof LimitsSchema>>,
    true as Equal<T.NetworkPolicyInput, In<typeof NetworkPolicySchema>>,
  ];
  assert.equal(checks.length, 5);
});

Deno.test("types.ts: every response type is what its schema answers", () => {
  const checks: true[] = [
    true as Equal<T.ErrorBody, Out<typeof S.ErrorBodySchema>>,
    true as Equal<T.SandboxInfo, Out<typeof S.SandboxInfoSchema>>,
    true as Equal<T.CreatedSandbox, Out<typeof S.CreatedSandboxSchema>>,
    true as Equal<T.PolicyJson, Out<typeof PolicySchema>>,
    true as Equal<T.LimitsJson, Out<typeof LimitsSchema>>,
    true as Equal<T.NetworkPolicyJson, Out<typeof NetworkPolicySchema>>,
    true as Equal<T.RunStatusJson, Out<typeof S.RunStatusSchema>>,
    true as Equal<T.RunResultJson, Out<typeof S.RunResultSchema>>,
    true as Equal<T.AuditEventJson, Out<typeof S.AuditEventSchema>>,
    true as Equal<T.DirListing, Out<typeof S.DirListingSchema>>,
    true as Equal<T.Readiness, Out<typeof S.ReadinessSchema>>,
  ];
  assert.equal(checks.length, 11);
});

Deno.test("types.ts: the check tells a changed type apart (control)", () => {
  const optionalSignal: Equal<
    T.RunStatusJson,
    Omit<T.RunStatusJson, "signal"> & { signal?: string | null }
  > = false;
  const inputForOutput: Equal<T.PolicyInput, Out<typeof PolicySchema>> = false;
  assert.deepEqual([optionalSignal, inputForOutput], [false, false]);
});

Deno.test("types.ts: ERROR_CODES are the codes the error schema allows", () => {
  const schema: Out<typeof S.ErrorBodySchema>["error"]["code"][] = [
    ...ERROR_CODES,
  ];
  assert.deepEqual(schema, [...ERROR_CODES]);
});
