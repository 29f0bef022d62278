/**
 * What an HTTP API client may ask for: the operator's ceilings on limits,
 * sandboxes and runs (per token), the limits a client gets where it sets
 * none, and the switches for policy parts that reach the server itself
 * (host inputs, upstream mappings and CAs, private subnets, the server's
 * environment, npm packages).
 *
 * The API's clients are less trusted than the operator: they write
 * policies, but the server's files, environment, networks and capacity
 * stay out of their reach unless the operator says otherwise.
 *
 * @module
 */

import { z } from "zod";
import { DEFAULT_LIMITS, type ResourceLimits } from "../runtime/limits.ts";
import { LimitsSchema, type PolicyIssue } from "../harness/policy.ts";

const limit = LimitsSchema.shape;

/** Every limit optional, within the policy's own ranges. */
export const PartialLimitsSchema = z.strictObject({
  timeoutMs: limit.timeoutMs.unwrap().optional(),
  memoryMb: limit.memoryMb.unwrap().optional(),
  cpuSeconds: limit.cpuSeconds.unwrap().optional(),
  fileSizeMb: limit.fileSizeMb.unwrap().optional(),
  openFiles: limit.openFiles.unwrap().optional(),
  processes: limit.processes.unwrap().optional(),
  outputBytes: limit.outputBytes.unwrap().optional(),
  tmpMb: limit.tmpMb.unwrap().optional(),
  scratchMb: limit.scratchMb.unwrap().optional(),
});

const count = (min: number, max: number, what: string) =>
  z.number().int().min(min).max(max).optional().describe(what);

/** Ceilings as written in a server config (every field optional). */
export const CeilingsSchema = z.strictObject({
  limits: PartialLimitsSchema.optional().describe(
    "The most a client's policy (or a run's timeoutMs) may ask for, per limit; more is refused with 400 over_ceiling",
  ),
  defaults: PartialLimitsSchema.optional().describe(
    "Limits a client's policy gets where it sets none (default: the policy defaults, lowered to the ceiling)",
  ),
  sandboxes: count(1, 10_000, "Sandboxes one token may have at once"),
  runsPerToken: count(1, 1_000, "Runs one token may have live at once"),
  runsPerSandbox: count(1, 1_000, "Runs one sandbox may have live at once"),
  queuedRunsPerToken: count(
    0,
    10_000,
    "Runs of one token that wait for a slot (past the caps above); more are refused with 429 too_many_runs. 0 refuses at once",
  ),
}).describe("Per-token ceilings");

/** Ceilings as written (every field optional). */
export type CeilingsInput = z.input<typeof CeilingsSchema>;

/** Resolved ceilings of one token. */
export interface Ceilings {
  /** The most a client may ask for, per limit. */
  limits: ResourceLimits;
  /** What a client gets where it sets no limit (each at most its ceiling). */
  defaults: ResourceLimits;
  /** Sandboxes at once. */
  sandboxes: number;
  /** Live runs at once. */
  runsPerToken: number;
  /** Live runs of one sandbox at once. */
  runsPerSandbox: number;
  /** Runs waiting for a slot. */
  queuedRunsPerToken: number;
}

/**
 * The ceilings of a server started without a config: enough for generated
 * scripts and agent tools, small enough that one client cannot take the
 * machine (a 1 GiB output held in memory, a 4 GiB /tmp in RAM, 64 GiB heaps
 * or thousands of processes were each a client's choice before).
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_CEILINGS } from "./ceilings.ts";
 * console.log(DEFAULT_CEILINGS.limits.outputBytes); // 16777216
 * ```
 */
export const DEFAULT_CEILINGS: Readonly<Ceilings> = Object.freeze({
  limits: Object.freeze({
    timeoutMs: 300_000,
    memoryMb: 1_024,
    cpuSeconds: 300,
    fileSizeMb: 256,
    openFiles: 1_024,
    processes: 256,
    outputBytes: 16 * 1024 * 1024,
    tmpMb: 256,
    scratchMb: 1_024,
  }),
  defaults: DEFAULT_LIMITS,
  sandboxes: 16,
  runsPerToken: 2,
  runsPerSandbox: 2,
  queuedRunsPerToken: 16,
});

const LIMIT_NAMES = Object.keys(DEFAULT_LIMITS) as (keyof ResourceLimits)[];

const UNITS: Record<keyof ResourceLimits, string> = {
  timeoutMs: " ms",
  memoryMb: " MiB",
  cpuSeconds: " s",
  fileSizeMb: " MiB",
  openFiles: "",
  processes: "",
  outputBytes: " bytes",
  tmpMb: " MiB",
  scratchMb: " MiB",
};

