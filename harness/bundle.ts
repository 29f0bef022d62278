/**
 * Compiles and bundles a program on the harness side, before it enters the
 * sandbox: TypeScript/JavaScript as one string, or a set of files with an
 * entry, becomes one ES module. The sandbox then starts from plain JS (no
 * type stripping, no module resolution, no fetching, no cache writes).
 *
 * Imports the sandbox could not satisfy are refused here with the import
 * named: `npm:`, `jsr:`, URLs and bare package names. `node:` built-ins are
 * left to Deno.
 *
 * @module
 */

import * as esbuild from "esbuild";
import { builtinModules } from "node:module";
import { NpmPackages, parseNpmSpecifier } from "./npm_packages.ts";

/** Marks the bundler's own package lookups (see onResolve). */
const NPM_LOOKUP = Symbol("airlock npm lookup");

const NODE_BUILTINS = new Set(
  builtinModules.map((m) => m.replace(/^node:/, "")),
);

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

/** The program could not be compiled or imports something unavailable. */
export class BundleError extends Error {
  /** Every problem esbuild reported. */
  readonly problems: BundleProblem[];
  /** @param problems What went wrong. */
  constructor(problems: BundleProblem[]) {
    super(
      `Cannot bundle the program: ${problems.length} problem${
        problems.length === 1 ? "" : "s"
      }\n` +
        problems.map((p) =>
          `  - ${
            p.file ? `${p.file}:${p.line ?? 0}:${p.column ?? 0}: ` : ""
          }${p.message}`
        ).join("\n"),
    );
    this.name = "BundleError";
    this.problems = problems;
  }
}

const LOADERS: Record<string, esbuild.Loader> = {
  ts: "ts",
  mts: "ts",
  cts: "ts",
  tsx: "tsx",
  js: "js",
  mjs: "js",
  cjs: "js",
  jsx: "jsx",
  json: "json",
  txt: "text",
};

/** The file name inline code is compiled as. */
export const INLINE_ENTRY = "main.ts";

const NAMESPACE = "airlock";

/**
 * Bundles a program into one ES module.
 *
 * @param source The program.
 * @returns JavaScript source with an inline source map (stack traces point at
 *   the original files).
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
  if (source.code !== undefined && !IMPORTS.test(source.code)) {
    // Nothing to resolve: one transform instead of a bundle (each plugin
    // callback of a bundle is a round trip to esbuild's process).
    return await transformOnly(source.code);
  }
  let files: FileSource;
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
    files = diskFiles(root);
    entry = real.slice(root.length);
  } else {
    const byPath = new Map<string, string>();
    const given = source.code !== undefined
      ? { [INLINE_ENTRY]: source.code }
      : source.files;
    for (const [name, text] of Object.entries(given)) {
      if (typeof text !== "string") {
        throw new BundleError([{ message: `file '${name}' is not a string` }]);
      }
      byPath.set(safeNormalise(name), text);
    }
    files = memoryFiles(byPath);
    entry = safeNormalise(
      source.code !== undefined ? INLINE_ENTRY : source.entry,
    );
  }
  if (!(await files.has(entry))) {
    throw new BundleError([{
      message: `entry '${entry.slice(1)}' is not one of the files (${
        files.list().map((k) => k.slice(1)).join(", ")
      })`,
    }]);
  }
  let result: esbuild.BuildResult<{ write: false }>;
  try {
    result = await esbuild.build({
      entryPoints: [`${NAMESPACE}:${entry}`],
      bundle: true,
      write: false,
      format: "esm",
      // "node": npm packages resolve by their Node entry points; Node
      // built-ins are kept as `node:` imports for Deno.
      platform: "node",
      target: "esnext",
      // Bundled packages check this at run time; the sandbox has no such
      // variable (and reading the environment is refused).
      define: { "process.env.NODE_ENV": '"production"' },
      metafile: true,
      charset: "utf8",
      sourcemap: "inline",
      sourcesContent: false,
      legalComments: "none",
      logLevel: "silent",
      plugins: [virtualFiles(files, options.npm ?? null)],
    });
  } catch (error) {
    const failure = error as esbuild.BuildFailure;
    if (Array.isArray(failure.errors)) {
      throw new BundleError(failure.errors.map(toProblem));
    }
    throw error;
  }
  const output = result.outputFiles[0];
  if (!output) {
    throw new BundleError([{ message: "esbuild produced no output" }]);
  }
  const bundledPackages = Object.keys(result.metafile?.inputs ?? {})
    .some((input) => input.includes("node_modules/"));
  // CommonJS packages call require(); ESM has none. The shim goes on the
  // first line (a comment) so the source map's lines stay aligned.
  return bundledPackages ? REQUIRE_SHIM + output.text : output.text;
}

const REQUIRE_SHIM =
  'import { createRequire as __airlockCreateRequire } from "node:module"; ' +
  "globalThis.require ??= __airlockCreateRequire(import.meta.url); ";

/** Anything that may import: static or dynamic import, export-from, require. */
const IMPORTS =
  /\bimport\b|\brequire\s*\(|\bexport\s*(?:\*|\{[^}]*\})\s*from\b/;

