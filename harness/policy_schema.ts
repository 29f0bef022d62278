/**
 * The sandbox policy as data: the zod schemas that validate it (each field
 * with its default and its description, which the JSON Schema for editors
 * is generated from) and its types, written out rather than inferred, so
 * their documentation needs no zod. `policy_schema_test.ts` checks each
 * type equal to what its schema accepts or gives, so they cannot drift.
 * `policy.ts` parses with these and resolves paths.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { type LimitsInput, LimitsSchema } from "./policy_schema.ts";
 * const limits: LimitsInput = { timeoutMs: 5_000 };
 * assert.equal(LimitsSchema.parse(limits).timeoutMs, 5_000);
 * assert.equal(LimitsSchema.safeParse({ timeoutMs: -1 }).success, false);
 * ```
 *
 * @module
 */

import { z } from "zod";
import { DEFAULT_LIMITS, type ResourceLimits } from "../runtime/limits.ts";
import {
  SYSTEM_INFO_KINDS,
  type SystemInfoKind,
} from "../runtime/deno_permissions.ts";
import { SANDBOX_PATHS } from "../runtime/launcher.ts";
import {
  type NetworkPolicy,
  type NetworkPolicyInput,
  NetworkPolicySchema,
} from "../injector/network_policy.ts";
import {
  PlaceholderSecretsSchema,
  UpstreamSchema,
} from "../injector/egress_policy.ts";

const int = (min: number, max: number, what: string, unit: string) =>
  z.number().int().min(min).max(max).describe(`${what} (${unit})`);

/** Resource limits; each one optional with a safe default. */
export const LimitsSchema = z.strictObject({
  timeoutMs: int(1, 86_400_000, "Wall-clock limit of one run", "ms")
    .default(DEFAULT_LIMITS.timeoutMs),
  memoryMb: int(16, 65_536, "JS heap limit and off-heap allowance", "MiB")
    .default(DEFAULT_LIMITS.memoryMb),
  cpuSeconds: int(1, 86_400, "CPU time limit", "seconds")
    .default(DEFAULT_LIMITS.cpuSeconds),
  fileSizeMb: int(1, 1_048_576, "Largest file the program may write", "MiB")
    .default(DEFAULT_LIMITS.fileSizeMb),
  openFiles: int(32, 65_536, "Open file descriptors", "count")
    .default(DEFAULT_LIMITS.openFiles),
  processes: int(16, 4_096, "Processes plus threads", "count")
    .default(DEFAULT_LIMITS.processes),
  // At most 256 MiB: a run's result holds its output as bytes and as a
  // string, and V8 cannot make a string past ~512 MiB (a 1 GiB cap let a
  // 600 MiB print end in "buffer exceeds maximum length", not a result).
  outputBytes: int(
    1,
    256 * 1024 * 1024,
    "Bytes kept of stdout and of stderr each (a run's result holds them in memory; spawn() streams them)",
    "bytes",
  )
    .default(DEFAULT_LIMITS.outputBytes),
  tmpMb: int(1, 4_096, "Size of the private /tmp", "MiB")
    .default(DEFAULT_LIMITS.tmpMb),
  scratchMb: int(1, 1_048_576, "Quota of the scratch directory", "MiB")
    .default(DEFAULT_LIMITS.scratchMb),
}).describe("Hard limits on each run");

/** An input's sandbox path: under `/inputs/`, no `..`, nothing that splits a grant. */
export const InputTargetSchema = z.string()
  .refine((p) => p.startsWith(`${SANDBOX_PATHS.inputs}/`), {
    message: `must be under ${SANDBOX_PATHS.inputs}/`,
  })
  .refine((p) => !p.split("/").includes(".."), {
    message: "must not contain '..'",
  })
  // Deno's --allow-read list is comma-separated: a comma would split a grant.
  .refine((p) => !/[,\0\n\r]/.test(p), {
    message: "must not contain commas, NUL or line breaks",
  });

