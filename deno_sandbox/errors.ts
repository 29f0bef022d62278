/**
 * Errors of the `@deno/sandbox`-compatible API: the SDK's error classes
 * (exported so that `instanceof` checks keep working; several are never
 * thrown locally), and `AirlockUnsupportedError`, thrown by every member
 * that cannot exist locally, naming the member and the reason.
 *
 * @module
 */

/**
 * A member of the SDK that airlock cannot honour, with the reason (thrown
 * or rejected by every member that cannot exist locally).
 *
 * @example Usage
 * ```ts
 * import { AirlockUnsupportedError, Sandbox } from "./mod.ts";
 * import assert from "node:assert/strict";
 * await assert.rejects(
 *   Sandbox.create({ region: "ams" }),
 *   (error) => error instanceof AirlockUnsupportedError && error.member.includes("region"),
 * );
 * ```
 */
export class AirlockUnsupportedError extends Error {
  /** The member, as written in SDK code (`sandbox.sh`). */
  readonly member: string;
  /**
   * Makes the error; its message names the member and the reason.
   *
   * @param member The member, as written in SDK code.
   * @param why Why airlock cannot provide it, and what to do instead.
   */
  constructor(member: string, why: string) {
    super(`${member} is not supported by the local sandbox (airlock): ${why}`);
    this.name = "AirlockUnsupportedError";
    this.member = member;
  }
}

/**
 * Throws {@linkcode AirlockUnsupportedError}.
 *
 * @param member The member, as written in SDK code.
 * @param why Why, and what to do instead.
 * @returns Never.
 *
 * @example Usage
 * ```ts
 * import { unsupported } from "./errors.ts";
 * import assert from "node:assert/strict";
 * assert.throws(() => unsupported("sandbox.sh", "no shell"), /sandbox\.sh/);
 * ```
 */
export function unsupported(member: string, why: string): never {
  throw new AirlockUnsupportedError(member, why);
}

/**
 * The base class of the SDK's errors.
 *
 * @example Usage
 * ```ts
 * import { InvalidMemoryError, Sandbox, SandboxSdkError } from "./mod.ts";
 * import assert from "node:assert/strict";
 * await assert.rejects(Sandbox.create({ memory: "1TiB" as "1GiB" }), SandboxSdkError);
 * assert.ok(new InvalidMemoryError("too big") instanceof SandboxSdkError);
 * ```
 */
export abstract class SandboxSdkError extends Error {}

/**
 * A sandbox could not be reached (here: no live sandbox of this process
 * has that id).
 *
 * @example Usage
 * ```ts
 * import { ConnectionEstablishmentError, Sandbox } from "./mod.ts";
 * import assert from "node:assert/strict";
 * await assert.rejects(Sandbox.connect("no-such-sandbox"), ConnectionEstablishmentError);
 * ```
 */
export class ConnectionEstablishmentError extends SandboxSdkError {
  /** HTTP-like status (404: no such sandbox). */
  status: number;
  /** Error code. */
  code: string;
  /** Always undefined locally. */
  traceId: string | undefined;
  /**
   * Makes the error.
   *
   * @param status HTTP-like status.
   * @param code Error code.
   * @param message What failed.
   * @param traceId Unused locally.
   */
  constructor(status: number, code: string, message: string, traceId?: string) {
    super(message);
    this.name = "ConnectionEstablishmentError";
    this.status = status;
    this.code = code;
    this.traceId = traceId;
  }
}

/**
 * An operation failed inside the sandbox (the SDK's; not thrown locally).
 *
 * @example Usage
 * ```ts
 * import { RpcError } from "./mod.ts";
 * const error = new RpcError(-32000, "failed", { detail: 1 });
 * console.log(error.code, error.data);
 * ```
 */
export class RpcError extends SandboxSdkError {
  /** Error code. */
  code: number;
  /** More about it. */
  data?: unknown;
  /**
   * Makes the error.
   *
   * @param code Error code.
   * @param message What failed.
   * @param data More about it.
   */
  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = "RpcError";
    this.code = code;
    this.data = data;
  }
}

/**
 * The sandbox (or this client of it) is closed: thrown by every member of
 * a closed client.
 *
 * @example Usage
 * ```ts ignore
 * await sandbox.close();
 * await sandbox.fs.readTextFile("a.txt"); // throws ConnectionClosedError
 * ```
 */
export class ConnectionClosedError extends SandboxSdkError {
  /** Unused locally. */
  code: number | undefined;
  /** Why it closed. */
  reason: string | undefined;
  /**
   * Makes the error.
   *
   * @param code Unused locally.
   * @param reason Why it closed.
   */
  constructor(code?: number, reason?: string) {
    super(reason ?? "The connection to the sandbox is closed");
    this.name = "ConnectionClosedError";
    this.code = code;
    this.reason = reason;
  }
}

/**
 * A command failed (the SDK's `sh` errors; `sh` is unsupported here).
 *
 * @example Usage
 * ```ts
 * import { SandboxCommandError } from "./mod.ts";
 * console.log(new SandboxCommandError("exit 1", 1).code); // 1
 * ```
 */
export class SandboxCommandError extends Error {
  /** Exit code. */
  readonly code: number;
  /**
   * Makes the error.
   *
   * @param message What failed.
   * @param code Exit code.
   */
  constructor(message: string, code: number) {
    super(message);
    this.name = "SandboxCommandError";
    this.code = code;
  }
}

