/**
 * An MCP server (tools only) whose one tool, `run_code`, runs code in an
 * airlock sandbox. Transport-independent: it takes one line of JSON-RPC and
 * answers with one (or nothing, for notifications); main.ts wires it to
 * stdin and stdout.
 *
 * Methods: `initialize`, `ping`, `tools/list`, `tools/call`, and the
 * notifications `notifications/initialized` and `notifications/cancelled`
 * (which kills the cancelled run). Anything else is -32601.
 *
 * @module
 */

import type { Sandbox } from "../../mod.ts";
import {
  asRequest,
  ERROR_CODES,
  idOf,
  type JsonRpcRequest,
  type JsonRpcResponse,
  type RequestId,
  RpcError,
} from "./jsonrpc.ts";
import { callRunCode, runCodeTool } from "./run_code_tool.ts";

/** Protocol versions this server speaks, newest first. */
export const PROTOCOL_VERSIONS = [
  "2025-11-25",
  "2025-06-18",
  "2025-03-26",
  "2024-11-05",
] as const;

/** Options for {@linkcode McpServer}. */
export interface McpServerOptions {
  /** The session's sandbox (one for the whole session: /scratch persists). */
  sandbox: Sandbox;
  /** Largest `timeoutMs` a call may ask for (and the default). */
  maxTimeoutMs: number;
  /** Reported in `serverInfo`. */
  version: string;
  /** Where internal errors are logged; default console.error (stderr). */
  log?: (message: string) => void;
}

/**
 * Answers MCP messages.
 *
 * @example Usage
 * ```ts ignore
 * import { Sandbox } from "../../mod.ts";
 * import { McpServer } from "./server.ts";
 * const sandbox = await Sandbox.create({ policy: { scratch: true } });
 * const server = new McpServer({ sandbox, maxTimeoutMs: 30_000, version: "0.1.0" });
 * console.log(await server.handleLine('{"jsonrpc":"2.0","id":1,"method":"ping"}'));
 * ```
 */
export class McpServer {
  #options: McpServerOptions;
  #log: (message: string) => void;
  /** Live tools/call requests, by id, for cancellation. */
  #calls = new Map<RequestId, AbortController>();
  #stopping = new AbortController();

  /** @param options The sandbox and limits. */
  constructor(options: McpServerOptions) {
    this.#options = options;
    this.#log = options.log ?? ((message) => console.error(message));
  }

  /**
   * Handles one line of input.
   *
   * @param line One JSON-RPC message.
   * @returns The response as one line of JSON (no newline), or null when
   *   none is due (a notification, a cancelled request).
   */
  async handleLine(line: string): Promise<string | null> {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch (error) {
      return JSON.stringify(
        errorResponse(
          null,
          new RpcError(
            ERROR_CODES.parseError,
            `Parse error: ${(error as Error).message}`,
          ),
        ),
      );
    }
    const response = await this.handle(message);
    return response === null ? null : JSON.stringify(response);
  }

  /**
   * Handles one parsed message.
   *
   * @param message The parsed JSON.
   * @returns The response, or null when none is due.
   */
  async handle(message: unknown): Promise<JsonRpcResponse | null> {
    let request: JsonRpcRequest;
    try {
      request = asRequest(message);
    } catch (error) {
      return errorResponse(idOf(message), error as RpcError);
    }
    if (request.id === undefined) {
      this.#notification(request);
      return null;
    }
    const id = request.id;
    try {
      const result = await this.#dispatch(id, request);
      return result === CANCELLED ? null : { jsonrpc: "2.0", id, result };
    } catch (error) {
      if (error instanceof RpcError) return errorResponse(id, error);
      this.#log(
        `mcp_server: internal error in ${request.method}: ${
          error instanceof Error ? error.stack : String(error)
        }`,
      );
      return errorResponse(
        id,
        new RpcError(
          ERROR_CODES.internalError,
          `Internal error: ${(error as Error).message}`,
        ),
      );
    }
  }

  /** Kills every live run (for shutdown). */
  stop(): void {
    this.#stopping.abort();
  }

  #dispatch(id: RequestId, request: JsonRpcRequest): Promise<unknown> {
    const params = request.params ?? {};
    switch (request.method) {
      case "initialize":
        return Promise.resolve(this.#initialize(params));
      case "ping":
        return Promise.resolve({});
      case "tools/list":
        return Promise.resolve({
          tools: [runCodeTool(this.#options.maxTimeoutMs)],
        });
      case "tools/call":
        return this.#callTool(id, params);
      default:
        throw new RpcError(
          ERROR_CODES.methodNotFound,
          `Method not found: '${request.method}' (this server has initialize, ping, tools/list and tools/call)`,
        );
    }
  }

  #initialize(params: Record<string, unknown>) {
    const asked = params.protocolVersion;
    const version = PROTOCOL_VERSIONS.find((v) => v === asked) ??
      PROTOCOL_VERSIONS[0];
    return {
      protocolVersion: version,
      capabilities: { tools: { listChanged: false } },
      serverInfo: {
        name: "airlock",
        title: "airlock sandbox",
        version: this.#options.version,
      },
      instructions:
        "Use run_code to execute Deno TypeScript in an isolated sandbox. Files in /scratch persist for this session. Network and host files are unavailable unless the server's policy allows them.",
    };
  }

  async #callTool(
    id: RequestId,
    params: Record<string, unknown>,
  ): Promise<unknown> {
    const { name, arguments: args = {} } = params;
    if (typeof name !== "string") {
      throw new RpcError(
        ERROR_CODES.invalidParams,
        'Invalid params: "name" must be the tool name',
      );
    }
    if (name !== "run_code") {
      throw new RpcError(
        ERROR_CODES.invalidParams,
        `Unknown tool: '${name}' (the only tool is run_code)`,
      );
    }
    if (typeof args !== "object" || args === null || Array.isArray(args)) {
      throw new RpcError(
        ERROR_CODES.invalidParams,
        'Invalid params: "arguments" must be an object',
      );
    }
    if (this.#calls.has(id)) {
      throw new RpcError(
        ERROR_CODES.invalidRequest,
        `Invalid Request: id ${JSON.stringify(id)} is already in use`,
      );
    }
    const controller = new AbortController();
    this.#calls.set(id, controller);
    try {
      const result = await callRunCode(
        this.#options.sandbox,
        args as Record<string, unknown>,
        this.#options.maxTimeoutMs,
        AbortSignal.any([controller.signal, this.#stopping.signal]),
      );
      // A cancelled request gets no response (MCP cancellation).
      return controller.signal.aborted ? CANCELLED : result;
    } finally {
      this.#calls.delete(id);
    }
  }

  #notification(request: JsonRpcRequest): void {
    if (request.method === "notifications/cancelled") {
      const requestId = request.params?.requestId;
      if (typeof requestId === "string" || typeof requestId === "number") {
        this.#calls.get(requestId)?.abort();
      }
    }
    // notifications/initialized and unknown notifications need nothing.
  }
}

/** Marks a request that was cancelled: no response is sent. */
const CANCELLED = Symbol("cancelled");

function errorResponse(id: RequestId | null, error: RpcError): JsonRpcResponse {
  return {
    jsonrpc: "2.0",
    id,
    error: { code: error.code, message: error.message },
  };
}
