/**
 * Compiles and bundles a program on the harness side, before it enters the
 * sandbox: TypeScript/JavaScript as one string, or a set of files with an
 * entry, becomes one ES module. The sandbox then starts from plain JS (no
 * type stripping, no module resolution, no fetching, no cache writes).
 *
 * Imports the sandbox could not satisfy are refused here with the import
 * named: `npm:`, `jsr:`, URLs and bare package names (unless the policy's
 * npm allowlist names the package). `node:` built-ins are left to Deno.
 *
 * esbuild and the resolver plugin read program-controlled input, so they
 * do not run in the harness: they run in a bubblewrap sandbox of their own
 * (`_process.ts`, `_worker.ts`) that sees no host path but
 * the read-only package cache, has no network and no secret in its
 * environment. Every package file it resolves must lie, by real path,
 * inside the package that was imported.
 *
 * @module
 */

import { printable } from "../../audit/render_text.ts";
import {
  type BundleHost,
  bundlerFingerprint,
  bundlerFor,
  runningBundler,
  stopBundlerProcesses,
  transformOnce,
  type WorkerRefusal,
  type WorkerResult,
} from "./_process.ts";
import { removeHelperFiles } from "./_sandbox.ts";
import {
  BundleCache,
  type BundleDeps,
  contentHash,
  emptyDeps,
} from "./cache.ts";
import { normalisePath } from "../paths.ts";
import { MAX_INSTALLS_PER_BUNDLE } from "./_install_limit.ts";
import type { NpmPackages } from "./npm_packages.ts";

/** A program: inline code, files with an entry point, or a file on disk. */
export type ProgramSource =
  | {
    /** Source of a single-module program (TypeScript or JavaScript). */
    code: string;
    files?: undefined;
    entry?: undefined;
    path?: undefined;
  }
  | {
    code?: undefined;
    /** Files by relative path (`main.ts`, `lib/util.ts`). */
    files: Readonly<Record<string, string>>;
    /** The entry point, one of `files`. */
    entry: string;
    path?: undefined;
  }
  | {
    code?: undefined;
    files?: undefined;
    entry?: undefined;
    /**
     * A program file on the harness's disk. Its relative imports are read
     * from disk too, but only from below its own directory: bundling must
     * not pull arbitrary host files into the sandbox.
     */
    path: string;
  };

/** One problem found while bundling. */
export interface BundleProblem {
  /** What is wrong. */
  message: string;
  /** File, when known. */
  file?: string;
  /** 1-based line, when known. */
  line?: number;
  /** 1-based column, when known. */
  column?: number;
}

/**
 * The program could not be compiled or imports something unavailable.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { BundleError } from "./bundle.ts";
 * const error = new BundleError([
 *   { message: "Expected ';'", file: "main.ts", line: 1, column: 4 },
 * ]);
 * assert.equal(error.problems.length, 1);
 * assert.match(error.message, /main\.ts:1:4: Expected ';'/);
 * ```
 */
export class BundleError extends Error {
  /** Every problem found; program-controlled text is made printable. */
  readonly problems: BundleProblem[];
  /**
   * Builds the error from esbuild's and the resolver's problems.
   *
   * @param problems What went wrong.
   */
  constructor(problems: BundleProblem[]) {
    // Import specifiers and file names are the program's: an ESC or a bidi
    // override in them must not reach the operator's terminal as such.
    const safe = problems.map((p): BundleProblem => ({
      ...p,
      message: printable(p.message),
      ...(p.file !== undefined ? { file: printable(p.file) } : {}),
    }));
    super(
      `Cannot bundle the program: ${safe.length} problem${
        safe.length === 1 ? "" : "s"
      }\n` +
        safe.map((p) =>
          `  - ${
            p.file ? `${p.file}:${p.line ?? 0}:${p.column ?? 0}: ` : ""
          }${p.message}`
        ).join("\n"),
    );
    this.name = "BundleError";
    this.problems = safe;
  }
}

/** The file name inline code is compiled as. */
export const INLINE_ENTRY = "main.ts";

