/**
 * The options of `Sandbox.create` in the `@deno/sandbox`-compatible API:
 * the SDK's formats parsed with its checks and errors (`timeout`: `"session"`,
 * `"30s"`, `"5m"`; `memory`: bytes, `"1GiB"`, `"1280MiB"`...), options that
 * cannot exist locally refused, and the result mapped onto the options of
 * an airlock sandbox (policy, secrets, injector settings).
 *
 * @module
 */

import type { SandboxOptions as AirlockSandboxOptions } from "../harness/sandbox.ts";
import type { NetworkPolicyInput } from "../injector/network_policy.ts";
import {
  InvalidMemoryError,
  InvalidTimeoutError,
  NO_INBOUND,
  unsupported,
} from "./errors.ts";
import type { SandboxOptions, SecretConfig } from "./types.ts";

/**
 * The longest wall clock airlock allows one run (24 h).
 *
 * @example Usage
 * ```ts
 * import { MAX_RUN_MS } from "./options.ts";
 * console.log(MAX_RUN_MS / 3_600_000); // 24
 * ```
 */
export const MAX_RUN_MS = 86_400_000;
/**
 * The SDK's default memory.
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_MEMORY_MB } from "./options.ts";
 * console.log(DEFAULT_MEMORY_MB); // 1280
 * ```
 */
export const DEFAULT_MEMORY_MB = 1280;

const TIMEOUT_HELP = 'Examples of valid timeout: "session", "600s", "15m"';

/**
 * Parses the SDK's duration (`"30s"`, `"5m"`), or `"session"` / undefined
 * (no lifetime limit: null).
 *
 * @param timeout The option.
 * @returns Milliseconds, or null for "session".
 * @throws {InvalidTimeoutError} For anything else, or a duration of zero.
 *
 * @example Usage
 * ```ts
 * import { parseTimeout } from "./options.ts";
 * import assert from "node:assert/strict";
 * assert.equal(parseTimeout("30s"), 30_000);
 * assert.equal(parseTimeout("5m"), 300_000);
 * assert.equal(parseTimeout("session"), null);
 * assert.throws(() => parseTimeout("1h"), /Invalid timeout/);
 * ```
 */
export function parseTimeout(timeout: string | undefined): number | null {
  if (timeout === undefined || timeout === "session") return null;
  const match = typeof timeout === "string"
    ? /^(\d+)([sm])$/.exec(timeout)
    : null;
  if (!match) {
    throw new InvalidTimeoutError(
      `Invalid timeout: ${String(timeout)}. ${TIMEOUT_HELP}`,
    );
  }
  const amount = Number(match[1]);
  if (amount <= 0) {
    throw new InvalidTimeoutError("Timeout duration must be positive");
  }
  return amount * (match[2] === "m" ? 60_000 : 1_000);
}

/**
 * The SDK's `memory` option: bytes, or a number with a unit (768 to 4096
 * MiB; default 1280 MiB).
 *
 * @example Usage
 * ```ts
 * import type { Memory } from "./mod.ts";
 * const sizes: Memory[] = ["1GiB", "1280MiB", "2GB", 1024 ** 3];
 * console.log(sizes);
 * ```
 */
export type Memory =
  | number
  | `${number}GB`
  | `${number}MB`
  | `${number}kB`
  | `${number}GiB`
  | `${number}MiB`
  | `${number}KiB`;

const UNIT_BYTES: Record<string, number> = {
  GiB: 1024 ** 3,
  MiB: 1024 ** 2,
  KiB: 1024,
  GB: 1e9,
  MB: 1e6,
  kB: 1e3,
};
/** The SDK's accepted range (MiB). */
const MEMORY_RANGE = { min: 768, max: 4096 };

/**
 * Parses the SDK's `memory` option to whole MiB, with the SDK's range check.
 *
 * @param value Bytes, or `"1GiB"`, `"1280MiB"`, `"2GB"`...
 * @returns MiB.
 * @throws {InvalidMemoryError} For a bad format or a value outside 768..4096 MiB.
 *
 * @example Usage
 * ```ts
 * import { parseMemory } from "./options.ts";
 * import assert from "node:assert/strict";
 * assert.equal(parseMemory("1GiB"), 1024);
 * assert.equal(parseMemory("2GB"), 1907);
 * assert.throws(() => parseMemory("64MiB"), /out of range/);
 * ```
 */
