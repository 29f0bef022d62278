/**
 * `deno task run [options] <file | -> [-- args...]`: runs one program in a
 * sandbox and exits with its exit code (or one of airlock's, see --help).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { BundleError } from "../bundle.ts";
import { InputError } from "../_inputs.ts";
import {
  loadPolicyFile,
  parsePolicy,
  type Policy,
  PolicyError,
  type PolicyInput,
} from "../policy.ts";
import { type AuditEvent, runResultToJson } from "../run_result.ts";
import type { Rule } from "../../injector/network_policy.ts";
import { type RunOptions, Sandbox, SandboxSetupError } from "../sandbox.ts";
import { MissingHostToolError } from "../../runtime/host_tools.ts";
import { EXIT_CODES, exitCodeFor } from "./exit_codes.ts";
import { parseDuration, parseSizeMb } from "./_units.ts";

const HELP = `airlock run: run a Deno program in an ephemeral bubblewrap sandbox

Usage:
  deno task run [options] <file.ts | -> [-- program args...]

  <file.ts>   the program (TypeScript or JavaScript); its relative imports are
              bundled from its own directory. '-' reads the program from stdin.

Options:
  --policy FILE          policy file (JSON or JSONC, see schema/policy.schema.json)
  --timeout DURATION     wall-clock limit: 500ms, 10s, 2m (bare number = seconds)
  --memory SIZE          JS heap and off-heap limit: 256M, 1G (bare number = MiB)
  --scratch              grant a private read-write directory at /scratch (cwd)
  --input HOST[:SANDBOX] mount a host file or directory read-only (repeatable);
                         SANDBOX defaults to /inputs/<name> and must be under /inputs/
  --json                 print the RunResult as JSON on stdout instead of streaming
  -h, --help             show this help

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
  --upstream-cacert FILE trust this CA (PEM) for upstream TLS, besides the system roots
  --audit FILE           append every audit event as a JSON line to FILE

The sandbox has no environment, no host files except what you mount, no
network but the injector, no subprocesses; see README.md for the whole model.

Exit codes:
  0-255  the program's own exit code, when it exited by itself
  ${EXIT_CODES.timeout}    timeout           ${EXIT_CODES.oom}  out of memory     ${EXIT_CODES.cpu}  CPU-time limit
  ${EXIT_CODES.fileSize}    file-size limit   ${EXIT_CODES.diskLimit}  scratch quota     ${EXIT_CODES.outputLimit}  output cap
  ${EXIT_CODES.killed}    killed (Ctrl-C)   ${EXIT_CODES.crashed}  crashed (signal)
  ${EXIT_CODES.usage}    bad usage, policy or input
  ${EXIT_CODES.setup}    sandbox could not start (run 'deno task doctor')
  ${EXIT_CODES.bundle}    program refused before running (syntax error, unavailable import)

Examples:
  deno task run examples/hello.ts
  echo 'console.log(await Deno.readTextFile("/inputs/data.csv"))' | deno task run --input ./data.csv -
  deno task run --timeout 5s --memory 128M --json script.ts -- --verbose
  deno task run --inject 'api.github.com:Authorization=Bearer \${env:GITHUB_TOKEN}' agent.ts
`;

/** Parsed command line. */
interface CliArgs {
  program: string;
  programArgs: string[];
  policyFile: string | undefined;
  timeoutMs: number | undefined;
  memoryMb: number | undefined;
  scratch: boolean;
  inputs: string[];
  json: boolean;
  allowNet: string[];
  inject: { pattern: string; header: string; value: string }[];
  connectTo: string[];
  upstreamCaCerts: string[];
  auditFile: string | undefined;
}

class UsageError extends Error {}

function parseCli(argv: string[]): CliArgs | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        policy: { type: "string" },
        timeout: { type: "string" },
        memory: { type: "string" },
        scratch: { type: "boolean", default: false },
        input: { type: "string", multiple: true, default: [] },
        json: { type: "boolean", default: false },
        "allow-net": { type: "string", multiple: true, default: [] },
        inject: { type: "string", multiple: true, default: [] },
        "connect-to": { type: "string", multiple: true, default: [] },
        "upstream-cacert": { type: "string", multiple: true, default: [] },
        audit: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return "help";
  const [program, ...programArgs] = positionals;
  if (!program) {
    throw new UsageError(
      "Missing the program: give a file, or '-' to read stdin",
    );
  }
  try {
    return {
      program,
      programArgs,
      policyFile: values.policy,
      timeoutMs: values.timeout === undefined
        ? undefined
        : parseDuration(values.timeout),
      memoryMb: values.memory === undefined
        ? undefined
        : parseSizeMb(values.memory),
      scratch: values.scratch,
      inputs: values.input,
      json: values.json,
      allowNet: values["allow-net"],
      inject: values.inject.map(parseInject),
      connectTo: values["connect-to"],
      upstreamCaCerts: values["upstream-cacert"],
      auditFile: values.audit,
    };
  } catch (error) {
    throw new UsageError((error as Error).message);
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
  args: CliArgs,
): Policy["network"] {
  if (args.allowNet.length === 0 && args.inject.length === 0) return network;
  if (network === "allow-all" && args.inject.length === 0) return network;
  const allow: Record<string, Rule[]> = {};
  if (typeof network === "object") {
    if (Array.isArray(network.allow)) {
      for (const p of network.allow) allow[p] = [];
    } else Object.assign(allow, structuredClone(network.allow));
  }
  for (const pattern of args.allowNet) allow[pattern] ??= [];
  for (const { pattern, header, value } of args.inject) {
    (allow[pattern] ??= []).push({
      transform: [{ headers: { [header]: value } }],
      allowInsecure: false,
    });
  }
  return { ...(typeof network === "object" ? network : {}), allow };
}

