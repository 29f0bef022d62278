/**
 * The JSON-RPC 2.0 subset MCP's stdio transport needs: message shapes,
 * error codes, and newline-delimited framing of a byte stream.
 *
 * @module
 */

/** A request id (a notification has none). */
export type RequestId = string | number;

/** A request or notification, as received. */
export interface JsonRpcRequest {
  /** Always "2.0". */
  jsonrpc: "2.0";
  /** Absent for a notification. */
  id?: RequestId;
  /** The method name. */
  method: string;
  /** By-name parameters. */
  params?: Record<string, unknown>;
}

/** A response, sent back. */
export type JsonRpcResponse =
  & { jsonrpc: "2.0"; id: RequestId | null }
  & (
    | { result: unknown }
    | { error: { code: number; message: string; data?: unknown } }
  );

/** The JSON-RPC 2.0 error codes used here. */
export const ERROR_CODES = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
} as const;

/** An error to answer with (instead of a result). */
export class RpcError extends Error {
  /** The JSON-RPC error code. */
  readonly code: number;
  /**
   * @param code A JSON-RPC error code.
   * @param message What is wrong, for the client.
   */
  constructor(code: number, message: string) {
    super(message);
    this.name = "RpcError";
    this.code = code;
  }
}

/**
 * Checks that a parsed message is a request or notification.
 *
 * @param message The parsed JSON.
 * @returns The request.
 * @throws {RpcError} `invalidRequest` when it is not one.
 */
export function asRequest(message: unknown): JsonRpcRequest {
  if (Array.isArray(message)) {
    // Batches left MCP in protocol version 2025-06-18.
    throw new RpcError(
      ERROR_CODES.invalidRequest,
      "Invalid Request: batches are not supported; send one message per line",
    );
  }
  const m = message as Partial<JsonRpcRequest> | null;
  const problem = typeof m !== "object" || m === null
    ? "expected an object"
    : m.jsonrpc !== "2.0"
    ? 'missing "jsonrpc": "2.0"'
    : typeof m.method !== "string"
    ? 'missing "method"'
    : "id" in m && typeof m.id !== "string" && typeof m.id !== "number"
    ? '"id" must be a string or a number'
    : m.params !== undefined &&
        (typeof m.params !== "object" || m.params === null ||
          Array.isArray(m.params))
    ? '"params" must be an object'
    : null;
  if (problem) {
    throw new RpcError(
      ERROR_CODES.invalidRequest,
      `Invalid Request: ${problem}`,
    );
  }
  return m as JsonRpcRequest;
}

/**
 * The id of a message that may be invalid, for the error response.
 *
 * @param message The parsed JSON.
 * @returns Its id, or null.
 */
export function idOf(message: unknown): RequestId | null {
  const id = (message as { id?: unknown } | null)?.id;
  return typeof id === "string" || typeof id === "number" ? id : null;
}

/** One framed line, or a line that was too long (and skipped). */
export type Frame = { line: string } | { tooLong: true };

/**
 * Splits a byte stream into lines (`\n`, optional `\r`), skipping blank
 * ones. A line longer than `maxChars` is skipped and reported as `tooLong`.
 *
 * @param stream The input.
 * @param maxChars Longest line accepted.
 * @returns The lines, in order; ends when the stream does.
 */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  maxChars: number,
): AsyncGenerator<Frame> {
  let buffer = "";
  let skipping = false;
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf("\n")) !== -1) {
      const line = buffer.slice(0, newline).replace(/\r$/, "");
      buffer = buffer.slice(newline + 1);
      if (skipping) {
        skipping = false;
        continue;
      }
      if (line.length > maxChars) yield { tooLong: true };
      else if (line.trim() !== "") yield { line };
    }
    if (!skipping && buffer.length > maxChars) {
      skipping = true;
      yield { tooLong: true };
    }
    if (skipping) buffer = "";
  }
  if (!skipping && buffer.trim() !== "") yield { line: buffer };
}