const NAMESPACE = "airlock";

/** An import the bundler refused (for the audit trail). */
export interface ImportRefusal {
  /** The import specifier, as the program wrote it. */
  specifier: string;
  /** The importing file (a program file, or `npm:pkg@version/file`). */
  importer: string;
  /** Why it was refused. */
  reason: string;
}

/** Options for {@linkcode bundleProgram}. */
export interface BundleOptions {
  /** npm packages the program may import (by the policy's allowlist). */
  npm?: NpmPackages | null;
  /** Called for every refused import (npm policy, escapes, URL imports). */
  onRefused?: (refusal: ImportRefusal) => void;
  /**
   * Where finished bundles are kept and looked up (`cache.ts`); default
   * the process's {@linkcode defaultBundleCache}, null for none.
   */
  cache?: BundleCache | null;
  /**
   * The cache partition: bundles are served only to the scope that made
   * them (a hit is faster, so a shared entry would tell one tenant what
   * another bundled). Default "": the process's own.
   */
  cacheScope?: string;
}

/**
 * The process's bundle cache (64 MiB), shared by every sandbox of one
 * cache scope.
 */
export const defaultBundleCache: BundleCache = new BundleCache();

/** Bumped when what a key covers changes. */
const CACHE_FORMAT = 1;

/**
 * Bundles a program into one ES module, or finds it already bundled (see
 * `cache.ts`: a hit needs the same text, bundler, npm allowlist and
 * scope, and the same answer to every question the bundler asked: program
 * files on disk, package installs).
 *
 * @param source The program.
 * @param options npm packages, the refusal listener, the cache.
 * @returns JavaScript source with an inline source map (stack traces point at
 *   the original files; package files show as `npm:name@version/file`).
 * @throws {BundleError} For syntax errors, missing files and refused imports.
 *
 * @example Usage
 * ```ts ignore
 * import { bundleProgram } from "./bundle.ts";
 * const js = await bundleProgram({ code: "const n: number = 1; console.log(n);" });
 * console.log(js.includes("console.log"));
 * ```
 */
export async function bundleProgram(
  source: ProgramSource,
  options: BundleOptions = {},
): Promise<string> {
  const cache = options.cache === undefined
    ? defaultBundleCache
    : options.cache;
  const npm = options.npm ?? null;
  const given = cache === null ? null : await keySource(source);
  if (cache === null || given === null) {
    return await bundleOnce(source, options, emptyDeps());
  }
  const key = await BundleCache.key({
    format: CACHE_FORMAT,
    bundler: await bundlerFingerprint(),
    scope: options.cacheScope ?? "",
    npm: npm === null ? null : { cacheDir: npm.cacheDir, allow: npm.allowed },
    source: given,
  });
  const files = source.path !== undefined
    ? diskFiles(given.root as string)
    : null;
  const hit = await cache.get(key, {
    has: (path) => files?.has(path) ?? Promise.resolve(false),
    read: (path) => files?.read(path) ?? Promise.resolve(undefined),
    package: async (name, range) => {
      if (npm === null) throw new Error("no packages");
      await npm.ready();
      // Answers only from installs already made: a lookup installs nothing.
      return await npm.resolve(name, range, { installs: { left: 0 } });
    },
  });
  if (hit !== null) return hit;
  const deps = emptyDeps();
  const js = await bundleOnce(source, options, deps);
  cache.set(key, js, deps);
  return js;
}

/**
 * What a program's key covers: its text (code, or files and entry), or for
 * a program on disk the real path of its entry (the files it reads are
 * checked as dependencies). Null when the path does not resolve (the
 * bundler reports it).
 */
async function keySource(
  source: ProgramSource,
): Promise<Record<string, unknown> | null> {
  if (source.code !== undefined) return { code: source.code };
  if (source.files !== undefined) {
    return { files: source.files, entry: source.entry };
  }
  try {
    const real = await Deno.realPath(source.path);
    return { path: real, root: real.slice(0, real.lastIndexOf("/")) };
  } catch {
    return null;
  }
}