/** Merges command-line flags over the policy file (flags win). */
async function buildPolicy(args: CliArgs): Promise<PolicyInput> {
  const base: Policy = args.policyFile
    ? await loadPolicyFile(args.policyFile)
    : parsePolicy({});
  return {
    ...base,
    network: mergeNetwork(base.network, args),
    upstream: {
      connectTo: [...base.upstream.connectTo, ...args.connectTo],
      caCerts: [
        ...base.upstream.caCerts,
        ...args.upstreamCaCerts.map((f) =>
          f.startsWith("/") ? f : `${Deno.cwd()}/${f}`
        ),
      ],
    },
    limits: {
      ...base.limits,
      ...(args.timeoutMs !== undefined ? { timeoutMs: args.timeoutMs } : {}),
      ...(args.memoryMb !== undefined ? { memoryMb: args.memoryMb } : {}),
    },
    scratch: base.scratch || args.scratch,
    inputs: [...base.inputs, ...args.inputs],
  };
}

async function readStdin(): Promise<string> {
  return await new Response(Deno.stdin.readable).text();
}

/**
 * Runs the CLI.
 *
 * @param argv Command-line arguments.
 * @returns The process exit code.
 */
export async function main(argv: string[]): Promise<number> {
  let args: CliArgs | "help";
  try {
    args = parseCli(argv);
  } catch (error) {
    console.error(
      `airlock: ${(error as Error).message}\nRun with --help for usage.`,
    );
    return EXIT_CODES.usage;
  }
  if (args === "help") {
    console.log(HELP);
    return 0;
  }
  let sandbox: Sandbox | undefined;
  try {
    const policy = await buildPolicy(args);
    const fromStdin = args.program === "-";
    const source: RunOptions = fromStdin
      ? { code: await readStdin() }
      : { path: args.program };
    const audit = args.auditFile ? await openAuditFile(args.auditFile) : null;
    sandbox = await Sandbox.create({
      policy,
      ...(audit ? { onAudit: (event: AuditEvent) => audit.write(event) } : {}),
    });
    const controller = new AbortController();
    const onInterrupt = () => controller.abort();
    Deno.addSignalListener("SIGINT", onInterrupt);
    Deno.addSignalListener("SIGTERM", onInterrupt);
    try {
      const runOptions: RunOptions = {
        ...source,
        args: args.programArgs,
        signal: controller.signal,
        ...(!fromStdin && !Deno.stdin.isTerminal()
          ? { stdin: Deno.stdin.readable }
          : {}),
      };
      if (args.json) {
        const result = await sandbox.run(runOptions);
        console.log(JSON.stringify(runResultToJson(result), null, 2));
        return exitCodeFor(result.reason, result.exitCode);
      }
      const child = await sandbox.spawn(runOptions);
      await Promise.all([
        child.stdout.pipeTo(Deno.stdout.writable, { preventClose: true }),
        child.stderr.pipeTo(Deno.stderr.writable, { preventClose: true }),
      ]);
      const status = await child.status;
      if (status.reason !== "exit") {
        const limit = status.reason === "timeout"
          ? ` after ${status.limits.timeoutMs} ms`
          : "";
        console.error(
          `airlock: run stopped: ${status.reason}${limit} (exit code ${
            exitCodeFor(status.reason, status.exitCode)
          })`,
        );
      }
      return exitCodeFor(status.reason, status.exitCode);
    } finally {
      Deno.removeSignalListener("SIGINT", onInterrupt);
      Deno.removeSignalListener("SIGTERM", onInterrupt);
    }
  } catch (error) {
    return reportError(error);
  } finally {
    await sandbox?.close();
  }
}

/** Appends audit events as JSON lines; fails early if the file is unwritable. */
async function openAuditFile(
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

function reportError(error: unknown): number {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`airlock: ${message}`);
  if (error instanceof PolicyError || error instanceof InputError) {
    return EXIT_CODES.usage;
  }
  if (error instanceof BundleError) return EXIT_CODES.bundle;
  if (
    error instanceof MissingHostToolError || error instanceof SandboxSetupError
  ) {
    return EXIT_CODES.setup;
  }
  if (
    error instanceof SyntaxError || error instanceof TypeError ||
    error instanceof RangeError
  ) {
    return EXIT_CODES.usage;
  }
  return EXIT_CODES.setup;
}

if (import.meta.main) {
  const code = await main(Deno.args);
  const { stopBundler } = await import("../bundle.ts");
  await stopBundler();
  Deno.exit(code);
}