const InputObjectSchema = z.strictObject({
  source: z.string().min(1).describe(
    "Host path (file or directory), mounted read-only",
  ),
  target: InputTargetSchema.optional().describe(
    `Path inside the sandbox; default ${SANDBOX_PATHS.inputs}/<basename of source>`,
  ),
  copy: z.boolean().default(false).describe(
    "Copy instead of bind-mounting (for sources the sandbox's uid cannot read)",
  ),
});

/**
 * Environment names a policy (or a run) cannot set: they decide where Deno
 * caches, what TLS it trusts, which libraries load and where traffic goes.
 */
export const RESERVED_ENV =
  /^(DENO_.*|LD_.*|SSL_.*|https?_proxy|no_proxy|NODE_(OPTIONS|EXTRA_CA_CERTS|TLS_REJECT_UNAUTHORIZED|USE_ENV_PROXY|PATH|USE_SYSTEM_CA))$/i;

/** Plain environment variables for the program (never secrets). */
export const EnvSchema = z.record(
  z.string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name")
    .refine((n) => !RESERVED_ENV.test(n), {
      message:
        "is reserved by the sandbox runtime (DENO_*, LD_*, SSL_*, proxy and NODE_* TLS/loader variables)",
    }),
  z.string().refine((v) => !/[\0\n\r]/.test(v), {
    message: "must not contain NUL or line breaks",
  }),
);

/**
 * Which system information the program may read (Deno's `sys` permission
 * kinds): "allow" every harmless kind, "deny" none, or a list of kinds.
 */
export const SystemSchema = z.union([
  z.enum(["allow", "deny"]),
  z.array(z.enum(SYSTEM_INFO_KINDS)),
]).default("allow").describe(
  `System information the program may read: "allow" (default) answers every kind (${
    SYSTEM_INFO_KINDS.join(", ")
  }: the sandbox's own hostname, ids and empty network, the kernel release, uptime, load, memory and CPUs), "deny" refuses them all, a list allows those kinds only. Changing the scheduling priority is never allowed`,
);

/** One read-only input, as `HOST[:SANDBOX]` or an object. */
export const InputSchema = z.union([
  z.string().min(1).describe("HOST_PATH or HOST_PATH:SANDBOX_PATH"),
  InputObjectSchema,
]);

/** The whole policy. Unknown keys anywhere are errors. */
export const PolicySchema = z.strictObject({
  $schema: z.string().optional().describe("JSON Schema reference, ignored"),
  limits: LimitsSchema.default(LimitsSchema.parse({})),
  scratch: z.boolean().default(false).describe(
    `Grant a private read-write directory at ${SANDBOX_PATHS.scratch}, kept across runs of one sandbox`,
  ),
  inputs: z.array(InputSchema).default([]).describe("Read-only inputs"),
  network: NetworkPolicySchema.default("deny-all"),
  secrets: PlaceholderSecretsSchema.default({}),
  npm: z.strictObject({
    allow: z.array(z.string().min(1)).default([]).describe(
      "npm packages the program may import ('name' or 'name@range'); installed and bundled by the harness, never fetched inside",
    ),
  }).default({ allow: [] }).describe("npm packages for the program"),
  env: EnvSchema.default({}).describe(
    "Plain environment variables the program can read. Visible to the program: never put secrets here (use 'secrets')",
  ),
  system: SystemSchema,
  audit: z.strictObject({
    permissions: z.boolean().default(true).describe(
      "Record every Deno permission check through the harness's permission broker (~0.13 ms per check)",
    ),
  }).default({ permissions: true }).describe("What to record"),
  upstream: UpstreamSchema.default({ connectTo: [], caCerts: [] }),
}).describe("airlock sandbox policy");

/** Resource limits as written: each one optional, with a safe default. */
export interface LimitsInput {
  /** Wall-clock limit of one run (ms). */
  timeoutMs?: number | undefined;
  /** JS heap limit and off-heap allowance (MiB). */
  memoryMb?: number | undefined;
  /** CPU time limit (seconds). */
  cpuSeconds?: number | undefined;
  /** Largest file the program may write (MiB). */
  fileSizeMb?: number | undefined;
  /** Open file descriptors. */
  openFiles?: number | undefined;
  /** Processes plus threads. */
  processes?: number | undefined;
  /** Bytes kept of stdout and of stderr each. */
  outputBytes?: number | undefined;
  /** Size of the private /tmp (MiB). */
  tmpMb?: number | undefined;
  /** Quota of the scratch directory (MiB). */
  scratchMb?: number | undefined;
}