/** Bundles without the cache, recording what the bundler asked in `deps`. */
async function bundleOnce(
  source: ProgramSource,
  options: BundleOptions,
  deps: BundleDeps,
): Promise<string> {
  const npm = options.npm ?? null;
  if (source.code !== undefined && !IMPORTS.test(source.code)) {
    // Nothing to resolve: one transform instead of a bundle (each plugin
    // callback of a bundle is a round trip to esbuild's process).
    return settle(await transform(source.code, INLINE_ENTRY), options);
  }
  let files: Record<string, string> | null = null;
  let disk: FileSource | null = null;
  let entry: string;
  if (source.path !== undefined) {
    let real: string;
    try {
      real = await Deno.realPath(source.path);
    } catch {
      throw new BundleError([{
        message: `program file '${source.path}' does not exist`,
      }]);
    }
    const root = real.slice(0, real.lastIndexOf("/"));
    disk = recorded(diskFiles(root), deps);
    entry = real.slice(root.length);
    const text = await disk.read(entry);
    if (text === undefined) {
      throw new BundleError([{
        message: `program file '${source.path}' is not a regular file`,
      }]);
    }
    if (/\.(?:ts|mts|js|mjs)$/.test(entry) && !IMPORTS.test(text)) {
      return settle(await transform(text, entry.slice(1)), options);
    }
  } else {
    files = {};
    const given = source.code !== undefined
      ? { [INLINE_ENTRY]: source.code }
      : source.files;
    for (const [name, text] of Object.entries(given)) {
      if (typeof text !== "string") {
        throw new BundleError([{ message: `file '${name}' is not a string` }]);
      }
      files[safeNormalise(name)] = text;
    }
    entry = safeNormalise(
      source.code !== undefined ? INLINE_ENTRY : source.entry,
    );
    if (!Object.hasOwn(files, entry)) {
      throw new BundleError([{
        message: `entry '${entry.slice(1)}' is not one of the files (${
          Object.keys(files).map((k) => k.slice(1)).join(", ")
        })`,
      }]);
    }
  }
  // Each bundle may cause a bounded number of new installs.
  const installs = { left: MAX_INSTALLS_PER_BUNDLE };
  const host: BundleHost = {
    files: disk,
    package: npm
      ? async (name, range) => {
        const dir = await npm.resolve(name, range, { installs });
        deps.packages.set(JSON.stringify([name, range]), { name, range, dir });
        return dir;
      }
      : null,
  };
  if (npm) await npm.ready();
  return settle(
    await bundlerFor(npm?.cacheDir ?? null).bundle(entry, files, host),
    options,
  );
}

/** `files`, noting each answer in `deps` (a content hash for a read). */
function recorded(files: FileSource, deps: BundleDeps): FileSource {
  return {
    has: async (path) => {
      const found = await files.has(path);
      // A read of the same path is the stronger record: keep it.
      if (typeof deps.files.get(path) !== "string") {
        deps.files.set(path, found);
      }
      return found;
    },
    read: async (path) => {
      const text = await files.read(path);
      deps.files.set(
        path,
        text === undefined ? false : await contentHash(text),
      );
      return text;
    },
  };
}

/**
 * Compiles one module: in the long-lived bundler when one is up (~2 ms),
 * else in a one-shot sandbox holding only esbuild's binary (~30 ms), which
 * spares a one-program harness (the CLI) the bundler's start (~0.2 s).
 */
async function transform(code: string, name: string): Promise<WorkerResult> {
  const sourcefile = `${NAMESPACE}:/${name}`;
  const bundler = runningBundler();
  if (bundler) return await bundler.transform(code, sourcefile);
  // A harness that compiles a second program will compile more: start the
  // long-lived bundler for them (in the background; never awaited).
  if (++oneShots === 2) void bundlerFor(null).start().catch(() => {});
  return await transformOnce(code, sourcefile);
}

let oneShots = 0;

/** How long after a sandbox's creation its bundler starts (see below). */
const PREPARE_DELAY_MS = 1000;
const preparing = new Set<ReturnType<typeof setTimeout>>();