/**
 * Resolves written ceilings over a base (the server's, or the defaults).
 * A limit's default is lowered to its ceiling unless written.
 *
 * @param input Ceilings as written (validated).
 * @param base What unwritten fields take.
 * @returns The resolved ceilings and any problem (a written default over
 *   its ceiling), by path under `ceilings`.
 *
 * @example Usage
 * ```ts
 * import { resolveCeilings } from "./ceilings.ts";
 * const { ceilings } = resolveCeilings({ limits: { memoryMb: 128 } });
 * console.log(ceilings.defaults.memoryMb); // 128
 * ```
 */
export function resolveCeilings(
  input: CeilingsInput = {},
  base: Readonly<Ceilings> = DEFAULT_CEILINGS,
): { ceilings: Ceilings; issues: PolicyIssue[] } {
  const limits = { ...base.limits, ...definedOnly(input.limits) };
  const written = definedOnly(input.defaults);
  const defaults = { ...base.defaults };
  const issues: PolicyIssue[] = [];
  for (const name of LIMIT_NAMES) {
    const value = written[name];
    if (value === undefined) {
      defaults[name] = Math.min(defaults[name], limits[name]);
    } else if (value > limits[name]) {
      issues.push({
        path: `defaults.${name}`,
        message: `${value}${UNITS[name]} is over its ceiling (limits.${name}: ${
          limits[name]
        }${UNITS[name]})`,
      });
    } else {
      defaults[name] = value;
    }
  }
  return {
    ceilings: {
      limits,
      defaults,
      sandboxes: input.sandboxes ?? base.sandboxes,
      runsPerToken: input.runsPerToken ?? base.runsPerToken,
      runsPerSandbox: input.runsPerSandbox ?? base.runsPerSandbox,
      queuedRunsPerToken: input.queuedRunsPerToken ?? base.queuedRunsPerToken,
    },
    issues,
  };
}

/**
 * A client's policy with the server's default limits filled in where it
 * sets none. Anything that is not an object is returned as is (the policy
 * parser reports it).
 *
 * @param policy The policy as the client sent it.
 * @param defaults The limits it gets by default.
 * @returns The policy to parse.
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_CEILINGS, withDefaultLimits } from "./ceilings.ts";
 * const policy = withDefaultLimits({ limits: { memoryMb: 64 } }, DEFAULT_CEILINGS.defaults);
 * console.log((policy as { limits: { timeoutMs: number } }).limits.timeoutMs); // 30000
 * ```
 */
export function withDefaultLimits(
  policy: unknown,
  defaults: Readonly<ResourceLimits>,
): unknown {
  if (policy === undefined || policy === null) return { limits: defaults };
  if (!isRecord(policy)) return policy;
  if (policy.limits !== undefined && !isRecord(policy.limits)) return policy;
  return { ...policy, limits: { ...defaults, ...definedOnly(policy.limits) } };
}

/**
 * The limits over their ceilings, one issue each, naming the ceiling.
 * Values that are not numbers are skipped (the policy parser reports them),
 * so a client's limits can be checked as sent.
 *
 * @param limits Limits as sent, or validated.
 * @param ceilings The caller's ceilings.
 * @param prefix Path of `limits` in the request (`policy.limits`).
 * @returns Every limit over its ceiling.
 *
 * @example Usage
 * ```ts
 * import { ceilingIssues, DEFAULT_CEILINGS } from "./ceilings.ts";
 * const issues = ceilingIssues({ tmpMb: 4096 }, DEFAULT_CEILINGS, "policy.limits");
 * console.log(issues[0]?.path); // "policy.limits.tmpMb"
 * ```
 */
export function ceilingIssues(
  limits: unknown,
  ceilings: Readonly<Ceilings>,
  prefix: string,
): PolicyIssue[] {
  if (!isRecord(limits)) return [];
  const issues: PolicyIssue[] = [];
  for (const name of LIMIT_NAMES) {
    const value = limits[name];
    const most = ceilings.limits[name];
    if (typeof value === "number" && value > most) {
      issues.push({
        path: prefix ? `${prefix}.${name}` : name,
        message: `${value}${
          UNITS[name]
        } is over this server's ceiling of ${most}${UNITS[name]}`,
      });
    }
  }
  return issues;
}

/** Which policy parts that reach the server a client may use. */
export interface ClientRules {
  /** npm packages (`npm.allow`): the harness installs and bundles them. */
  npm: boolean;
  /** Host `inputs`: paths on the server, read as root. */
  inputs: boolean;
  /** `upstream.connectTo`: mappings that bypass the address guard. */
  connectTo: boolean;
  /** `upstream.caCerts`: files on the server. */
  caCerts: boolean;
  /** `network.subnets.allow`: the server's private networks. */
  subnets: boolean;
  /** `${env:NAME}` references: the server's environment. */
  serverEnv: boolean;
}

