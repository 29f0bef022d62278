/**
 * A typed client for the airlock HTTP API (fetch only; no dependencies at
 * run time). The request and answer types it uses are in types.ts and
 * exported from here too; they need no zod and no server module.
 *
 * Longer than the ~400-line guide: one class with a documented method per
 * route reads better whole than split.
 *
 * @example Usage
 * ```ts ignore
 * import { AirlockClient } from "./client.ts";
 * const client = new AirlockClient({ baseUrl: "http://127.0.0.1:8787", token: Deno.env.get("AIRLOCK_TOKEN") });
 * const { id } = await client.createSandbox({ policy: { scratch: true } });
 * const result = await client.run(id, { code: "console.log(6 * 7)" });
 * console.log(result.stdout); // "42\n"
 * await client.deleteSandbox(id);
 * ```
 *
 * @module
 */

import type {
  ApiIssue,
  AuditEventJson,
  BundleProblemJson,
  CreatedSandbox,
  CreateSandboxRequest,
  DirListing,
  ErrorBody,
  NetworkPolicyInput,
  NetworkPolicyJson,
  Readiness,
  RunRequest,
  RunResultJson,
  RunStatusJson,
  SandboxInfo,
} from "./types.ts";

export type * from "./types.ts";
export { ERROR_CODES } from "./types.ts";

/**
 * An error answer of the API, thrown by every {@linkcode AirlockClient}
 * method. `code` is one of {@linkcode ERROR_CODES}, or
 * `unexpected_response` for an answer that is not the API's (a proxy's
 * error page).
 *
 * @example Telling a refused policy from other errors
 * ```ts
 * import { AirlockApiError } from "./client.ts";
 * const error = new AirlockApiError(400, {
 *   code: "invalid_policy",
 *   message: "The policy is invalid",
 *   issues: [{ path: "policy.scratch", message: "expected boolean" }],
 * });
 * if (error.code === "invalid_policy") {
 *   for (const issue of error.issues) console.log(issue.path, issue.message);
 * }
 * ```
 */
export class AirlockApiError extends Error {
  /** HTTP status. */
  readonly status: number;
  /** The API's error code (`unauthorized`, `invalid_policy`, ...). */
  readonly code: string;
  /** Problems by path, for `invalid_request` and `invalid_policy`. */
  readonly issues: ApiIssue[];
  /** Bundling problems, for `bundle_error`. */
  readonly problems: BundleProblemJson[];

  /**
   * Makes the error of one answer.
   *
   * @param status HTTP status.
   * @param error The error body's `error`.
   */
  constructor(
    status: number,
    error: ErrorBody["error"] | { code: string; message: string },
  ) {
    super(error.message);
    this.name = "AirlockApiError";
    this.status = status;
    this.code = error.code;
    this.issues = "issues" in error ? error.issues ?? [] : [];
    this.problems = "problems" in error ? error.problems ?? [] : [];
  }
}

/**
 * Options for {@linkcode AirlockClient}.
 *
 * @example Usage
 * ```ts
 * import { AirlockClient, type AirlockClientOptions } from "./client.ts";
 * const options: AirlockClientOptions = {
 *   baseUrl: "http://127.0.0.1:8787",
 *   token: Deno.env.get("AIRLOCK_TOKEN") ?? null,
 * };
 * const client = new AirlockClient(options); // nothing is sent yet
 * ```
 */
export interface AirlockClientOptions {
  /** Where the API is, e.g. `http://127.0.0.1:8787`. */
  baseUrl: string | URL;
  /** The bearer token; omit for a server without tokens. */
  token?: string | null;
  /** The fetch to use; default the global one. */
  fetch?: typeof fetch;
}

/**
 * One event of {@linkcode AirlockClient.runStream}: output as it comes
 * (`text`, and its bytes in `data`: the exact bytes the program wrote when
 * the stream was asked for with `binary: true`), audit events as they
 * happen, then the status (or an error).
 *
 * @example Handling each kind
 * ```ts
 * import type { RunStreamEvent } from "./client.ts";
 * function show(event: RunStreamEvent): string {
 *   switch (event.type) {
 *     case "stdout":
 *     case "stderr":
 *       return event.text;
 *     case "audit":
 *       return `audit: ${event.event.kind}`;
 *     case "status":
 *       return `ended: ${event.status.reason}`;
 *     case "error":
 *       return `error: ${event.error.code}`;
 *   }
 * }
 * console.log(show({ type: "stdout", text: "hi", data: new TextEncoder().encode("hi") }));
 * ```
 */
