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
  return REASONS[status] ?? "Status";
}

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
