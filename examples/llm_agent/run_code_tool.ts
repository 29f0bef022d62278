/**
 * The `run_code` tool of the agent: its definition for the model, the
 * sandbox policy its code runs under, and the tool message a run becomes.
 *
 * The policy lets generated code call the model API itself (a sub-query, a
 * summary of a big file) without ever holding the key: the sandbox may reach
 * the model API's host, and the injector adds `Authorization: Bearer <key>`
 * to those requests on the way out. Every other host is refused. If the
 * model API echoes the key back, airlock's echo guard replaces it.
 *
 * @module
 */

import {
  BundleError,
  type PolicyInput,
  type RunResult,
  type Sandbox,
} from "../../mod.ts";
import type { ToolCall, ToolDefinition } from "./model_client.ts";

/** The tool as offered to the model. */
export const RUN_CODE_TOOL: ToolDefinition = {
  type: "function",
  function: {
    name: "run_code",
    description:
      "Run a Deno TypeScript program in a sandbox and get its stdout, stderr and exit code. Print what you need to see. Files in the working directory persist between calls. No environment variables and no network, except HTTPS requests to the model API, which are authenticated for you (send no key).",
    parameters: {
      type: "object",
      properties: {
        code: { type: "string", description: "The program source." },
      },
      required: ["code"],
      additionalProperties: false,
    },
  },
};

/** Name of the secret the injector fills in (never seen by the sandbox). */
const KEY_SECRET = "MODEL_API_KEY";

/** Options for {@linkcode sandboxPolicy}. */
export interface SandboxPolicyOptions {
  /** The model API's base URL. */
  baseUrl: string;
  /**
   * Let generated code call the model API (key injected). Default true;
   * ignored (no access) when `baseUrl` is not https, since the injector
   * never adds credentials over plain HTTP.
   */
  shareModel?: boolean;
  /** Wall-clock limit per run; default 30 s. */
  timeoutMs?: number;
  /** How the injector reaches upstreams (tests map names to loopback). */
  upstream?: { connectTo?: string[]; caCerts?: string[] };
}

/**
 * The policy of the agent's sandbox, and the secrets it references.
 *
 * @param options The model API and limits.
 * @param apiKey The model API key (goes to the injector only).
 * @returns `policy` and `secrets` for `Sandbox.create`.
 */
export function sandboxPolicy(
  options: SandboxPolicyOptions,
  apiKey: string,
): { policy: PolicyInput; secrets: Record<string, string> } {
  const url = new URL(options.baseUrl);
  const share = (options.shareModel ?? true) && url.protocol === "https:";
  // `host` keeps an explicit non-default port: the pattern then matches it.
  const network: PolicyInput["network"] = share
    ? {
      allow: {
        [url.host]: [{
          transform: [{
            headers: { authorization: `Bearer \${secret:${KEY_SECRET}}` },
          }],
        }],
      },
    }
    : "deny-all";
  return {
    policy: {
      limits: {
        timeoutMs: options.timeoutMs ?? 30_000,
        memoryMb: 256,
        outputBytes: 256 * 1024,
      },
      scratch: true,
      network,
      upstream: {
        connectTo: options.upstream?.connectTo ?? [],
        caCerts: options.upstream?.caCerts ?? [],
      },
    },
    secrets: share ? { [KEY_SECRET]: apiKey } : {},
  };
}

/** What one tool call did. */
export interface ToolRun {
  /** The call. */
  call: ToolCall;
  /** The code that ran (null when the arguments were unusable). */
  code: string | null;
  /** The run's result (null when nothing ran). */
  result: RunResult | null;
  /** The tool message content sent back to the model. */
  content: string;
}

/** Characters of stdout and of stderr the model gets back. */
const MAX_CHARS = 8_000;

/**
 * Executes one tool call in the sandbox. Problems the model can fix (bad
 * arguments, code that does not compile) become the tool's answer, not
 * exceptions.
 *
 * @param sandbox Where code runs.
 * @param call The model's tool call.
 * @returns What happened, with the tool message content.
 * @throws {SandboxSetupError} If the sandbox cannot start at all.
 */
export async function runToolCall(
  sandbox: Sandbox,
  call: ToolCall,
): Promise<ToolRun> {
  const fail = (message: string, code: string | null = null): ToolRun => ({
    call,
    code,
    result: null,
    content: JSON.stringify({ error: message }),
  });
  if (call.function.name !== RUN_CODE_TOOL.function.name) {
    return fail(
      `Unknown tool '${call.function.name}': the only tool is run_code`,
    );
  }
  let code: unknown;
  try {
    code = (JSON.parse(call.function.arguments) as { code?: unknown })?.code;
  } catch {
    return fail('The arguments are not valid JSON: send {"code": "..."}');
  }
  if (typeof code !== "string" || code.trim() === "") {
    return fail('Missing "code": send {"code": "<program source>"}');
  }
  let result: RunResult;
  try {
    result = await sandbox.run({ code });
  } catch (error) {
    if (error instanceof BundleError) return fail(error.message, code);
    throw error;
  }
  return { call, code, result, content: toolContent(result) };
}

/**
 * A run as the model sees it: exit, bounded output, network requests and
 * refused permissions.
 *
 * @param result The run's result.
 * @returns JSON text for the tool message.
 */
export function toolContent(result: RunResult): string {
  const network: string[] = [];
  const denied: string[] = [];
  for (const event of result.audit) {
    if (event.source === "injector" && event.kind !== "connect") {
      const request =
        `${event.method} ${event.scheme}://${event.host}${event.path}`;
      const status = event.status === null ? "" : ` ${event.status}`;
      const injected = event.injected.length
        ? ` (injected: ${event.injected.join(", ")})`
        : "";
      network.push(
        event.kind === "secret-echo"
          ? `${request}: the response echoed an injected secret, redacted`
          : `${request} -> ${event.decision}${status}${injected}`,
      );
    } else if (event.source === "broker" && event.decision === "deny") {
      denied.push(`${event.permission} ${event.value ?? "*"}: ${event.reason}`);
    }
  }
  return JSON.stringify({
    exitCode: result.exitCode,
    reason: result.reason,
    stdout: clip(result.stdout),
    stderr: clip(result.stderr),
    truncated: result.truncated || result.stdout.length > MAX_CHARS ||
      result.stderr.length > MAX_CHARS,
    ...(network.length ? { network } : {}),
    ...(denied.length ? { denied } : {}),
  });
}

function clip(text: string): string {
  return text.length <= MAX_CHARS
    ? text
    : `${text.slice(0, MAX_CHARS)}\n[... ${
      text.length - MAX_CHARS
    } more characters]`;
}