export type RunStreamEvent =
  | {
    type: "stdout" | "stderr";
    /** The output as text (a character split across chunks arrives whole). */
    text: string;
    /** Its bytes: UTF-8 of `text`, or exactly what the program wrote with `binary: true`. */
    data: Uint8Array;
  }
  | { type: "audit"; event: AuditEventJson }
  | { type: "status"; status: RunStatusJson }
  | { type: "error"; error: ErrorBody["error"] };

/**
 * Per-call options.
 *
 * @example Giving up on a run after 10 seconds
 * ```ts ignore
 * import { AirlockClient, type CallOptions } from "./client.ts";
 * const client = new AirlockClient({ baseUrl: "http://127.0.0.1:8787" });
 * const options: CallOptions = { signal: AbortSignal.timeout(10_000) };
 * await client.run("sbx-1", { code: "while (true) {}" }, options);
 * ```
 */
export interface CallOptions {
  /** Aborting cancels the call (for runs: the server kills the run). */
  signal?: AbortSignal;
}

/**
 * Options of {@linkcode AirlockClient.runStream}.
 *
 * @example Exact bytes
 * ```ts ignore
 * import { AirlockClient, type StreamOptions } from "./client.ts";
 * const client = new AirlockClient({ baseUrl: "http://127.0.0.1:8787" });
 * const options: StreamOptions = { binary: true };
 * for await (const event of client.runStream("sbx-1", { code: "Deno.stdout.write(new Uint8Array([255]))" }, options)) {
 *   if (event.type === "stdout") console.log(event.data); // Uint8Array [ 255 ]
 * }
 * ```
 */
export interface StreamOptions extends CallOptions {
  /**
   * Ask the server for the exact bytes (base64 on the wire, `?binary=1`)
   * instead of text; `text` is then decoded here.
   */
  binary?: boolean;
}

interface Call extends CallOptions {
  json?: unknown;
  bytes?: Uint8Array;
}

/**
 * A client of the airlock HTTP API: one method per route (see
 * `GET /openapi.json`). Every method throws {@linkcode AirlockApiError}
 * for an error answer; a run that hits a limit is a result, not an error.
 *
 * @example Create, run, read a file, delete
 * ```ts ignore
 * import { AirlockClient } from "./client.ts";
 * const client = new AirlockClient({
 *   baseUrl: "http://127.0.0.1:8787",
 *   token: Deno.env.get("AIRLOCK_TOKEN"),
 * });
 * const { id } = await client.createSandbox({ policy: { scratch: true } });
 * try {
 *   await client.run(id, {
 *     code: `await Deno.writeTextFile("/scratch/out.txt", "42");`,
 *   });
 *   console.log(await client.readTextFile(id, "out.txt")); // "42"
 * } finally {
 *   await client.deleteSandbox(id);
 * }
 * ```
 */
export class AirlockClient {
  #base: string;
  #token: string | null;
  #fetch: typeof fetch;

  /**
   * Makes a client; nothing is sent yet.
   *
   * @param options Where the server is and the token.
   */
  constructor(options: AirlockClientOptions) {
    this.#base = String(options.baseUrl).replace(/\/+$/, "");
    this.#token = options.token ?? null;
    this.#fetch = options.fetch ?? fetch;
  }

  /**
   * Checks that the server is up (no token needed).
   *
   * @returns `{ ok: true }`.
   */
  async health(): Promise<{ ok: true }> {
    return await this.#json("GET", "/health");
  }

  /**
   * Asks whether the node can start a sandbox now (no token needed). A node
   * that cannot answers 503 with the same body: both are returned, not
   * thrown.
   *
   * @returns `ready`, the node's name and each check.
   */
  async ready(): Promise<Readiness> {
    const response = await this.#fetch(`${this.#base}/ready`);
    if (response.status === 503) {
      const text = await response.text();
      try {
        const body = JSON.parse(text) as Readiness;
        if (typeof body.ready === "boolean") return body;
      } catch { /* a router's page: below */ }
      throw new AirlockApiError(503, {
        code: "unexpected_response",
        message: `HTTP 503: ${text.slice(0, 200)}`,
      });
    }
    if (response.ok) return await response.json() as Readiness;
    await response.body?.cancel();
    return await this.#json("GET", "/ready");
  }