export function parseMemory(value: Memory): number {
  let bytes: number;
  if (typeof value === "number") {
    bytes = value;
  } else {
    const match = typeof value === "string"
      ? /^(\d+(?:\.\d+)?)([A-Za-z]+)$/.exec(value)
      : null;
    const unit = match ? UNIT_BYTES[match[2]!] : undefined;
    if (!match || unit === undefined) {
      throw new InvalidMemoryError(
        match
          ? `Unknown memory unit "${match[2]}". Supported units: ${
            Object.keys(UNIT_BYTES).join(", ")
          }`
          : `Invalid memory format: "${
            String(value)
          }". Expected a number or a string like "1GiB", "1280MiB", "1GB", etc.`,
      );
    }
    bytes = Number(match[1]) * unit;
  }
  const mib = Math.floor(bytes / 1024 ** 2);
  if (!(mib >= MEMORY_RANGE.min && mib <= MEMORY_RANGE.max)) {
    throw new InvalidMemoryError(
      `Memory value ${mib} MiB is out of range. It must be between ${MEMORY_RANGE.min} MiB and ${MEMORY_RANGE.max} MiB.`,
    );
  }
  return mib;
}

const UNSUPPORTED_OPTIONS = {
  region: "sandboxes run on this machine",
  root:
    "the sandbox's root is an empty tree with only the Deno runtime; there are no volumes or snapshots locally",
  volumes:
    "there are no Deno Deploy volumes locally; use airlock: { inputs } for read-only host directories",
  port: NO_INBOUND,
  ssh: NO_INBOUND,
} as const;
/**
 * The SDK's options, checked: what `Sandbox.create` needs besides the mapping.
 *
 * @example Usage
 * ```ts
 * import { checkOptions, type CheckedOptions } from "./options.ts";
 * const checked: CheckedOptions = checkOptions({ timeout: "5m" });
 * console.log(checked.lifetimeMs, checked.memoryMb); // 300000 1280
 * ```
 */
export interface CheckedOptions {
  /** The sandbox's lifetime, or null for "session" (until `close()`). */
  lifetimeMs: number | null;
  /** Each run's memory. */
  memoryMb: number;
  /** Each run's longest wall clock. */
  capMs: number;
  /** The secrets, by environment variable name. */
  secrets: [string, SecretConfig][];
}

/**
 * Checks `Sandbox.create`'s options: members that cannot exist locally are
 * refused, `timeout` and `memory` parsed, each secret's shape checked.
 *
 * @param options The SDK's options.
 * @returns What the mapping and the session need.
 * @throws {AirlockUnsupportedError} For `region`, `root`, `volumes`, `port`, `ssh`.
 * @throws {InvalidTimeoutError} For a bad `timeout`.
 * @throws {InvalidMemoryError} For a bad `memory`.
 * @throws {TypeError} For a secret that is not `{ hosts, value }`.
 *
 * @example Usage
 * ```ts
 * import { checkOptions } from "./options.ts";
 * import assert from "node:assert/strict";
 * const checked = checkOptions({ memory: "1GiB", secrets: { KEY: { hosts: ["a.example.com"], value: "v" } } });
 * assert.equal(checked.memoryMb, 1024);
 * assert.deepEqual(checked.secrets.map(([name]) => name), ["KEY"]);
 * assert.throws(() => checkOptions({ ssh: true }), /ssh/);
 * ```
 */
export function checkOptions(options: SandboxOptions): CheckedOptions {
  const { airlock = {}, ...sdk } = options;
  for (const key of ["region", "root", "volumes", "port"] as const) {
    if (sdk[key] !== undefined) {
      unsupported(`Sandbox.create({ ${key} })`, UNSUPPORTED_OPTIONS[key]);
    }
  }
  if (sdk.ssh) {
    unsupported("Sandbox.create({ ssh: true })", UNSUPPORTED_OPTIONS.ssh);
  }
  const lifetimeMs = parseTimeout(sdk.timeout);
  const memoryMb = sdk.memory === undefined
    ? DEFAULT_MEMORY_MB
    : parseMemory(sdk.memory);
  const secrets = Object.entries(sdk.secrets ?? {});
  for (const [name, secret] of secrets) {
    if (typeof secret?.value !== "string" || !Array.isArray(secret.hosts)) {
      throw new TypeError(
        `Cannot create the sandbox: secrets.${name} must be { hosts: string[], value: string }`,
      );
    }
  }
  const capMs = airlock.limits?.timeoutMs ?? MAX_RUN_MS;
  return { lifetimeMs, memoryMb, capMs, secrets };
}

/**
 * The options of the airlock sandbox behind an SDK sandbox: a policy with
 * the scratch directory, `allowNet` and the secrets' hosts as its network
 * policy, each secret as a `${secret:NAME}` reference (the value travels
 * in `secrets`, never in the policy), `env` as plain variables; and the
 * `airlock` settings.
 *
 * @param options The SDK's options.
 * @param checked What {@linkcode checkOptions} returned for them.
 * @param caCerts Upstream CA files (see {@linkcode materialiseCaCerts}).
 * @returns Options for airlock's `Sandbox.create`.
 *
 * @example Usage
 * ```ts
 * import { airlockSandboxOptions, checkOptions } from "./options.ts";
 * import assert from "node:assert/strict";
 * const options = { secrets: { KEY: { hosts: ["a.example.com"], value: "real" } } };
 * const airlock = airlockSandboxOptions(options, checkOptions(options), []);
 * // The policy names the secret; only `secrets` holds its value.
 * assert.deepEqual(airlock.policy?.secrets, { KEY: { hosts: ["a.example.com"], value: "${secret:KEY}" } });
 * assert.deepEqual(airlock.secrets, { KEY: "real" });
 * ```
 */
