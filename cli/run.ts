/**
 * `airlock run [options] <file | -> [-- args...]`: runs one program in a
 * sandbox and exits with its exit code (or one of airlock's, see --help).
 *
 * @module
 */

import { parseCommandLine } from "./_args.ts";
import { type AuditEvent, runResultToJson } from "../harness/run_result.ts";
import { printable } from "../audit/render_text.ts";
import { type RunOptions, Sandbox } from "../harness/sandbox.ts";
import { stopBundler } from "../harness/bundle/bundle.ts";
import { EXIT_CODES, exitCodeFor } from "./exit_codes.ts";
import {
  buildPolicy,
  openAuditFile,
  readSandboxFlags,
  reportError,
  SANDBOX_FLAGS,
  SANDBOX_FLAGS_HELP,
  type SandboxFlags,
  UsageError,
} from "./_options.ts";

const HELP = `airlock run: run a Deno program in an ephemeral bubblewrap sandbox

Usage:
  airlock run [options] <file.ts | -> [-- program args...]

  <file.ts>   the program (TypeScript or JavaScript), relative to the current
              directory; its relative imports are bundled from its own
              directory. '-' reads the program from stdin.

${SANDBOX_FLAGS_HELP}

Output:
  --json                 print the RunResult as JSON on stdout instead of streaming
  --audit FILE           append every audit event as a JSON line to FILE
  -h, --help             show this help

The sandbox has no environment, no host files except what you mount, no
network but the injector, no subprocesses; see README.md for the whole model.

Exit codes:
  0-255  the program's own exit code, when it exited by itself
  ${EXIT_CODES.timeout}    timeout           ${EXIT_CODES.oom}  out of memory     ${EXIT_CODES.cpu}  CPU-time limit
  ${EXIT_CODES.fileSize}    file-size limit   ${EXIT_CODES.diskLimit}  scratch quota     ${EXIT_CODES.outputLimit}  output cap
  ${EXIT_CODES.killed}    killed (Ctrl-C)   ${EXIT_CODES.crashed}  crashed (signal)
  ${EXIT_CODES.usage}    bad usage, policy or input
  ${EXIT_CODES.setup}    sandbox could not start (run 'airlock doctor')
  ${EXIT_CODES.bundle}    program refused before running (syntax error, unavailable import)

Examples:
  airlock run hello.ts
  echo 'console.log(await Deno.readTextFile("/inputs/data.csv"))' | airlock run --input ./data.csv -
  airlock run --timeout 5s --memory 128M --json script.ts -- --verbose
  airlock run --allow-net api.github.com --inject 'api.github.com:Authorization=Bearer \${env:GITHUB_TOKEN}' agent.ts
`;

/** Parsed command line. */
interface CliArgs extends SandboxFlags {
  program: string;
  programArgs: string[];
  json: boolean;
  auditFile: string | undefined;
}

function parseCli(argv: string[]): CliArgs | "help" {
  const { values, positionals } = parseCommandLine(
    argv,
    {
      ...SANDBOX_FLAGS,
      json: { type: "boolean", default: false },
      audit: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    "airlock run",
    true,
  );
  if (values.help) return "help";
  const [program, ...programArgs] = positionals;
  if (!program) {
    throw new UsageError(
      "Missing the program: give a file, or '-' to read stdin",
    );
  }
  if (program !== "-") checkProgramFile(program);
  return {
    ...readSandboxFlags(values),
    program,
    programArgs,
    json: values.json,
    auditFile: values.audit,
  };
}

/**
 * The program must be a file, relative to the current directory: a missing
 * file or a directory is a usage error that says which, before any sandbox
 * is made.
 */
function checkProgramFile(program: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(program);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      const where = program.startsWith("/") ? "" : ` in '${Deno.cwd()}'`;
      throw new UsageError(
        `Cannot run '${program}': there is no such file${where}`,
      );
    }
    throw new UsageError(
      `Cannot run '${program}': ${(error as Error).message}`,
    );
  }
  if (info.isDirectory) {
    const dir = program.replace(/\/+$/, "");
    const scripts = programsIn(dir);
    throw new UsageError(
      `Cannot run '${program}' as it is a directory: name a program file in it${
        scripts.length > 0
          ? `, e.g. ${scripts.map((s) => `'${dir}/${s}'`).join(", ")}`
          : ""
      }`,
    );
  }
  if (!info.isFile) {
    throw new UsageError(`Cannot run '${program}' as it is not a regular file`);
  }
}

/** Up to three TypeScript or JavaScript files directly in `dir`. */
function programsIn(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)]
      .filter((e) => e.isFile && /\.(ts|js|mts|mjs|tsx|jsx)$/.test(e.name))
      .map((e) => e.name).sort().slice(0, 3);
  } catch {
    return [];
  }
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
    // One program per command: the long-lived bundler a sandbox starts a
    // second after its creation would only compete with this run for the
    // CPU (an import-free program compiles without it).
    await stopBundler();
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
    // Error text can quote what the program wrote (an import specifier, a
    // file name): no control or bidi character reaches the terminal raw.
    if (error instanceof Error) {
      error.message = error.message.split("\n").map(printable).join("\n");
    }
    return reportError(error);
  } finally {
    await sandbox?.close();
  }
}

if (import.meta.main) {
  const code = await main(Deno.args);
  await stopBundler();
  Deno.exit(code);
}