/** The switches as written in a server config. */
export const ClientRulesSchema = z.strictObject({
  npm: z.boolean().optional().describe(
    "Clients may list npm packages in npm.allow (the server installs and bundles them); default false: 400 npm_not_allowed",
  ),
  inputs: z.boolean().optional().describe(
    "Clients may mount host paths as inputs (read as root: /etc/shadow would be one); default false",
  ),
  connectTo: z.boolean().optional().describe(
    "Clients may set upstream.connectTo (it bypasses the address guard: loopback services, cloud metadata); default false",
  ),
  caCerts: z.boolean().optional().describe(
    "Clients may name CA files on the server in upstream.caCerts; default false",
  ),
  subnets: z.boolean().optional().describe(
    "Clients may open private ranges with network.subnets.allow (the server's networks); default false",
  ),
  serverEnv: z.boolean().optional().describe(
    "Clients may use ${env:NAME} references to the server's environment (other clients' tokens could be there); default false",
  ),
}).describe("What clients may set; everything is refused by default");

/** Nothing that reaches the server (the default). */
export const NO_CLIENT_RULES: Readonly<ClientRules> = Object.freeze({
  npm: false,
  inputs: false,
  connectTo: false,
  caCerts: false,
  subnets: false,
  serverEnv: false,
});

/**
 * The parts of a client's policy its rules refuse (npm is reported on its
 * own: see {@linkcode usesNpm}).
 *
 * @param policy The policy as the client sent it.
 * @param rules What the client may use.
 * @returns One issue per refused part, by path under `policy`.
 *
 * @example Usage
 * ```ts
 * import { clientPolicyIssues, NO_CLIENT_RULES } from "./ceilings.ts";
 * const issues = clientPolicyIssues({ inputs: ["/etc"] }, NO_CLIENT_RULES);
 * console.log(issues[0]?.path); // "policy.inputs"
 * ```
 */
export function clientPolicyIssues(
  policy: unknown,
  rules: Readonly<ClientRules>,
): PolicyIssue[] {
  if (!isRecord(policy)) return [];
  const issues: PolicyIssue[] = [];
  if (!rules.inputs && Array.isArray(policy.inputs) && policy.inputs.length) {
    // Inputs are host paths read as root: /etc/shadow would be one.
    issues.push({
      path: "policy.inputs",
      message:
        "host inputs are refused by this server: upload files with PUT /sandboxes/{id}/files/{path} instead",
    });
  }
  const upstream = policy.upstream;
  if (isRecord(upstream)) {
    if (
      !rules.connectTo && Array.isArray(upstream.connectTo) &&
      upstream.connectTo.length > 0
    ) {
      // connectTo bypasses the address guard: it could aim at the server's
      // loopback services or cloud metadata.
      issues.push({
        path: "policy.upstream.connectTo",
        message:
          "is refused by this server (it bypasses the address guard); its operator sets mappings in the server config",
      });
    }
    if (
      !rules.caCerts && Array.isArray(upstream.caCerts) &&
      upstream.caCerts.length > 0
    ) {
      // A path names a file on the server; its error would say what is there.
      issues.push({
        path: "policy.upstream.caCerts",
        message:
          "names files on the server: refused by this server; its operator sets CAs in the server config",
      });
    }
  }
  issues.push(...networkIssues(policy.network, "policy.network", rules));
  return issues;
}

/**
 * The parts of a network policy its rules refuse.
 *
 * @param network The network policy as the client sent it.
 * @param path Its path in the request.
 * @param rules What the client may use.
 * @returns One issue per refused part.
 *
 * @example Usage
 * ```ts
 * import { networkIssues, NO_CLIENT_RULES } from "./ceilings.ts";
 * const issues = networkIssues({ allow: ["a.test"], subnets: { allow: ["10.0.0.0/8"] } }, "network", NO_CLIENT_RULES);
 * console.log(issues[0]?.path); // "network.subnets.allow"
 * ```
 */
export function networkIssues(
  network: unknown,
  path: string,
  rules: Readonly<ClientRules>,
): PolicyIssue[] {
  const subnets = isRecord(network) ? network.subnets : undefined;
  if (
    !rules.subnets && isRecord(subnets) && Array.isArray(subnets.allow) &&
    subnets.allow.length > 0
  ) {
    // Opening private ranges would let sandboxes probe the server's network.
    return [{
      path: `${path}.subnets.allow`,
      message: "is refused by this server (it opens the server's network)",
    }];
  }
  return [];
}

/**
 * Whether a client's policy lists npm packages.
 *
 * @param policy The policy as the client sent it.
 * @returns True when `npm.allow` is a non-empty list.
 *
 * @example Usage
 * ```ts
 * import { usesNpm } from "./ceilings.ts";
 * console.log(usesNpm({ npm: { allow: ["ms"] } })); // true
 * ```
 */
export function usesNpm(policy: unknown): boolean {
  return isRecord(policy) && isRecord(policy.npm) &&
    Array.isArray(policy.npm.allow) && policy.npm.allow.length > 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The fields that are set (written `undefined` means "not set"). */
function definedOnly<T extends object>(
  value: T | undefined,
): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(
    Object.entries(value ?? {}).filter(([, v]) => v !== undefined),
  ) as { [K in keyof T]?: Exclude<T[K], undefined> };
}
