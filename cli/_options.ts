/**
 * Command-line options shared by `deno task run` and `deno task audit`: the
 * sandbox's limits, files and network, merged over a policy file, and the
 * mapping of errors to exit codes.
 *
 * @module
 */

import { BundleError } from "../harness/bundle/bundle.ts";
import { InputError } from "../harness/_run/inputs.ts";
import {
  loadPolicyFile,
  parsePolicy,
  type Policy,
  PolicyError,
  type PolicyInput,
} from "../harness/policy.ts";
import type { AuditEvent } from "../harness/run_result.ts";
import { SandboxSetupError, ScratchQuotaError } from "../harness/sandbox.ts";
import type { Rule } from "../injector/network_policy.ts";
import { HostError, parseHostPattern } from "../injector/host_pattern.ts";
import { MissingHostToolError } from "../runtime/host_tools.ts";
import { EXIT_CODES } from "./exit_codes.ts";
import { parseDuration, parseSizeMb } from "./_units.ts";
import { UsageError } from "./_args.ts";

export { UsageError };

/** `node:util` parseArgs options for the shared flags. */
export const SANDBOX_FLAGS = {
  policy: { type: "string" as const },
  timeout: { type: "string" as const },
  memory: { type: "string" as const },
  scratch: { type: "boolean" as const, default: false },
  input: {
    type: "string" as const,
    multiple: true as const,
    default: [] as string[],
  },
  "allow-net": {
    type: "string" as const,
    multiple: true as const,
    default: [] as string[],
  },
  inject: {
    type: "string" as const,
    multiple: true as const,
    default: [] as string[],
  },
  "connect-to": {
    type: "string" as const,
    multiple: true as const,
    default: [] as string[],
  },
  "upstream-cacert": {
    type: "string" as const,
    multiple: true as const,
    default: [] as string[],
  },
};

/** Help text for the shared flags. */
export const SANDBOX_FLAGS_HELP = `Sandbox:
  --policy FILE          policy file (JSON or JSONC, see schema/policy.schema.json)
  --timeout DURATION     wall-clock limit with a unit: 500ms, 10s, 2m (at most 24h)
  --memory SIZE          JS heap and off-heap limit: 256M, 1G (bare number = MiB,
                         like the policy's memoryMb)
  --scratch              grant a private read-write directory at /scratch (cwd)
  --input HOST[:SANDBOX] mount a host file or directory read-only (repeatable);
                         SANDBOX defaults to /inputs/<name> and must be under /inputs/

Network (through the injector; default: no network at all):
  --allow-net PATTERN    allow a host: api.example.com, *.example.com (subdomains,
                         not the apex), host:8443; without a port: 443 and 80 (repeatable)
  --inject 'PATTERN:Header=value'
                         set a header on requests to PATTERN (and allow it);
                         value may reference \${env:NAME} from this environment,
                         e.g. 'api.example.com:Authorization=Bearer \${env:API_TOKEN}'
  --connect-to HOST1:PORT1:HOST2:PORT2
                         send requests for HOST1:PORT1 to HOST2:PORT2 (curl's meaning;
                         the address guard does not apply to it) (repeatable)
  --upstream-cacert FILE trust this CA (PEM) for upstream TLS, besides the system roots`;

/** The shared flags, parsed. */
export interface SandboxFlags {
  policyFile: string | undefined;
  timeoutMs: number | undefined;
  memoryMb: number | undefined;
  scratch: boolean;
  inputs: string[];
  allowNet: string[];
  inject: { pattern: string; header: string; value: string }[];
  connectTo: string[];
  upstreamCaCerts: string[];
}

/**
 * Interprets parsed shared flags.
 *
 * @param values `parseArgs` values containing {@linkcode SANDBOX_FLAGS}.
 * @returns The flags.
 * @throws {UsageError} For bad durations, sizes or --inject values.
 *
 * @example Usage
 * ```ts
 * import { readSandboxFlags } from "./_options.ts";
 * const flags = readSandboxFlags({ timeout: "5s", scratch: true, input: [], "allow-net": [], inject: [], "connect-to": [], "upstream-cacert": [] });
 * console.log(flags.timeoutMs); // 5000
 * ```
 */
