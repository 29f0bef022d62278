/**
 * Every error the harness throws on purpose, in one place. Each one's
 * message says what failed and what to do (`Cannot <action>: <why>`).
 *
 * The plain ones are defined here; the ones that carry structure live with
 * the code that builds them ({@linkcode PolicyError} with the policy schema,
 * {@linkcode BundleError} with the bundler, the host-tool errors with the
 * runtime) and are re-exported. Harness modules import the classes defined
 * here directly; none imports a re-export from this file (that would tie
 * the policy and the bundler into a cycle).
 *
 * @example Telling the errors apart
 * ```ts
 * import { InputError, PolicyError, SandboxSetupError } from "./errors.ts";
 * const errors = [new InputError("x"), new SandboxSetupError("y")];
 * console.log(errors.map((e) => e.name)); // ["InputError", "SandboxSetupError"]
 * console.log(errors[0] instanceof PolicyError); // false
 * ```
 *
 * @module
 */

export { PolicyError, type PolicyIssue } from "./policy.ts";
export { BundleError, type BundleProblem } from "./bundle/bundle.ts";
export {
  HarnessAccessError,
  MissingHostToolError,
} from "../runtime/host_tools.ts";

/**
 * The sandbox could not be started (bwrap, prlimit or the launcher failed,
 * or a run's socket could not be opened): nothing of the program ran.
 *
 * @example Usage
 * ```ts
 * import { SandboxSetupError } from "./errors.ts";
 * const error = new SandboxSetupError("Cannot start the sandbox: bwrap: No permissions");
 * console.log(error.name, error instanceof Error); // SandboxSetupError true
 * ```
 */
export class SandboxSetupError extends Error {
  /**
   * Builds the error.
   *
   * @param message What failed, with the tool's own message.
   */
  constructor(message: string) {
    super(message);
    this.name = "SandboxSetupError";
  }
}

/**
 * A run was refused because the scratch directory is over its quota (files
 * left by earlier runs): delete some with `sandbox.fs` first.
 *
 * @example Usage
 * ```ts
 * import { ScratchQuotaError } from "./errors.ts";
 * const error = new ScratchQuotaError("Cannot start a run: the scratch directory is full");
 * console.log(error.name); // ScratchQuotaError
 * ```
 */
export class ScratchQuotaError extends Error {
  /**
   * Builds the error.
   *
   * @param message What is over and how to fix it.
   */
  constructor(message: string) {
    super(message);
    this.name = "ScratchQuotaError";
  }
}

/**
 * A policy input could not be prepared: missing, unreadable by the
 * sandbox's uid, or holding a symlink that leads out of it.
 *
 * @example Usage
 * ```ts
 * import { InputError } from "./errors.ts";
 * const error = new InputError("Cannot mount input '/data': it does not exist");
 * console.log(error.name); // InputError
 * ```
 */
export class InputError extends Error {
  /**
   * Builds the error.
   *
   * @param message What is wrong and how to fix it.
   */
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}

/**
 * A file operation of `sandbox.fs` was refused (a path outside the scratch
 * directory, a symlink on the way, a live run).
 *
 * @example Usage
 * ```ts
 * import { SandboxFsError } from "./errors.ts";
 * const error = new SandboxFsError("Cannot read '/etc/passwd': only paths under /scratch are reachable");
 * console.log(error.name); // SandboxFsError
 * ```
 */
export class SandboxFsError extends Error {
  /**
   * Builds the error.
   *
   * @param message What was refused and why.
   */
  constructor(message: string) {
    super(message);
    this.name = "SandboxFsError";
  }
}