async function transformOnly(code: string): Promise<string> {
  try {
    const result = await esbuild.transform(code, {
      loader: "ts",
      format: "esm",
      target: "esnext",
      charset: "utf8",
      sourcemap: "inline",
      sourcefile: `${NAMESPACE}:/${INLINE_ENTRY}`,
      legalComments: "none",
      define: { "process.env.NODE_ENV": '"production"' },
    });
    return result.code;
  } catch (error) {
    const failure = error as esbuild.TransformFailure;
    if (Array.isArray(failure.errors)) {
      throw new BundleError(failure.errors.map(toProblem));
    }
    throw error;
  }
}

/** Options for {@linkcode bundleProgram}. */
export interface BundleOptions {
  /** npm packages the program may import (by the policy's allowlist). */
  npm?: NpmPackages | null;
}

/**
 * Stops esbuild's helper process (it otherwise lives as long as the harness).
 *
 * @example Usage
 * ```ts ignore
 * import { stopBundler } from "./bundle.ts";
 * await stopBundler();
 * ```
 */
export async function stopBundler(): Promise<void> {
  await esbuild.stop();
}

/** Where the bundler reads program files from, by normalised path. */
interface FileSource {
  has(path: string): Promise<boolean>;
  read(path: string): Promise<string | undefined>;
  list(): string[];
}

function memoryFiles(files: Map<string, string>): FileSource {
  return {
    has: (path) => Promise.resolve(files.has(path)),
    read: (path) => Promise.resolve(files.get(path)),
    list: () => [...files.keys()],
  };
}

/**
 * Files below `root` on the harness's disk, read only when imported. Paths
 * are normalised before the check, and symlinks resolved, so no import can
 * read outside `root` (e.g. `../../.ssh/id_rsa` or a link to it).
 */
