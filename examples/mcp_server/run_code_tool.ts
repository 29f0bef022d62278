/**
 * The MCP `run_code` tool: its definition (input and output schemas) and
 * how one call becomes a run in the session's airlock sandbox.
 *
 * @module
 */

import { BundleError, type RunResult, type Sandbox } from "../../mod.ts";

/** An MCP tool result (`tools/call`). */
export interface CallToolResult {
  /** Text for the model; the JSON of `structuredContent` when there is one. */
  content: { type: "text"; text: string }[];
  /** The run's outcome, matching the tool's `outputSchema`. */
  structuredContent?: RunOutcome;
  /** The code failed (did not compile, exited non-zero, hit a limit). */
  isError: boolean;
}

/** What a run did, as `structuredContent`. */
export interface RunOutcome {
  /** The program's exit code (or 128 + signal). */
  exitCode: number;
  /** exit, timeout, oom, cpu, file-size, disk-limit, output-limit, killed or crashed. */
  reason: string;
  /** stdout (bounded). */
  stdout: string;
  /** stderr (bounded). */
  stderr: string;
  /** Output was cut at the limit. */
  truncated: boolean;
  /** Permissions Deno refused: `kind value: reason`. */
  denied: string[];
  /** Network requests and the injector's decision. */
  network: string[];
}

/** Characters kept of stdout and of stderr each. */
const MAX_CHARS = 32_000;

/**
 * The tool's definition for `tools/list`.
 *
 * @param maxTimeoutMs The largest `timeoutMs` a call may ask for.
 * @returns The tool.
 */
export function runCodeTool(maxTimeoutMs: number) {
  return {
    name: "run_code",
    title: "Run code in an airlock sandbox",
    description:
      "Run a Deno TypeScript/JavaScript program in an isolated sandbox and return its stdout, stderr and exit code. The working directory /scratch persists between calls of this session. The program sees none of the host's environment variables, no host files and no network unless the server's policy allows it; npm:, jsr: and URL imports are refused (node: built-ins work).",
    inputSchema: {
      type: "object",
      properties: {
        code: { type: "string", description: "The program source." },
        timeoutMs: {
          type: "integer",
          minimum: 1,
          maximum: maxTimeoutMs,
          description:
            `Wall-clock limit for this run in ms (default and maximum ${maxTimeoutMs}).`,
        },
      },
      required: ["code"],
      additionalProperties: false,
    },
    outputSchema: {
      type: "object",
      properties: {
        exitCode: { type: "integer" },
        reason: { type: "string" },
        stdout: { type: "string" },
        stderr: { type: "string" },
        truncated: { type: "boolean" },
        denied: { type: "array", items: { type: "string" } },
        network: { type: "array", items: { type: "string" } },
      },
      required: [
        "exitCode",
        "reason",
        "stdout",
        "stderr",
        "truncated",
        "denied",
        "network",
      ],
    },
    annotations: { readOnlyHint: false, openWorldHint: false },
  };
}

/**
 * Runs one `run_code` call. Problems the model can fix (bad arguments, code
 * that does not compile) are tool errors (`isError`), not protocol errors.
 *
 * @param sandbox The session's sandbox.
 * @param args The call's `arguments`.
 * @param maxTimeoutMs The largest `timeoutMs` allowed.
 * @param signal Aborted when the call is cancelled or the server stops.
 * @returns The tool result.
 */
export async function callRunCode(
  sandbox: Sandbox,
  args: Record<string, unknown>,
  maxTimeoutMs: number,
  signal: AbortSignal,
): Promise<CallToolResult> {
  const { code, timeoutMs } = args;
  const unknown = Object.keys(args).filter((k) =>
    k !== "code" && k !== "timeoutMs"
  );
  if (typeof code !== "string" || code.trim() === "") {
    return toolError('"code" must be a non-empty string of program source');
  }
  if (
    timeoutMs !== undefined &&
    (!Number.isInteger(timeoutMs) || (timeoutMs as number) < 1 ||
      (timeoutMs as number) > maxTimeoutMs)
  ) {
    return toolError(
      `"timeoutMs" must be an integer from 1 to ${maxTimeoutMs}`,
    );
  }
  if (unknown.length > 0) {
    return toolError(
      `Unknown argument${unknown.length > 1 ? "s" : ""} ${
        unknown.map((k) => `"${k}"`).join(", ")
      }: run_code takes "code" and "timeoutMs"`,
    );
  }
  let result: RunResult;
  try {
    result = await sandbox.run({
      code,
      timeoutMs: (timeoutMs as number | undefined) ?? maxTimeoutMs,
      signal,
    });
  } catch (error) {
    if (error instanceof BundleError) return toolError(error.message);
    throw error;
  }
  const outcome = outcomeOf(result);
  return {
    content: [{ type: "text", text: JSON.stringify(outcome, null, 2) }],
    structuredContent: outcome,
    isError: !result.success,
  };
}

function outcomeOf(result: RunResult): RunOutcome {
  const denied: string[] = [];
  const network: string[] = [];
  for (const event of result.audit) {
    if (event.source === "broker" && event.decision === "deny") {
      denied.push(`${event.permission} ${event.value ?? "*"}: ${event.reason}`);
    } else if (event.source === "injector" && event.kind !== "connect") {
      const request =
        `${event.method} ${event.scheme}://${event.host}${event.path}`;
      network.push(
        event.kind === "secret-echo"
          ? `${request}: the response echoed an injected secret, redacted`
          : `${request} -> ${event.decision}${
            event.status === null ? "" : ` ${event.status}`
          }`,
      );
    }
  }
  const clip = (text: string) =>
    text.length <= MAX_CHARS
      ? text
      : `${text.slice(0, MAX_CHARS)}\n[... ${
        text.length - MAX_CHARS
      } more characters]`;
  return {
    exitCode: result.exitCode,
    reason: result.reason,
    stdout: clip(result.stdout),
    stderr: clip(result.stderr),
    truncated: result.truncated || result.stdout.length > MAX_CHARS ||
      result.stderr.length > MAX_CHARS,
    denied,
    network,
  };
}

function toolError(message: string): CallToolResult {
  return { content: [{ type: "text", text: message }], isError: true };
}