  /**
   * Reads the node's metrics in the Prometheus text format; the client's
   * token must be the server's metrics token (tenants' tokens are refused)
   * unless the client is on the server's machine.
   *
   * @returns The exposition text.
   */
  async metrics(): Promise<string> {
    return await (await this.#send("GET", "/metrics")).text();
  }

  /**
   * Asks for the server's versions (no token needed).
   *
   * @returns The airlock and Deno versions.
   */
  async version(): Promise<{ airlock: string; deno: string }> {
    return await this.#json("GET", "/version");
  }

  /**
   * Fetches the API's description (no token needed).
   *
   * @returns The OpenAPI 3.1 document.
   */
  async openApi(): Promise<Record<string, unknown>> {
    return await this.#json("GET", "/openapi.json");
  }

  /**
   * Creates a sandbox; nothing runs yet.
   *
   * @param request Policy, secrets and name.
   * @param options `signal` aborts the call.
   * @returns The sandbox with its validated, redacted policy.
   */
  async createSandbox(
    request: CreateSandboxRequest = {},
    options: CallOptions = {},
  ): Promise<CreatedSandbox> {
    return await this.#json("POST", "/sandboxes", {
      ...options,
      json: request,
    });
  }

  /**
   * Lists the sandboxes of this client's token.
   *
   * @returns The sandboxes.
   */
  async listSandboxes(): Promise<SandboxInfo[]> {
    const body = await this.#json<{ sandboxes: SandboxInfo[] }>(
      "GET",
      "/sandboxes",
    );
    return body.sandboxes;
  }

  /**
   * Kills every run and deletes every file of a sandbox.
   *
   * @param id The sandbox.
   */
  async deleteSandbox(id: string): Promise<void> {
    await this.#send("DELETE", sandboxPath(id));
  }

  /**
   * Runs a program to completion.
   *
   * @param id The sandbox.
   * @param request The program and run settings.
   * @param options `signal` aborts the call and kills the run.
   * @returns The result (limits are a `reason`, never an error).
   */
  async run(
    id: string,
    request: RunRequest,
    options: CallOptions = {},
  ): Promise<RunResultJson> {
    return await this.#json("POST", `${sandboxPath(id)}/runs`, {
      ...options,
      json: request,
    });
  }

  /**
   * Runs a program and yields its output, audit events and final status as
   * they happen. Leaving the loop early (or aborting) kills the run.
   *
   * @param id The sandbox.
   * @param request The program and run settings.
   * @param options `signal` aborts the stream and kills the run; `binary`
   *   asks for the exact bytes of the output (default: text).
   * @returns The events; the last one is `status` (or `error`).
   */
  async *runStream(
    id: string,
    request: RunRequest,
    options: StreamOptions = {},
  ): AsyncGenerator<RunStreamEvent, void, undefined> {
    const { binary = false, ...call } = options;
    const response = await this.#send(
      "POST",
      `${sandboxPath(id)}/runs/stream${binary ? "?binary=1" : ""}`,
      { ...call, json: request },
    );
    // Bytes to text per stream: a character split across chunks.
    const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    if (!response.body) return;
    const reader = response.body.pipeThrough(new TextDecoderStream())
      .getReader();
    let buffer = "";
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end: number;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = parseEvent(block, decoders);
          if (event) yield event;
        }
      }
    } finally {
      // Closes the connection when the caller stops early: the server then
      // kills the run.
      await reader.cancel().catch(() => {});
    }
  }

  /**
   * Reads the network policy in force.
   *
   * @param id The sandbox.
   * @returns The policy, injected values redacted.
   */
  async getNetworkPolicy(id: string): Promise<NetworkPolicyJson> {
    const body = await this.#json<{ network: NetworkPolicyJson }>(
      "GET",
      `${sandboxPath(id)}/network`,
    );
    return body.network;
  }

  /**
   * Replaces the network policy (applies to the next request of every run).
   *
   * @param id The sandbox.
   * @param network The new policy.
   * @returns The new policy, redacted.
   */
  async updateNetworkPolicy(
    id: string,
    network: NetworkPolicyInput,
  ): Promise<NetworkPolicyJson> {
    const body = await this.#json<{ network: NetworkPolicyJson }>(
      "PUT",
      `${sandboxPath(id)}/network`,
      { json: { network } },
    );
    return body.network;
  }

  /**
   * Reads the sandbox's audit trail.
   *
   * @param id The sandbox.
   * @returns Every event so far (the last 10,000).
   */
  async getAudit(id: string): Promise<AuditEventJson[]> {
    const body = await this.#json<{ events: AuditEventJson[] }>(
      "GET",
      `${sandboxPath(id)}/audit`,
    );
    return body.events;
  }

  /**
   * Reads a scratch file.
   *
   * @param id The sandbox.
   * @param path Relative to /scratch.
   * @returns Its bytes.
   */
  async readFile(id: string, path: string): Promise<Uint8Array> {
    const response = await this.#send("GET", filePath(id, path));
    return new Uint8Array(await response.arrayBuffer());
  }

  /**
   * Reads a scratch file as UTF-8.
   *
   * @param id The sandbox.
   * @param path Relative to /scratch.
   * @returns Its text.
   */
  async readTextFile(id: string, path: string): Promise<string> {
    return new TextDecoder().decode(await this.readFile(id, path));
  }

  /**
   * Writes a scratch file (parent directories are created).
   *
   * @param id The sandbox.
   * @param path Relative to /scratch.
   * @param data Contents.
   */
  async writeFile(
    id: string,
    path: string,
    data: Uint8Array | string,
  ): Promise<void> {
    const bytes = typeof data === "string"
      ? new TextEncoder().encode(data)
      : data;
    await this.#send("PUT", filePath(id, path), { bytes });
  }

  /**
   * Lists a scratch directory.
   *
   * @param id The sandbox.
   * @param path Relative to /scratch ("" is /scratch itself).
   * @returns Its entries (symlinks listed, never followed).
   */
  async listFiles(id: string, path = ""): Promise<DirListing["entries"]> {
    const body = await this.#json<DirListing>(
      "GET",
      `${filePath(id, path)}?list=1`,
    );
    return body.entries;
  }

  /**
   * Removes a scratch file or directory.
   *
   * @param id The sandbox.
   * @param path Relative to /scratch.
   * @param options `recursive` removes a non-empty directory.
   */
  async removeFile(
    id: string,
    path: string,
    options: { recursive?: boolean } = {},
  ): Promise<void> {
    const query = options.recursive ? "?recursive=1" : "";
    await this.#send("DELETE", `${filePath(id, path)}${query}`);
  }

  async #json<T>(method: string, path: string, call: Call = {}): Promise<T> {
    const response = await this.#send(method, path, call);
    return await response.json() as T;
  }

  async #send(
    method: string,
    path: string,
    call: Call = {},
  ): Promise<Response> {
    const headers = new Headers();
    if (this.#token !== null) {
      headers.set("authorization", `Bearer ${this.#token}`);
    }
    let body: BodyInit | undefined;
    if (call.json !== undefined) {
      headers.set("content-type", "application/json");
      body = JSON.stringify(call.json);
    } else if (call.bytes !== undefined) {
      headers.set("content-type", "application/octet-stream");
      body = call.bytes as Uint8Array<ArrayBuffer>;
    }
    const response = await this.#fetch(`${this.#base}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
      ...(call.signal ? { signal: call.signal } : {}),
    });
    if (response.ok) return response;
    const text = await response.text();
    let error: ErrorBody["error"] | undefined;
    try {
      error = (JSON.parse(text) as ErrorBody).error;
    } catch { /* not ours: a proxy's page */ }
    throw new AirlockApiError(
      response.status,
      error ?? {
        code: "unexpected_response",
        message: `HTTP ${response.status}: ${text.slice(0, 200)}`,
      },
    );
  }
}

const encoder = new TextEncoder();

function sandboxPath(id: string): string {
  return `/sandboxes/${encodeURIComponent(id)}`;
}

function filePath(id: string, path: string): string {
  const segments = path.split("/").filter(Boolean).map(encodeURIComponent);
  return `${sandboxPath(id)}/files${segments.length ? "/" : ""}${
    segments.join("/")
  }`;
}

function parseEvent(
  block: string,
  decoders: Record<"stdout" | "stderr", TextDecoder>,
): RunStreamEvent | null {
  let type = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return null;
  const payload = JSON.parse(data.join("\n"));
  switch (type) {
    case "stdout":
    case "stderr": {
      if (typeof payload.text === "string") {
        return { type, text: payload.text, data: encoder.encode(payload.text) };
      }
      const data = fromBase64(payload.base64);
      return {
        type,
        text: decoders[type].decode(data, { stream: true }),
        data,
      };
    }
    case "audit":
      return { type, event: payload };
    case "status":
      return { type, status: payload };
    case "error":
      return { type, error: payload.error };
    default:
      return null; // a newer server's event: ignored
  }
}

function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