function diskFiles(root: string): FileSource {
  const inside = async (path: string): Promise<string | null> => {
    try {
      const real = await Deno.realPath(root + path);
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
    list: () => [],
  };
}

function virtualFiles(
  files: FileSource,
  npm: NpmPackages | null,
): esbuild.Plugin {
  return {
    name: "airlock-virtual-files",
    setup(build) {
      build.onResolve({ filter: /.*/ }, async (args) => {
        const spec = args.path;
        // Built-ins, from the program or from a package: Deno wants `node:`.
        const bare = spec.startsWith("node:") ? spec.slice(5) : spec;
        if (spec.startsWith("node:") || NODE_BUILTINS.has(bare)) {
          return { path: `node:${bare}`, external: true };
        }
        // Inside an installed package, and for our own lookup below, imports
        // resolve the usual way (else build.resolve would recurse into here).
        if (args.namespace === "file" || args.pluginData === NPM_LOOKUP) {
          return undefined;
        }
        const importer = args.importer.startsWith(`${NAMESPACE}:`)
          ? args.importer.slice(NAMESPACE.length + 1)
          : args.importer || "/";
        if (args.kind === "entry-point") {
          return {
            path: spec.slice(NAMESPACE.length + 1),
            namespace: NAMESPACE,
          };
        }
        const pkg = npm && !spec.startsWith(".") && !spec.startsWith("/") &&
            (spec.startsWith("npm:") || !/^[a-z][a-z0-9+.-]*:/i.test(spec))
          ? parseNpmSpecifier(spec)
          : null;
        if (npm && pkg) {
          if (!npm.allows(pkg.name)) {
            return {
              errors: [{
                text:
                  `Cannot import '${spec}': npm package '${pkg.name}' is not in the policy's npm allowlist (add it to npm.allow)`,
              }],
            };
          }
          let dir: string;
          try {
            dir = await npm.install(pkg);
          } catch (error) {
            return { errors: [{ text: (error as Error).message }] };
          }
          const found = await build.resolve(pkg.name + pkg.subpath, {
            resolveDir: dir,
            kind: args.kind,
            namespace: "file",
            pluginData: NPM_LOOKUP,
          });
          if (found.errors.length > 0) {
            return {
              errors: [{
                text: `Cannot resolve '${spec}' in the installed package: ${
                  found.errors[0]!.text
                }`,
              }],
            };
          }
          return {
            path: found.path,
            namespace: found.namespace,
            sideEffects: found.sideEffects,
          };
        }
        const refused = refusal(spec);
        if (refused) return { errors: [{ text: refused }] };
        let resolved: string | null;
        try {
          resolved = await resolveRelative(spec, importer, files);
        } catch (error) {
          if (!(error instanceof OutsideRootError)) throw error;
          return {
            errors: [{
              text: `Cannot import '${spec}' from '${
                importer.slice(1)
              }': it goes outside the program's directory`,
            }],
          };
        }
        if (resolved === null) {
          return {
            errors: [{
              text: `Cannot find '${spec}' imported from '${
                importer.slice(1)
              }': it is not among the program's files`,
            }],
          };
        }
        return { path: resolved, namespace: NAMESPACE };
      });
      build.onLoad({ filter: /.*/, namespace: NAMESPACE }, async (args) => {
        const ext = args.path.split(".").pop() ?? "";
        return {
          contents: (await files.read(args.path)) ?? "",
          loader: LOADERS[ext] ?? "ts",
        };
      });
    },
  };
}

/** Why an import specifier cannot be used in the sandbox, or null. */
function refusal(spec: string): string | null {
  if (spec.startsWith("npm:")) {
    return `Cannot import '${spec}': npm packages need the policy's npm allowlist (npm.allow); the sandbox never fetches code`;
  }
  if (spec.startsWith("jsr:")) {
    return `Cannot import '${spec}': jsr packages are not available to sandboxed code (the sandbox never fetches code)`;
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(spec)) {
    return `Cannot import '${spec}': URL imports are refused (the sandbox never fetches code)`;
  }
  if (!spec.startsWith(".") && !spec.startsWith("/")) {
    return `Cannot import '${spec}': bare package imports need the policy's npm allowlist (npm.allow), or use a relative path to one of the program's files`;
  }
  return null;
}

async function resolveRelative(
  spec: string,
  importer: string,
  files: FileSource,
): Promise<string | null> {
  const dir = importer.slice(0, importer.lastIndexOf("/") + 1) || "/";
  const base = normalise(spec.startsWith("/") ? spec : dir + spec);
  for (
    const candidate of [
      base,
      `${base}.ts`,
      `${base}.js`,
      `${base}/mod.ts`,
      `${base}/index.ts`,
      `${base}/index.js`,
    ]
  ) {
    if (await files.has(candidate)) return candidate;
  }
  return null;
}

function normalise(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      // Above the program's root there is nothing to import; clamping would
      // silently bind "../x.ts" to the root's own x.ts.
      if (parts.length === 0) throw new OutsideRootError(path);
      parts.pop();
    } else {
      parts.push(part);
    }
  }
  return "/" + parts.join("/");
}

function safeNormalise(name: string): string {
  try {
    return normalise(name);
  } catch {
    throw new BundleError([{
      message: `file name '${name}' goes outside the program's directory`,
    }]);
  }
}

class OutsideRootError extends Error {
  constructor(path: string) {
    super(`'${path}' goes outside the program's directory`);
  }
}

function toProblem(message: esbuild.Message): BundleProblem {
  const problem: BundleProblem = { message: message.text };
  if (message.location) {
    problem.file = message.location.file.replace(`${NAMESPACE}:/`, "");
    problem.line = message.location.line;
    problem.column = message.location.column + 1;
  }
  return problem;
}
