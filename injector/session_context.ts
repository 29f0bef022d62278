/**
 * What a proxy session needs from its binding: the live policy (network
 * decisions, placeholder secrets, how to dial upstreams), the audit sink,
 * the CA with the sandbox's own leaf cache, the upstream pool with the
 * sandbox's partition of it, and the run's open exchanges.
 *
 * @module
 */

import type { AuditSink } from "./audit.ts";
import type { CertificateAuthority, LeafCache } from "./ca.ts";
import type { Exchange, ExchangeLog } from "./_exchanges.ts";
import type { HostPattern } from "./host_pattern.ts";
import type { CompiledNetworkPolicy } from "./network_policy.ts";
import type { SyntheticNames } from "./synthetic_names.ts";
import type { DialPolicy, UpstreamPool } from "./upstream.ts";

/**
 * A placeholder secret: the sandbox holds `token`; `value` goes on the wire.
 *
 * @example Usage
 * ```ts
 * import type { Placeholder } from "./session_context.ts";
 * import { parseHostPattern } from "./host_pattern.ts";
 *
 * const placeholder: Placeholder = {
 *   name: "API_KEY",
 *   token: "airlock-placeholder-API_KEY-0123456789abcdef",
 *   value: "sk-live-0123456789abcdef",
 *   hosts: [{ pattern: parseHostPattern("api.example.com"), value: true }],
 * };
 * console.log(placeholder.name); // the sandbox sees only the token
 * ```
 */
export interface Placeholder {
  /** Environment variable name the sandbox sees it under. */
  name: string;
  /** The opaque stand-in the sandbox sees. */
  token: string;
  /** The real value (harness memory only). */
  value: string;
  /** Hosts the real value may be sent to. */
  hosts: { pattern: HostPattern; value: true }[];
}

/**
 * The policy in force for one binding, re-read at every request.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ActivePolicy } from "./session_context.ts";
 * import { AddressGuard } from "./address_guard.ts";
 * import { compileNetworkPolicy } from "./network_policy.ts";
 * import { systemResolver } from "./resolver.ts";
 *
 * const active: ActivePolicy = {
 *   network: compileNetworkPolicy({ allow: ["api.example.com"] }, {}),
 *   placeholders: [],
 *   dial: {
 *     resolver: systemResolver,
 *     connectTo: [],
 *     guard: new AddressGuard({ hostAddresses: [] }),
 *     caCerts: [],
 *   },
 * };
 * assert.equal(active.network.decide("evil.example", 443).allowed, false);
 * ```
 */
export interface ActivePolicy {
  /** Destinations and rules. */
  network: CompiledNetworkPolicy;
  /** Placeholder secrets. */
  placeholders: readonly Placeholder[];
  /** How to dial upstreams. */
  dial: DialPolicy;
}

/** What a connection needs from its binding. */
export interface SessionContext {
  /** The sandbox this socket belongs to (the socket is its identity). */
  sandboxId: string;
  /** The run, when known. */
  runId: string | undefined;
  /** The current policy (live). */
  policy: () => ActivePolicy;
  /** Audit sink. */
  audit: AuditSink;
  /** Issues leaf certificates. */
  ca: CertificateAuthority;
  /** The sandbox's own leaf certificates (never another sandbox's). */
  leaves: LeafCache;
  /** Upstream connections. */
  pool: UpstreamPool;
  /** The sandbox's partition of the pool (compared by identity). */
  poolOwner: object;
  /** The run's exchanges that have not finished. */
  exchanges: ExchangeLog;
  /** The exchange being handled (set per request; its `record` is `audit`). */
  exchange?: Exchange;
  /**
   * The run's transparent egress: the names it looked up and the address
   * each was answered with, and what to call when its in-sandbox bridge
   * has opened its DNS channel (every listener of the bridge is bound).
   */
  bridge?: { names: SyntheticNames; opened(): void };
}