/**
 * One read-only input as written: `HOST[:SANDBOX]` (the sandbox part under
 * `/inputs/`), or an object.
 */
export type PolicyInputEntry = string | {
  /** Host path (file or directory), mounted read-only. */
  source: string;
  /** Path inside the sandbox; default `/inputs/<basename of source>`. */
  target?: string | undefined;
  /** Copy instead of bind-mounting (for sources the sandbox's uid cannot read). */
  copy?: boolean | undefined;
};

/**
 * A placeholder secret: the program sees an environment variable holding a
 * placeholder; the injector swaps in the real value in request headers,
 * only over TLS, only toward `hosts`.
 */
export interface PlaceholderSecret {
  /** Hosts the real value may be sent to. */
  hosts: string[];
  /** The value, usually a reference: `${env:NAME}` or `${secret:NAME}`. */
  value: string;
}

/**
 * Which system information the program may read: "allow" every kind of
 * {@linkcode SYSTEM_INFO_KINDS}, "deny" none, or the listed kinds.
 */
export type SystemPolicy = "allow" | "deny" | SystemInfoKind[];

/** A policy as written by its author (every field optional). */
export interface PolicyInput {
  /** JSON Schema reference, ignored. */
  $schema?: string | undefined;
  /** Hard limits on each run. */
  limits?: LimitsInput | undefined;
  /** A private read-write `/scratch` kept across runs; default false. */
  scratch?: boolean | undefined;
  /** Read-only inputs. */
  inputs?: PolicyInputEntry[] | undefined;
  /** Egress policy; default "deny-all". */
  network?: NetworkPolicyInput | undefined;
  /** Placeholder secrets by environment variable name. */
  secrets?: Record<string, PlaceholderSecret> | undefined;
  /** npm packages the program may import (`name` or `name@range`). */
  npm?: { allow?: string[] | undefined } | undefined;
  /** Plain environment variables the program can read (never secrets). */
  env?: Record<string, string> | undefined;
  /** System information the program may read; default "allow". */
  system?: SystemPolicy | undefined;
  /** Whether every Deno permission check is recorded; default true. */
  audit?: { permissions?: boolean | undefined } | undefined;
  /** How the injector reaches upstreams. */
  upstream?: {
    /** `HOST1:PORT1:HOST2:PORT2` mappings, as curl's `--connect-to`. */
    connectTo?: string[] | undefined;
    /** PEM files of extra CAs trusted for upstream TLS. */
    caCerts?: string[] | undefined;
  } | undefined;
}

/** A read-only input after normalisation. */
export interface PolicyInputMount {
  /** Absolute host path. */
  source: string;
  /** Absolute sandbox path under /inputs/. */
  target: string;
  /** Copy rather than bind-mount. */
  copy: boolean;
}

/** A validated policy with every default filled in and paths resolved. */
export interface Policy {
  /** Hard limits on each run. */
  limits: ResourceLimits;
  /** Whether the sandbox has a private read-write `/scratch`. */
  scratch: boolean;
  /** Read-only inputs, host paths absolute. */
  inputs: PolicyInputMount[];
  /** Egress policy. */
  network: NetworkPolicy;
  /** Placeholder secrets by environment variable name. */
  secrets: Record<string, PlaceholderSecret>;
  /** npm packages the program may import. */
  npm: { allow: string[] };
  /** Plain environment variables. */
  env: Record<string, string>;
  /** System information the program may read. */
  system: SystemPolicy;
  /** Whether every Deno permission check is recorded. */
  audit: { permissions: boolean };
  /** How the injector reaches upstreams (CA files absolute). */
  upstream: { connectTo: string[]; caCerts: string[] };
}