/**
 * A `timeout` option was not "session", `${n}s` or `${n}m`.
 *
 * @example Usage
 * ```ts
 * import { InvalidTimeoutError, Sandbox } from "./mod.ts";
 * import assert from "node:assert/strict";
 * await assert.rejects(Sandbox.create({ timeout: "1h" as "5m" }), InvalidTimeoutError);
 * ```
 */
export class InvalidTimeoutError extends SandboxSdkError {
  /**
   * Makes the error.
   *
   * @param message What is wrong.
   */
  constructor(message: string) {
    super(message);
    this.name = "InvalidTimeoutError";
  }
}

/**
 * A `memory` option was malformed or out of range (768 to 4096 MiB).
 *
 * @example Usage
 * ```ts
 * import { InvalidMemoryError, Sandbox } from "./mod.ts";
 * import assert from "node:assert/strict";
 * await assert.rejects(Sandbox.create({ memory: "64MiB" }), InvalidMemoryError);
 * ```
 */
export class InvalidMemoryError extends SandboxSdkError {
  /**
   * Makes the error.
   *
   * @param message What is wrong.
   */
  constructor(message: string) {
    super(message);
    this.name = "InvalidMemoryError";
  }
}

/**
 * Never thrown locally (no token is needed); exported for `instanceof`.
 *
 * @example Usage
 * ```ts
 * import { MissingTokenError } from "./mod.ts";
 * console.log(new MissingTokenError().message);
 * ```
 */
export class MissingTokenError extends SandboxSdkError {
  /** Makes the error. */
  constructor() {
    super("No token is needed by the local sandbox (airlock)");
    this.name = "MissingTokenError";
  }
}

/**
 * Never thrown locally; exported for `instanceof`.
 *
 * @example Usage
 * ```ts
 * import { InvalidTokenError } from "./mod.ts";
 * console.log(new InvalidTokenError("bad token").name); // "InvalidTokenError"
 * ```
 */
export class InvalidTokenError extends SandboxSdkError {
  /**
   * Makes the error.
   *
   * @param message What is wrong.
   */
  constructor(message: string) {
    super(message);
    this.name = "InvalidTokenError";
  }
}

/**
 * Never thrown locally; exported for `instanceof`.
 *
 * @example Usage
 * ```ts
 * import { SandboxKillError } from "./mod.ts";
 * console.log(new SandboxKillError(500, "oops").message);
 * ```
 */
export class SandboxKillError extends SandboxSdkError {
  /** HTTP status. */
  status: number;
  /** Response text. */
  response: string;
  /**
   * Makes the error.
   *
   * @param status HTTP status.
   * @param response Response text.
   */
  constructor(status: number, response: string) {
    super(`Failed to kill the sandbox: ${status} ${response}`);
    this.name = "SandboxKillError";
    this.status = status;
    this.response = response;
  }
}

/**
 * Never thrown locally; exported for `instanceof`.
 *
 * @example Usage
 * ```ts
 * import { NetworkError } from "./mod.ts";
 * console.log(new NetworkError("unreachable", { cause: "test" }).cause);
 * ```
 */
export class NetworkError extends SandboxSdkError {
  /**
   * Makes the error.
   *
   * @param message What failed.
   * @param options The cause.
   */
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "NetworkError";
  }
}

/**
 * Never thrown locally; exported for `instanceof`.
 *
 * @example Usage
 * ```ts
 * import { ApiError } from "./mod.ts";
 * console.log(new ApiError(404, "NOT_FOUND", "no such app").status); // 404
 * ```
 */
export class ApiError extends Error {
  /** HTTP status. */
  status: number;
  /** Error code. */
  code: string;
  /** Trace id. */
  traceId?: string;
  /**
   * Makes the error.
   *
   * @param status HTTP status.
   * @param code Error code.
   * @param message What failed.
   * @param traceId Trace id.
   */
  constructor(status: number, code: string, message: string, traceId?: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    if (traceId !== undefined) this.traceId = traceId;
  }
}

/**
 * A promise rejected with {@linkcode AirlockUnsupportedError}.
 *
 * @param member The member, as written in SDK code.
 * @param why Why airlock cannot provide it, and what to do instead.
 * @returns The rejected promise.
 *
 * @example Usage
 * ```ts
 * import { rejectUnsupported } from "./errors.ts";
 * import assert from "node:assert/strict";
 * await assert.rejects(rejectUnsupported("sandbox.fetch()", "no agent"), /fetch/);
 * ```
 */
export function rejectUnsupported<T>(member: string, why: string): Promise<T> {
  return Promise.reject(new AirlockUnsupportedError(member, why));
}

/**
 * Why a sandbox runs no shell and no other binary.
 *
 * @example Usage
 * ```ts ignore
 * unsupported("sandbox.sh", NO_SHELL);
 * ```
 */
export const NO_SHELL =
  "the sandbox contains only the Deno runtime (no shell, no other binaries); run programs with sandbox.deno.run()";
/**
 * Why Deno Deploy's members are unsupported.
 *
 * @example Usage
 * ```ts ignore
 * unsupported("sandbox.deploy()", NO_DEPLOY);
 * ```
 */
export const NO_DEPLOY = "there is no Deno Deploy locally";
/**
 * Why nothing can connect into a sandbox.
 *
 * @example Usage
 * ```ts ignore
 * unsupported("sandbox.exposeHttp()", NO_INBOUND);
 * ```
 */
export const NO_INBOUND =
  "a sandbox has its own network namespace and accepts no inbound connections";
