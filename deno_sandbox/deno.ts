/**
 * `sandbox.deno` and `sandbox.env` of the `@deno/sandbox`-compatible API:
 * programs, eval and REPLs as airlock runs.
 *
 * @module
 */

import type { SandboxFs as AirlockSandboxFs } from "../harness/sandbox_fs.ts";
import { NO_DEPLOY, rejectUnsupported, unsupported } from "./errors.ts";
import { DenoProcess, PROCESS_TOKEN } from "./process.ts";
import { DenoRepl, replDriverSource } from "./repl.ts";
import { relativeToWorkdir, toPath, WORKDIR } from "./paths.ts";
import { runTimeout, type Session } from "./session.ts";
import type {
  DenoReplOptions,
  DenoRunOptions,
  SandboxDeno,
  SandboxEnv,
} from "./deno_types.ts";
import type { SpawnOptions } from "./types.ts";

const SOURCE_FILE = /\.(?:[mc]?[jt]sx?|json|txt)$/;
const SKIP_DIRS = new Set(["node_modules", ".git"]);
const MAX_PROGRAM_FILES = 2_000;
const MAX_PROGRAM_BYTES = 16 * 1024 * 1024;
const RELATIVE_IMPORT = /(?:\bfrom|\bimport)\s*\(?\s*["'](?:\.{1,2}\/|\/)/;

/**
 * `sandbox.deno`: programs, eval and REPLs as airlock runs of the session.
 *
 * @example Usage
 * ```ts ignore
 * const deno = new LocalDeno(session, (member) => assertOpen(member));
 * const child = await deno.run({ code: "console.log(1)", stdout: "piped" });
 * ```
 */
export class LocalDeno implements SandboxDeno {
  #session: Session;
  #open: (member: string) => void;

  /**
   * Made by `Sandbox`.
   *
   * @param session The sandbox's session.
   * @param open Throws when the client is closed (called with the member used).
   */
  constructor(session: Session, open: (member: string) => void) {
    this.#session = session;
    this.#open = open;
  }

  async run(options: DenoRunOptions): Promise<DenoProcess> {
    this.#open("sandbox.deno.run()");
    checkSpawnOptions("sandbox.deno.run", options);
    if ("entrypoint" in options && options.watch) {
      unsupported(
        "sandbox.deno.run({ watch })",
        "a run's program is bundled when it starts; start a new run after changing files",
      );
    }
    const source = await this.#source(options);
    const stdinPiped = options.stdin === "piped";
    const run = await this.#session.inner.spawn({
      ...source,
      args: options.scriptArgs ?? [],
      timeoutMs: runTimeout(this.#session),
      ...(stdinPiped ? { stdin: "piped" as const } : {}),
    }).catch((error) => {
      throw withNpmHint(error);
    });
    return new DenoProcess(PROCESS_TOKEN, {
      pid: this.#session.nextPid++,
      run,
      stdout: options.stdout ?? "inherit",
      stderr: options.stderr ?? "inherit",
      stdinPiped,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  async eval<T = unknown>(code: string): Promise<T> {
    const repl = await this.repl();
    try {
      return await repl.eval<T>(code);
    } finally {
      await repl.close();
    }
  }

  async repl(options: DenoReplOptions = {}): Promise<DenoRepl> {
    this.#open("sandbox.deno.repl()");
    checkSpawnOptions("sandbox.deno.repl", options);
    if (options.stdin === "piped") {
      unsupported(
        'sandbox.deno.repl({ stdin: "piped" })',
        "the REPL's stdin carries airlock's evaluation requests",
      );
    }
    const marker = `\x1eairlock-repl-${randomHex(16)}\x1f`;
    const run = await this.#session.inner.spawn({
      code: replDriverSource(),
      args: options.scriptArgs ?? [],
      timeoutMs: runTimeout(this.#session),
      stdin: "piped",
    });
    return new DenoRepl(PROCESS_TOKEN, {
      pid: this.#session.nextPid++,
      run,
      stdout: options.stdout ?? "inherit",
      stderr: options.stderr ?? "inherit",
      stdinPiped: false,
      marker,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  deploy(_app: string, _options?: unknown): Promise<never> {
    return rejectUnsupported("sandbox.deno.deploy()", NO_DEPLOY);
  }

  async #source(
    options: DenoRunOptions,
  ): Promise<{ files: Record<string, string>; entry: string }> {
    const fs = this.#session.inner.fs;
    if ("entrypoint" in options) {
      const path = toPath(options.entrypoint);
      const entry = relativeToWorkdir(path);
      if (!entry) {
        throw new TypeError(
          `Cannot run entrypoint '${path}': only files under ${WORKDIR} (the sandbox's files) can be run`,
        );
      }
      return { files: await programFiles(fs, entry, path), entry };
    }
    const extension = options.extension ?? "ts";
    if (!/^(?:[mc]?[jt]s|[jt]sx)$/.test(extension)) {
      throw new TypeError(`Cannot run code with extension '${extension}'`);
    }
    const entry = `.airlock-inline.${extension}`;
    const files = RELATIVE_IMPORT.test(options.code)
      ? await programFiles(fs, null, "code")
      : {};
    return { files: { ...files, [entry]: options.code }, entry };
  }
}

/**
 * `sandbox.env`: what programs see; placeholders are read from a program.
 *
 * @example Usage
 * ```ts ignore
 * const env = new LocalEnv(session, deno, (member) => assertOpen(member));
 * console.log(await env.toObject());
 * ```
 */
export class LocalEnv implements SandboxEnv {
  #session: Session;
  #deno: SandboxDeno;
  #open: (member: string) => void;

  /**
   * Made by `Sandbox`.
   *
   * @param session The sandbox's session.
   * @param deno Its `sandbox.deno` (to read placeholders with `eval`).
   * @param open Throws when the client is closed (called with the member used).
   */
  constructor(
    session: Session,
    deno: SandboxDeno,
    open: (member: string) => void,
  ) {
    this.#session = session;
    this.#deno = deno;
    this.#open = open;
  }

  async get(key: string): Promise<string | undefined> {
    this.#open("sandbox.env.get()");
    if (Object.hasOwn(this.#session.plainEnv, key)) {
      return this.#session.plainEnv[key];
    }
    if (!this.#session.secretNames.includes(key)) return undefined;
    return (await this.#read([key]))[key];
  }

  async toObject(): Promise<Record<string, string>> {
    this.#open("sandbox.env.toObject()");
    const placeholders = this.#session.secretNames.length > 0
      ? await this.#read(this.#session.secretNames)
      : {};
    return { ...this.#session.plainEnv, ...placeholders };
  }

  set(_key: string, _value: string): Promise<void> {
    return rejectUnsupported("sandbox.env.set()", FIXED_ENV);
  }

  delete(_key: string): Promise<void> {
    return rejectUnsupported("sandbox.env.delete()", FIXED_ENV);
  }

  /** What a program reads (placeholders are made per sandbox, inside airlock). */
  async #read(names: string[]): Promise<Record<string, string>> {
    return await this.#deno.eval<Record<string, string>>(
      `Object.fromEntries(${
        JSON.stringify(names)
      }.map((n) => [n, Deno.env.get(n)]))`,
    );
  }
}

const FIXED_ENV =
  "airlock fixes a sandbox's environment when it is created: pass env (or secrets) to Sandbox.create()";

function checkSpawnOptions(
  member: string,
  options: Omit<SpawnOptions, "args">,
): void {
  if (
    options.cwd !== undefined && relativeToWorkdir(toPath(options.cwd)) !== ""
  ) {
    unsupported(
      `${member}({ cwd })`,
      `every program runs in ${WORKDIR} (the sandbox's files)`,
    );
  }
  if (options.env !== undefined && Object.keys(options.env).length > 0) {
    unsupported(`${member}({ env })`, FIXED_ENV);
  }
  if (options.clearEnv) unsupported(`${member}({ clearEnv })`, FIXED_ENV);
}

/**
 * The program's files from /scratch: every source file (skipping symlinks,
 * node_modules and .git), read through airlock's fs (never following a
 * symlink, refused while a run is live).
 */
async function programFiles(
  fs: AirlockSandboxFs,
  entry: string | null,
  what: string,
): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  let bytes = 0;
  let count = 0;
  const add = async (relative: string) => {
    const text = await fs.readTextFile(`${WORKDIR}/${relative}`);
    bytes += text.length;
    if (++count > MAX_PROGRAM_FILES || bytes > MAX_PROGRAM_BYTES) {
      throw new RangeError(
        `${WORKDIR} holds more than ${MAX_PROGRAM_FILES} source files or ${MAX_PROGRAM_BYTES} bytes of them (airlock bundles the program from them before each run)`,
      );
    }
    files[relative] = text;
  };
  const visit = async (dir: string): Promise<void> => {
    for (const item of await fs.readDir(dir ? `${WORKDIR}/${dir}` : WORKDIR)) {
      const relative = dir ? `${dir}/${item.name}` : item.name;
      if (item.isDirectory && !SKIP_DIRS.has(item.name)) await visit(relative);
      else if (item.isFile && SOURCE_FILE.test(item.name)) await add(relative);
    }
  };
  try {
    await visit("");
    if (entry !== null && !(entry in files)) await add(entry);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && entry !== null) {
      throw new Deno.errors.NotFound(
        `Cannot run entrypoint '${what}': ${WORKDIR}/${entry} does not exist`,
      );
    }
    if (error instanceof Error && error.name === "SandboxFsError") {
      throw new Error(`Cannot run ${what}: ${error.message}`, {
        cause: error,
      });
    }
    throw error;
  }
  return files;
}

/** airlock's bundler names its policy key; here the option is `airlock.npm`. */
function withNpmHint(error: unknown): unknown {
  if (
    error instanceof Error && error.name === "BundleError" &&
    error.message.includes("(npm.allow)")
  ) {
    const hint =
      '\n  (list npm packages in Sandbox.create({ airlock: { npm: ["name@range"] } }))';
    error.message += hint;
    if (error.stack) {
      error.stack = error.stack.replace(/\n\s+at [\s\S]*$/, (t) => hint + t);
    }
  }
  return error;
}

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}
