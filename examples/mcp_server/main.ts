/**
 * `deno task example:mcp [--policy FILE]`: an MCP server on stdin/stdout
 * (newline-delimited JSON-RPC 2.0) whose `run_code` tool runs code in one
 * airlock sandbox for the whole session. Logs go to stderr; stdout carries
 * only protocol messages. When stdin closes (the client is done) or on
 * SIGINT/SIGTERM, live runs are killed, the sandbox's files are deleted
 * and the process exits 0.
 *
 * Default policy: a private /scratch, no network, 30 s per run. `--policy`
 * takes an airlock policy file (JSON/JSONC) instead.
 *
 * @module
 */

import { parseArgs } from "node:util";
import config from "../../deno.json" with { type: "json" };
import { loadPolicyFile, type PolicyInput, Sandbox } from "../../mod.ts";
import { ERROR_CODES, readLines } from "./jsonrpc.ts";
import { McpServer } from "./server.ts";

const HELP = `airlock MCP server: run_code over stdio

Usage: deno run -A --config deno.json examples/mcp_server/main.ts [--policy FILE]

  --policy FILE   airlock policy (JSON/JSONC); default: /scratch, no network,
                  30 s per run
  -h, --help      show this help
`;

/** The default policy: a private /scratch, no network. */
const DEFAULT_POLICY: PolicyInput = {
  scratch: true,
  limits: { timeoutMs: 30_000, memoryMb: 256, outputBytes: 256 * 1024 },
  network: "deny-all",
};

/** Longest message line accepted (a program is sent inside one). */
const MAX_LINE_CHARS = 8 * 1024 * 1024;

const encoder = new TextEncoder();

/** Writes lines to stdout one after another, never interleaved. */
function lineWriter(): (line: string) => Promise<void> {
  let tail = Promise.resolve();
  return (line) => {
    tail = tail.then(async () => {
      const bytes = encoder.encode(line + "\n");
      let written = 0;
      while (written < bytes.length) {
        written += await Deno.stdout.write(bytes.subarray(written));
      }
    }).catch(() => {
      // The client has gone: nothing left to tell it.
    });
    return tail;
  };
}

/**
 * Serves MCP on stdin/stdout until stdin closes or a signal arrives.
 *
 * @param argv Command-line arguments.
 * @returns The exit code.
 */
export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        policy: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    console.error(`mcp_server: ${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.error(HELP);
    return 0;
  }
  let sandbox: Sandbox;
  try {
    const policy = values.policy
      ? await loadPolicyFile(values.policy)
      : DEFAULT_POLICY;
    sandbox = await Sandbox.create({ policy });
  } catch (error) {
    console.error(`mcp_server: ${(error as Error).message}`);
    return 2;
  }
  const maxTimeoutMs = sandbox.policy.limits.timeoutMs;
  const server = new McpServer({
    sandbox,
    maxTimeoutMs,
    version: config.version,
  });
  const write = lineWriter();
  const pending = new Set<Promise<void>>();

  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const lines = readLines(Deno.stdin.readable, MAX_LINE_CHARS);
  const stopped = new Promise<"stop">((resolve) =>
    stop.signal.addEventListener("abort", () => resolve("stop"))
  );
  console.error(
    `airlock MCP server ready (sandbox ${sandbox.id}, ${maxTimeoutMs} ms per run)`,
  );
  while (true) {
    const next = await Promise.race([lines.next(), stopped]);
    if (next === "stop" || next.done) break;
    const frame = next.value;
    const answer = "tooLong" in frame
      ? Promise.resolve(JSON.stringify({
        jsonrpc: "2.0",
        id: null,
        error: {
          code: ERROR_CODES.invalidRequest,
          message:
            `Invalid Request: a message is longer than ${MAX_LINE_CHARS} characters`,
        },
      }))
      : server.handleLine(frame.line);
    // Requests are served concurrently: a ping is answered during a run.
    const job = answer
      .then((line) => line === null ? undefined : write(line))
      .catch((error) => console.error(`mcp_server: ${error?.stack ?? error}`));
    pending.add(job);
    job.finally(() => pending.delete(job));
  }

  // The client is done: kill live runs, then delete the sandbox's files.
  server.stop();
  await Promise.allSettled(pending);
  await sandbox.close();
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  console.error("airlock MCP server: stdin closed, sandbox removed");
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
