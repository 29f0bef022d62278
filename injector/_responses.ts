/**
 * Responses the injector writes itself: refusals and local answers.
 *
 * @module
 */

import type { ByteChannel } from "./_channel.ts";
import { serializeResponseHead } from "./http1.ts";

const REASONS: Record<number, string> = {
  100: "Continue",
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  421: "Misdirected Request",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  502: "Bad Gateway",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/**
 * The reason phrase for a status.
 *
 * @param status HTTP status.
 * @returns Its standard phrase, or "Status".
 *
 * @example Usage
 * ```ts
 * import { reasonPhrase } from "./_responses.ts";
 * console.log(reasonPhrase(421)); // "Misdirected Request"
 * ```
 */
export function reasonPhrase(status: number): string {
  return REASONS[status] ?? STANDARD[status] ?? "Status";
}

/** Other standard phrases (RFC 9110), used when relaying upstream statuses. */
const STANDARD: Record<number, string> = {
  101: "Switching Protocols",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  401: "Unauthorized",
  404: "Not Found",
  409: "Conflict",
  410: "Gone",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/** Stable machine-readable codes in the `X-Airlock-Error` header. */
export type RefusalCode =
  | "blocked-by-policy"
  | "blocked-address"
  | "bad-request"
  | "misdirected"
  | "method-not-allowed"
  | "cleartext-credentials"
  | "upstream-error";

/**
 * Writes a short plain-text refusal: the status, an `X-Airlock-Error` code
 * and a one-line body naming the host and the reason (so the program, and
 * the model reading its output, see why).
 *
 * @param channel Where to write.
 * @param status HTTP status.
 * @param code Machine-readable reason.
 * @param message Human-readable reason (never a secret).
 * @param close Whether to close the connection afterwards.
 *
 * @example Usage
 * ```ts ignore
 * await writeRefusal(client, 403, "blocked-by-policy", "host 'evil.example:443' is not in the allowlist", false);
 * ```
 */
export async function writeRefusal(
  channel: ByteChannel,
  status: number,
  code: RefusalCode,
  message: string,
  close: boolean,
): Promise<void> {
  const body = new TextEncoder().encode(`airlock: ${message}\n`);
  const head = serializeResponseHead({
    version: "HTTP/1.1",
    status,
    reason: reasonPhrase(status),
    headers: [
      ["Content-Type", "text/plain; charset=utf-8"],
      ["Content-Length", String(body.length)],
      ["X-Airlock-Error", code],
      ...(close ? [["Connection", "close"] as [string, string]] : []),
    ],
  });
  await channel.write(concat2(head, body)).catch(() => {});
  if (close) channel.close();
}

/**
 * Writes a policy `response` rule's local answer.
 *
 * @param channel Where to write.
 * @param response The rule's response.
 * @param close Whether to close afterwards.
 *
 * @example Usage
 * ```ts ignore
 * await writeLocalResponse(client, { statusCode: 403, body: "no" }, false);
 * ```
 */
export async function writeLocalResponse(
  channel: ByteChannel,
  response: {
    statusCode: number;
    headers?: Record<string, string> | undefined;
    body?: string | undefined;
    contentType?: string | undefined;
  },
  close: boolean,
): Promise<number> {
  const body = new TextEncoder().encode(response.body ?? "");
  const headers: [string, string][] = Object.entries(response.headers ?? {})
    .filter(([name]) =>
      !/^(content-length|transfer-encoding|connection)$/i.test(name)
    );
  if (response.contentType) {
    headers.push(["Content-Type", response.contentType]);
  }
  headers.push(["Content-Length", String(body.length)]);
  if (close) headers.push(["Connection", "close"]);
  const head = serializeResponseHead({
    version: "HTTP/1.1",
    status: response.statusCode,
    reason: reasonPhrase(response.statusCode),
    headers,
  });
  await channel.write(concat2(head, body));
  if (close) channel.close();
  return body.length;
}

function concat2(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