/**
 * Starts the bundler for `npm`'s cache (or for programs without packages)
 * a second from now, so a later bundle does not wait for it (an agent's
 * next program usually comes after a model call). The second lets a short
 * one-program harness (the CLI) finish first: it never needs the bundler
 * for a program without imports, and its start would compete for the CPU
 * with the run. The timer never keeps the harness alive, and
 * `stopBundler()` cancels it.
 *
 * @param npm The packages the coming bundles may import, or null.
 * @returns When the bundler is up (never rejects: a failed start is
 *   reported by the first bundle).
 *
 * @example Usage
 * ```ts ignore
 * import { prepareBundler } from "./bundle.ts";
 * await prepareBundler(null);
 * ```
 */
export function prepareBundler(npm: NpmPackages | null): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(async () => {
      preparing.delete(timer);
      try {
        if (npm) await npm.ready();
        await bundlerFor(npm?.cacheDir ?? null).start();
      } catch {
        // The first bundle starts it again and reports why it cannot.
      }
      resolve();
    }, PREPARE_DELAY_MS);
    preparing.add(timer);
    Deno.unrefTimer(timer as unknown as number);
  });
}

function settle(result: WorkerResult, options: BundleOptions): string {
  if (!result.ok) {
    for (const refusal of result.refusals) report(options, refusal);
    throw new BundleError(result.problems);
  }
  // CommonJS packages call require(); ESM has none. The shim goes on the
  // first line (a comment) so the source map's lines stay aligned.
  return result.packages ? REQUIRE_SHIM + result.code : result.code;
}

function report(options: BundleOptions, refusal: WorkerRefusal): void {
  try {
    options.onRefused?.(refusal);
  } catch {
    // A failing listener must not hide the bundle error.
  }
}

const REQUIRE_SHIM =
  'import { createRequire as __airlockCreateRequire } from "node:module"; ' +
  "globalThis.require ??= __airlockCreateRequire(import.meta.url); ";

/** Anything that may import: static or dynamic import, export-from, require. */
const IMPORTS =
  /\bimport\b|\brequire\s*\(|\bexport\s*(?:\*|\{[^}]*\})\s*from\b/;

/**
 * Stops the bundler's sandboxed processes (they otherwise live as long as
 * the harness; the next bundle starts them again).
 *
 * @example Usage
 * ```ts ignore
 * import { stopBundler } from "./bundle.ts";
 * await stopBundler();
 * ```
 */
export async function stopBundler(): Promise<void> {
  for (const timer of preparing) clearTimeout(timer);
  preparing.clear();
  oneShots = 0;
  await stopBundlerProcesses();
  await removeHelperFiles();
}

/** Program files on the harness's disk, by normalised path. */
interface FileSource {
  has(path: string): Promise<boolean>;
  read(path: string): Promise<string | undefined>;
}

/**
 * Files below `root` on the harness's disk, read only when imported. Paths
 * are normalised before the check, and symlinks resolved, so no import can
 * read outside `root` (e.g. `../../.ssh/id_rsa` or a link to it).
 */
function diskFiles(root: string): FileSource {
  const inside = async (path: string): Promise<string | null> => {
    const normal = normalisePath(path);
    if (normal === null) return null;
    try {
      const real = await Deno.realPath(root + normal);
      const info = await Deno.stat(real);
      return info.isFile && (real === root || real.startsWith(`${root}/`))
        ? real
        : null;
    } catch {
      return null;
    }
  };
  return {
    has: async (path) => (await inside(path)) !== null,
    read: async (path) => {
      const real = await inside(path);
      return real === null ? undefined : await Deno.readTextFile(real);
    },
  };
}

function safeNormalise(name: string): string {
  // Above the program's root there is nothing to import; clamping would
  // silently bind "../x.ts" to the root's own x.ts.
  const normal = normalisePath(name);
  if (normal === null) {
    throw new BundleError([{
      message: `file name '${name}' goes outside the program's directory`,
    }]);
  }
  return normal;
}