export function airlockSandboxOptions(
  options: SandboxOptions,
  checked: CheckedOptions,
  caCerts: string[],
): AirlockSandboxOptions {
  const { airlock = {}, ...sdk } = options;
  const { memoryMb, capMs, secrets } = checked;
  return {
    policy: {
      limits: { memoryMb, ...airlock.limits, timeoutMs: capMs },
      scratch: true,
      ...(airlock.inputs ? { inputs: airlock.inputs } : {}),
      ...(airlock.npm ? { npm: { allow: airlock.npm } } : {}),
      network: networkPolicy(sdk.allowNet, secrets),
      secrets: Object.fromEntries(
        secrets.map(([name, s]) => [name, {
          hosts: s.hosts,
          value: `\${secret:${name}}`,
        }]),
      ),
      env: sdk.env ?? {},
      upstream: {
        connectTo: airlock.connectTo ?? [],
        caCerts,
      },
    },
    secrets: Object.fromEntries(secrets.map(([n, s]) => [n, s.value])),
    // Nothing of the harness's environment reaches a policy from here.
    env: () => undefined,
    ...(airlock.injector ? { injector: airlock.injector } : {}),
    ...(airlock.npmCacheDir ? { npmCacheDir: airlock.npmCacheDir } : {}),
    ...(airlock.tmpDir ? { tmpDir: airlock.tmpDir } : {}),
    ...(airlock.denoPath ? { denoPath: airlock.denoPath } : {}),
    ...(airlock.onAudit ? { onAudit: airlock.onAudit } : {}),
  };
}

/**
 * The network policy for `allowNet` and the secrets' hosts.
 *
 * @param allowNet The SDK option.
 * @param secrets The secrets.
 * @returns The airlock network policy.
 *
 * @example Usage
 * ```ts
 * import { networkPolicy } from "./options.ts";
 * import assert from "node:assert/strict";
 * assert.equal(networkPolicy(undefined, []), "allow-all");
 * assert.equal(networkPolicy([], []), "deny-all");
 * assert.deepEqual(networkPolicy(["10.0.0.5:8080"], [["K", { hosts: ["a.example.com"], value: "v" }]]), {
 *   allow: ["10.0.0.5:8080", "a.example.com"],
 *   subnets: { allow: ["10.0.0.5/32"] },
 * });
 * ```
 */
export function networkPolicy(
  allowNet: string[] | undefined,
  secrets: [string, SecretConfig][],
): NetworkPolicyInput {
  if (allowNet === undefined) return "allow-all";
  if (!Array.isArray(allowNet)) {
    throw new TypeError("Cannot create the sandbox: allowNet must be an array");
  }
  const hosts = [
    ...new Set([...allowNet, ...secrets.flatMap(([, s]) => s.hosts)]),
  ];
  if (hosts.length === 0) return "deny-all";
  const subnets = hosts.flatMap((pattern) => {
    const v6 = /^\[([0-9a-fA-F:.]+)\](?::\d+)?$/.exec(pattern);
    if (v6) return [`${v6[1]}/128`];
    const v4 = /^(\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?$/.exec(pattern);
    return v4 ? [`${v4[1]}/32`] : [];
  });
  return {
    allow: hosts,
    ...(subnets.length > 0 ? { subnets: { allow: subnets } } : {}),
  };
}

/**
 * CA entries given as PEM text become temporary files (the harness reads
 * them once, at creation); file paths pass through.
 *
 * @param entries PEM file paths, or PEM text.
 * @returns The file paths, and how to remove the temporary files.
 *
 * @example Usage
 * ```ts
 * import { materialiseCaCerts } from "./options.ts";
 * const ca = await materialiseCaCerts(["/etc/ssl/certs/my-ca.pem"]);
 * try {
 *   console.log(ca.paths); // PEM text would be a temporary file's path
 * } finally {
 *   await ca.cleanup();
 * }
 * ```
 */
export async function materialiseCaCerts(
  entries: readonly string[],
): Promise<{ paths: string[]; cleanup(): Promise<void> }> {
  const temporary: string[] = [];
  const paths: string[] = [];
  for (const entry of entries) {
    if (!entry.includes("-----BEGIN CERTIFICATE-----")) {
      paths.push(entry);
      continue;
    }
    const file = await Deno.makeTempFile({ prefix: "airlock-upstream-ca-" });
    temporary.push(file);
    await Deno.writeTextFile(file, entry);
    paths.push(file);
  }
  return {
    paths,
    cleanup: async () => {
      await Promise.all(temporary.map((f) => Deno.remove(f).catch(() => {})));
    },
  };
}