export function readSandboxFlags(values: {
  policy?: string | undefined;
  timeout?: string | undefined;
  memory?: string | undefined;
  scratch: boolean;
  input: string[];
  "allow-net": string[];
  inject: string[];
  "connect-to": string[];
  "upstream-cacert": string[];
}): SandboxFlags {
  try {
    return {
      policyFile: values.policy,
      timeoutMs: values.timeout === undefined
        ? undefined
        : parseDuration(values.timeout),
      memoryMb: values.memory === undefined
        ? undefined
        : parseSizeMb(values.memory),
      scratch: values.scratch,
      inputs: values.input.map(checkInput),
      allowNet: values["allow-net"],
      inject: values.inject.map(parseInject),
      connectTo: values["connect-to"],
      upstreamCaCerts: values["upstream-cacert"],
    };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * `--input HOST[:SANDBOX]` whose SANDBOX part is not under `/inputs/`: the
 * policy takes the whole text as the host path (`data.csv:/etc/x` is a
 * legal file name) and would report a missing file. When that file does not
 * exist but the part before the last colon does, the writer meant a sandbox
 * path: say where it must be instead.
 */
function checkInput(text: string): string {
  if (text.includes(":/inputs/")) return text;
  const colon = text.lastIndexOf(":");
  if (colon <= 0 || exists(text)) return text;
  const host = text.slice(0, colon);
  const target = text.slice(colon + 1);
  if (!exists(host)) return text;
  const name = host.replace(/\/+$/, "").split("/").at(-1) || "data";
  throw new UsageError(
    `Cannot mount --input '${text}': the path inside the sandbox ('${target}') must be under /inputs/, e.g. '${host}:/inputs/${name}' (or '${host}' alone for /inputs/${name})`,
  );
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * `--allow-net` and `--inject` patterns, checked as the policy will check
 * them, so a refusal names the flag instead of a path inside the policy.
 */
function checkPatterns(flags: SandboxFlags, base: Policy): void {
  const allowPublicSuffixWildcard = typeof base.network === "object" &&
    base.network.allowPublicSuffixWildcards === true;
  const given = [
    ...flags.allowNet.map((pattern) => ["--allow-net", pattern] as const),
    ...flags.inject.map(({ pattern }) => ["--inject", pattern] as const),
  ];
  for (const [flag, pattern] of given) {
    try {
      parseHostPattern(pattern, { allowPublicSuffixWildcard });
    } catch (error) {
      if (!(error instanceof HostError)) throw error;
      const why = error.message.replace(
        /^Cannot parse host pattern .*? as /,
        "",
      );
      throw new UsageError(`Cannot use ${flag} '${pattern}': ${why}`);
    }
  }
}

/**
 * Splits `PATTERN:Header=value`: the header name is the text between the last
 * colon before the first '=' and that '='; the pattern may carry a port.
 */
function parseInject(
  text: string,
): { pattern: string; header: string; value: string } {
  const eq = text.indexOf("=");
  const left = eq === -1 ? "" : text.slice(0, eq);
  const colon = left.lastIndexOf(":");
  if (eq === -1 || colon <= 0 || colon === left.length - 1) {
    throw new SyntaxError(
      `Cannot parse --inject '${text}': use 'PATTERN:Header=value', e.g. 'api.example.com:Authorization=Bearer \${env:TOKEN}'`,
    );
  }
  return {
    pattern: left.slice(0, colon),
    header: left.slice(colon + 1),
    value: text.slice(eq + 1),
  };
}

/** Adds --allow-net and --inject to a network policy (flags extend it). */
function mergeNetwork(
  network: Policy["network"],
  flags: SandboxFlags,
): Policy["network"] {
  if (flags.allowNet.length === 0 && flags.inject.length === 0) return network;
  if (network === "allow-all" && flags.inject.length === 0) return network;
  const allow: Record<string, Rule[]> = {};
  if (typeof network === "object") {
    if (Array.isArray(network.allow)) {
      for (const p of network.allow) allow[p] = [];
    } else Object.assign(allow, structuredClone(network.allow));
  }
  for (const pattern of flags.allowNet) allow[pattern] ??= [];
  for (const { pattern, header, value } of flags.inject) {
    (allow[pattern] ??= []).push({
      transform: [{ headers: { [header]: value } }],
      allowInsecure: false,
    });
  }
  return { ...(typeof network === "object" ? network : {}), allow };
}

/**
 * Merges the flags over the policy file (flags win or extend).
 *
 * @param flags Parsed flags.
 * @returns The policy to create the sandbox with.
 * @throws {PolicyError} If the policy file is unreadable or invalid.
 *
 * @example Usage
 * ```ts ignore
 * const policy = await buildPolicy(readSandboxFlags(values));
 * ```
 */
export async function buildPolicy(flags: SandboxFlags): Promise<PolicyInput> {
  const base: Policy = flags.policyFile
    ? await loadPolicyFile(flags.policyFile)
    : parsePolicy({});
  checkPatterns(flags, base);
  const absolute = (
    f: string,
  ) => (f.startsWith("/") ? f : `${Deno.cwd()}/${f}`);
  return {
    ...base,
    network: mergeNetwork(base.network, flags),
    upstream: {
      connectTo: [...base.upstream.connectTo, ...flags.connectTo],
      caCerts: [
        ...base.upstream.caCerts,
        ...flags.upstreamCaCerts.map(absolute),
      ],
    },
    limits: {
      ...base.limits,
      ...(flags.timeoutMs !== undefined ? { timeoutMs: flags.timeoutMs } : {}),
      ...(flags.memoryMb !== undefined ? { memoryMb: flags.memoryMb } : {}),
    },
    scratch: base.scratch || flags.scratch,
    inputs: [...base.inputs, ...flags.inputs],
  };
}

/**
 * Opens a JSONL audit file for appending; fails early if it is unwritable.
 *
 * @param path The file.
 * @returns A writer of one event per line.
 * @throws {UsageError} If the file cannot be opened.
 *
 * @example Usage
 * ```ts ignore
 * const audit = await openAuditFile("audit.jsonl");
 * ```
 */
export async function openAuditFile(
  path: string,
): Promise<{ write(event: AuditEvent): void }> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { append: true, create: true, write: true });
  } catch (error) {
    throw new UsageError(
      `Cannot open audit file '${path}': ${(error as Error).message}`,
    );
  }
  const encoder = new TextEncoder();
  return {
    write(event) {
      file.writeSync(encoder.encode(JSON.stringify(event) + "\n"));
    },
  };
}

/**
 * Prints an error and returns the exit code for it.
 *
 * @param error What went wrong.
 * @returns The documented exit code.
 *
 * @example Usage
 * ```ts
 * import { reportError, UsageError } from "./_options.ts";
 * console.log(reportError(new UsageError("bad flag"))); // 125
 * ```
 */
export function reportError(error: unknown): number {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`airlock: ${message}`);
  if (
    error instanceof UsageError || error instanceof PolicyError ||
    error instanceof InputError ||
    error instanceof SyntaxError || error instanceof TypeError ||
    error instanceof RangeError
  ) {
    return EXIT_CODES.usage;
  }
  if (error instanceof BundleError) return EXIT_CODES.bundle;
  if (error instanceof ScratchQuotaError) return EXIT_CODES.diskLimit;
  return EXIT_CODES.setup; // MissingHostToolError, SandboxSetupError, anything else
}

// Re-exported for the CLIs' error handling.
export { MissingHostToolError, SandboxSetupError };
