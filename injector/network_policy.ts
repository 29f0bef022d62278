/**
 * The network part of the policy. Until the injector lands, the only network
 * policy is "deny-all": the sandbox has no network namespace route at all.
 *
 * @module
 */

import { z } from "zod";

/** The network policy: no egress at all. */
export const NetworkPolicySchema = z.literal("deny-all").describe(
  "Egress policy: 'deny-all' gives the sandbox no network path",
);

/** A network policy. */
export type NetworkPolicy = z.output<typeof NetworkPolicySchema>;
