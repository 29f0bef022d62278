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
import { runResultToJson } from "../run_result.ts";
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

The sandbox has no environment, no host files except what you mount, no
network, no subprocesses; see README.md for the whole model.

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
    };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Merges command-line flags over the policy file (flags win). */
async function buildPolicy(args: CliArgs): Promise<PolicyInput> {
  const base: Policy = args.policyFile
    ? await loadPolicyFile(args.policyFile)
    : parsePolicy({});
  return {
    ...base,
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
    sandbox = await Sandbox.create({ policy });
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
