/**
 * Types of `sandbox.deno` and `sandbox.env` in the `@deno/sandbox`-compatible
 * API, with the SDK's names and shapes (implemented in `deno.ts`).
 *
 * @module
 */

import type { DenoProcess } from "./process.ts";
import type { DenoRepl } from "./repl.ts";
import type { SpawnOptions } from "./types.ts";

/**
 * The file extension inline code is compiled as.
 *
 * @example Usage
 * ```ts
 * import type { CodeExtension } from "./mod.ts";
 * const extension: CodeExtension = "tsx";
 * console.log(extension);
 * ```
 */
export type CodeExtension =
  | "js"
  | "cjs"
  | "mjs"
  | "ts"
  | "cts"
  | "mts"
  | "jsx"
  | "tsx";

/**
 * Options of `sandbox.deno.run()`: a file under /scratch (`entrypoint`) or
 * inline `code`, plus the spawn options.
 *
 * @example Usage
 * ```ts
 * import type { DenoRunOptions } from "./mod.ts";
 * const fromFile: DenoRunOptions = { entrypoint: "main.ts", scriptArgs: ["--fast"] };
 * const inline: DenoRunOptions = { code: "console.log(1)", stdout: "piped" };
 * console.log(fromFile, inline);
 * ```
 */
export type DenoRunOptions =
  & ({
    /** The program: a file under /scratch (relative paths start there). */
    entrypoint: string | URL;
    /** Unsupported when set. */
    watch?: boolean | string[];
  } | {
    /** The program's source. */
    code: string;
    /** How `code` is compiled (default "ts"). */
    extension?: CodeExtension;
  })
  & {
    /** The program's arguments (`Deno.args`). */
    scriptArgs?: string[];
  }
  & Omit<SpawnOptions, "args">;

/**
 * Options of `sandbox.deno.repl()` (`stdin: "piped"` is unsupported: the
 * REPL's stdin carries the evaluation requests).
 *
 * @example Usage
 * ```ts
 * import type { DenoReplOptions } from "./mod.ts";
 * const options: DenoReplOptions = { stdout: "piped" };
 * console.log(options.stdout);
 * ```
 */
export type DenoReplOptions =
  & {
    /** The REPL program's arguments (`Deno.args`). */
    scriptArgs?: string[];
  }
  & Omit<SpawnOptions, "args">;

/**
 * `sandbox.deno`: Deno programs, eval and REPLs.
 *
 * @example Usage
 * ```ts ignore
 * const deno: SandboxDeno = sandbox.deno;
 * console.log(await deno.eval("1 + 1")); // 2
 * ```
 */
export interface SandboxDeno {
  /**
   * Runs a program (bundled from /scratch, or inline code).
   *
   * @param options The program and its stdio.
   * @returns The running process.
   */
  run(options: DenoRunOptions): Promise<DenoProcess>;
  /**
   * Evaluates code in a fresh REPL and returns its value.
   *
   * @param code TypeScript; its completion value is the result.
   * @returns The value, structured-cloned.
   */
  eval<T = unknown>(code: string): Promise<T>;
  /**
   * Starts a REPL: evaluations share one global scope.
   *
   * @param options Stdio and arguments.
   * @returns The REPL; `close()` it.
   */
  repl(options?: DenoReplOptions): Promise<DenoRepl>;
  /**
   * Unsupported: there is no Deno Deploy locally.
   *
   * @param app The app.
   * @param options Deploy options.
   * @returns Never: rejects.
   */
  deploy(app: string, options?: unknown): Promise<never>;
}

/**
 * `sandbox.env`: reads what programs see (plain variables, and the
 * secrets' placeholders); changes are unsupported (the environment is fixed
 * at creation).
 *
 * @example Usage
 * ```ts ignore
 * const env: SandboxEnv = sandbox.env;
 * console.log(await env.get("API_KEY")); // airlock-placeholder-API_KEY-...
 * ```
 */
export interface SandboxEnv {
  /**
   * Reads a variable as programs see it.
   *
   * @param key The name.
   * @returns The value, or undefined.
   */
  get(key: string): Promise<string | undefined>;
  /**
   * Unsupported: the environment is fixed at creation.
   *
   * @param key The name.
   * @param value The value.
   */
  set(key: string, value: string): Promise<void>;
  /**
   * Every variable set by `env` or `secrets`, as programs see them.
   *
   * @returns Names to values.
   */
  toObject(): Promise<Record<string, string>>;
  /**
   * Unsupported: the environment is fixed at creation.
   *
   * @param key The name.
   */
  delete(key: string): Promise<void>;
}
