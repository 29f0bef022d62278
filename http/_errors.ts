/**
 * The HTTP API's error answers: {@linkcode ApiError} carries a status, one
 * of the documented codes (types.ts, `ERROR_CODES`) and a message; the
 * helpers below make the ones several routes answer with, and
 * {@linkcode toApiError} turns anything a route throws into one, logging
 * only what is not the client's doing (never in the answer: a stack trace
 * could name server paths).
 *
 * @module
 */

import { HTTPException } from "hono/http-exception";
import { MissingHostToolError } from "../runtime/host_tools.ts";
import { InputError } from "../harness/_run/inputs.ts";
import { BundleError, type BundleProblem } from "../harness/bundle/bundle.ts";
import { PolicyError, type PolicyIssue } from "../harness/policy.ts";
import { SandboxSetupError } from "../harness/sandbox.ts";
import type { ErrorCode } from "./types.ts";

/** The statuses the API answers errors with. */
export type ApiStatus =
  | 400
  | 401
  | 404
  | 409
  | 413
  | 415
  | 421
  | 422
  | 429
  | 500
  | 503;

/**
 * An error answer: the app's error handler sends it as
 * `{ error: { code, message, issues?, problems? } }` with its status.
 *
 * @example Usage
 * ```ts
 * import { ApiError, errorBody } from "./_errors.ts";
 * const error = new ApiError(404, "not_found", "Cannot find sandbox 'x'");
 * console.log(errorBody(error).error.code); // "not_found"
 * ```
 */
export class ApiError extends Error {
  /**
   * Makes an error answer.
   *
   * @param status The HTTP status.
   * @param code The documented error code.
   * @param message What went wrong and what to do.
   * @param extra Problems by path (`issues`) or bundling problems.
   */
  constructor(
    readonly status: ApiStatus,
    readonly code: ErrorCode,
    message: string,
    readonly extra: { issues?: PolicyIssue[]; problems?: BundleProblem[] } = {},
  ) {
    super(message);
  }
}

/**
 * The JSON body of an error answer.
 *
 * @param error The error.
 * @returns `{ error: { code, message, issues?, problems? } }`.
 *
 * @example Usage
 * ```ts
 * import { ApiError, errorBody } from "./_errors.ts";
 * const body = errorBody(new ApiError(400, "invalid_json", "Not JSON"));
 * console.log(body.error.message); // "Not JSON"
 * ```
 */
export function errorBody(error: ApiError): {
  error: {
    code: ErrorCode;
    message: string;
    issues?: PolicyIssue[];
    problems?: BundleProblem[];
  };
} {
  return {
    error: {
      code: error.code,
      message: error.message,
      ...(error.extra.issues ? { issues: error.extra.issues } : {}),
      ...(error.extra.problems ? { problems: error.extra.problems } : {}),
    },
  };
}

/**
 * Anything a route threw as an error answer. The Sandbox API's errors get
 * their codes; anything else is a 500 whose details go to `log` only.
 *
 * @param error What was thrown.
 * @param log Where internal errors are logged.
 * @param where The request or run, for the log line.
 * @returns The answer.
 *
 * @example Usage
 * ```ts
 * import { toApiError } from "./_errors.ts";
 * const api = toApiError(new Error("boom"), () => {}, "GET /x");
 * console.log(api.status, api.code); // 500 "internal"
 * ```
 */
export function toApiError(
  error: unknown,
  log: (message: string) => void,
  where: string,
): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof BundleError) {
    return new ApiError(422, "bundle_error", "The program cannot be bundled", {
      problems: error.problems,
    });
  }
  if (error instanceof PolicyError) return invalidPolicy(error, "");
  if (error instanceof InputError) {
    return new ApiError(400, "invalid_policy", error.message, {
      issues: [{ path: "policy.inputs", message: error.message }],
    });
  }
  if (
    error instanceof SandboxSetupError || error instanceof MissingHostToolError
  ) {
    return new ApiError(500, "sandbox_setup_error", error.message);
  }
  if (error instanceof HTTPException && error.status === 413) {
    return new ApiError(413, "body_too_large", "The request body is too large");
  }
  log(
    `airlock-api: internal error in ${where}: ${
      error instanceof Error ? error.stack : String(error)
    }`,
  );
  return new ApiError(
    500,
    "internal",
    "Internal server error (details are in the server's log)",
  );
}

/**
 * The answer about a sandbox deleted while a request used it: a 404.
 *
 * @param id The sandbox's id.
 * @returns The answer.
 *
 * @example Usage
 * ```ts
 * import { deleted } from "./_errors.ts";
 * console.log(deleted("sbx-1").message); // "Sandbox 'sbx-1' was deleted"
 * ```
 */
export function deleted(id: string): ApiError {
  return new ApiError(404, "not_found", `Sandbox '${id}' was deleted`);
}

/**
 * Limits over the caller's ceilings: a 400 naming each ceiling.
 *
 * @param issues The limits over their ceilings, by path.
 * @returns The answer.
 *
 * @example Usage
 * ```ts
 * import { overCeiling } from "./_errors.ts";
 * const api = overCeiling([{ path: "timeoutMs", message: "at most 60000" }]);
 * console.log(api.code); // "over_ceiling"
 * ```
 */
export function overCeiling(issues: PolicyIssue[]): ApiError {
  return new ApiError(
    400,
    "over_ceiling",
    `Cannot use ${
      issues.map((i) => `${i.path} (${i.message})`).join(", ")
    }: ask for less, or ask the server's operator for a higher ceiling`,
    { issues },
  );
}

/**
 * The answer once shutdown has begun: a 503.
 *
 * @returns The answer.
 *
 * @example Usage
 * ```ts
 * import { shuttingDown } from "./_errors.ts";
 * console.log(shuttingDown().status); // 503
 * ```
 */
export function shuttingDown(): ApiError {
  return new ApiError(
    503,
    "shutting_down",
    "The server is shutting down: no new sandboxes",
  );
}

/**
 * The answer while the node drains (SIGTERM): a 503 `draining`, which a
 * router may retry on another node (nothing was created or started).
 *
 * @param what What was refused ("new sandboxes", "new runs").
 * @returns The answer.
 *
 * @example Usage
 * ```ts
 * import { draining } from "./_errors.ts";
 * console.log(draining("new runs").code); // "draining"
 * ```
 */
export function draining(what: string): ApiError {
  return new ApiError(
    503,
    "draining",
    `This node is draining (it is being stopped): no ${what}; live runs finish. Create a new sandbox (the router sends it to another node)`,
  );
}

/**
 * A PolicyError as the API's error, its paths prefixed by `prefix`.
 *
 * @param error The Sandbox API's error.
 * @param prefix What the paths are under in the request body.
 * @returns The answer: 400 invalid_policy with every issue.
 *
 * @example Usage
 * ```ts
 * import { PolicyError } from "../harness/policy.ts";
 * import { invalidPolicy } from "./_errors.ts";
 * const error = new PolicyError([{ path: "scratch", message: "boolean" }]);
 * console.log(invalidPolicy(error).extra.issues?.[0]?.path); // "policy.scratch"
 * ```
 */
export function invalidPolicy(error: PolicyError, prefix = "policy"): ApiError {
  const issues = error.issues.map((i) => ({
    path: [prefix, i.path].filter(Boolean).join("."),
    message: i.message,
  }));
  return new ApiError(400, "invalid_policy", "The policy is invalid", {
    issues,
  });
}
