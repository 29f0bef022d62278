/**
 * The bundler's sandboxed side: runs inside its own bubblewrap sandbox (see
 * `_process.ts`) and turns programs into one ES module with esbuild.
 * It speaks newline-delimited JSON on stdin/stdout with the harness.
 *
 * Everything that reads program-controlled input runs here: esbuild's
 * parser and resolver, and the resolve/load plugin below. Its view of the
 * filesystem is the Deno binary, esbuild, this file and, read-only, the npm
 * package cache at `/npm`; no host path, no network, an environment with no
 * secret in it. The harness answers three questions over the pipe: is a
 * program file there, what does it hold (programs on disk), and where is the
 * allowed package (policy, install).
 *
 * This file imports nothing at run time but `node:module` (it runs with no
 * import map, no npm resolution): esbuild's JavaScript API is loaded from
 * its mounted package by path, given as the first argument.
 *
 * @module
 */

import { builtinModules, createRequire } from "node:module";
import type * as Esbuild from "esbuild";

/** esbuild's JavaScript API, loaded by `serve()`. */
let esbuild: typeof Esbuild;

/** Where the package cache is mounted (read-only). */
const NPM_ROOT = "/npm";
/** Program files' namespace; their paths are normalised, rooted at "/". */
const NAMESPACE = "airlock";
/** Marks the plugin's own resolve calls (esbuild runs plugins on them too). */
const LOOKUP = "airlock-lookup";

const LOADERS: Record<string, Esbuild.Loader> = {
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

const BUILTINS = new Set(builtinModules.map((m) => m.replace(/^node:/, "")));

// ---- protocol --------------------------------------------------------------

/** A problem as the harness's BundleError carries it. */
interface Problem {
  message: string;
  file?: string;
  line?: number;
  column?: number;
}

/** An import the plugin refused (for the harness's audit trail). */
interface Refusal {
  specifier: string;
  importer: string;
  reason: string;
}

type Request =
  | { t: "transform"; id: number; code: string; sourcefile: string }
  | {
    t: "bundle";
    id: number;
    entry: string;
    files: Record<string, string> | null;
    npm: boolean;
  }
  | {
    t: "reply";
    rid: number;
    ok: boolean;
    value?: unknown;
    error?: string;
    refused?: boolean;
  };

const encoder = new TextEncoder();
/** stdout, taken by `serve()`. */
let out: WritableStreamDefaultWriter<Uint8Array>;
function send(message: unknown): void {
  // The writer queues: whole lines never interleave.
  out.write(encoder.encode(JSON.stringify(message) + "\n")).catch(() => {
    Deno.exit(0); // the harness is gone
  });
}

const waiting = new Map<
  number,
  { resolve: (v: unknown) => void; reject: (e: Error) => void }
>();
let nextRid = 1;

/** Asks the harness something on behalf of bundle `id`. */
function ask(id: number, op: string, fields: Record<string, unknown>) {
  const rid = nextRid++;
  send({ t: "ask", id, rid, op, ...fields });
  return new Promise<unknown>((resolve, reject) => {
    waiting.set(rid, { resolve, reject });
  });
}

class RefusedError extends Error {}

// ---- program files ---------------------------------------------------------

interface FileSource {
  has(path: string): Promise<boolean>;
  read(path: string): Promise<string | undefined>;
}

function memoryFiles(files: Record<string, string>): FileSource {
  const map = new Map(Object.entries(files));
  return {
    has: (path) => Promise.resolve(map.has(path)),
    read: (path) => Promise.resolve(map.get(path)),
  };
}

/** A program on the harness's disk: the harness reads it, contained. */
function harnessFiles(id: number): FileSource {
  return {
    has: async (path) => (await ask(id, "has", { path })) === true,
    read: async (path) => {
      const text = await ask(id, "read", { path });
      return typeof text === "string" ? text : undefined;
    },
  };
}

/**
 * `harness/paths.ts`'s `normalisePath` with its default options (a relative
 * path is taken from the program's root, climbing above it is refused):
 * this file imports nothing at run time, so it carries its own copy, held
 * to the same table by `harness/paths_test.ts`.
 *
 * @param path A program file's path.
 * @returns Its normal form from `/`, or null above the program's root.
 *
 * @example Usage
 * ```ts
 * import { normalise } from "./_worker.ts";
 * console.log(normalise("lib/../main.ts"), normalise("../x.ts")); // "/main.ts" null
 * ```
 */
export function normalise(path: string): string | null {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      // Above the program's root there is nothing to import; clamping would
      // silently bind "../x.ts" to the root's own x.ts.
      if (parts.length === 0) return null;
      parts.pop();
    } else {
      parts.push(part);
    }
  }
  return "/" + parts.join("/");
}

async function resolveRelative(
  spec: string,
  importer: string,
  files: FileSource,
): Promise<string | null | "outside"> {
  const dir = importer.slice(0, importer.lastIndexOf("/") + 1) || "/";
  const base = normalise(spec.startsWith("/") ? spec : dir + spec);
  if (base === null) return "outside";
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

// ---- packages --------------------------------------------------------------

const NAME = /^(?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/;

/** `npm:name@range/sub` or bare `name/sub`, or null when it is not one. */
function parsePackage(
  spec: string,
): { name: string; range: string | null; subpath: string } | null {
  const text = spec.startsWith("npm:")
    ? spec.slice(4).replace(/^\/+/, "")
    : spec;
  const scoped = text.startsWith("@");
  const parts = text.split("/");
  const head = scoped ? `${parts[0]}/${parts[1] ?? ""}` : parts[0] ?? "";
  const rest = parts.slice(scoped ? 2 : 1);
  const at = head.indexOf("@", scoped ? 1 : 0);
  const name = at === -1 ? head : head.slice(0, at);
  const range = at === -1 ? null : head.slice(at + 1);
  if (!NAME.test(name) || name.length > 214) return null;
  return {
    name,
    range,
    subpath: rest.length > 0 ? `/${rest.join("/")}` : "",
  };
}

/**
 * Whether a package subpath (`/sub/file.js`) walks or hides anything:
 * `.`, `..` or empty segments, backslashes, NUL. A subpath names a file
 * inside the package; `ms/../../etc/shadow` is no such name.
 */
function badSubpath(subpath: string): boolean {
  return subpath.split("/").slice(1).some((p) =>
    p === "" || p === "." || p === ".."
  ) || /[\\\0]/.test(subpath);
}

/** Where a cached file lies: its install and its package's directory. */
interface PackageHome {
  /** `/npm/<install>` */
  install: string;
  /** The package's real directory. */
  root: string;
  /** The package's name. */
  name: string;
  /** The version, from the store's directory name. */
  version: string;
}

/**
 * The package a real path belongs to. Every file a bundle may read from the
 * cache has this shape:
 * `/npm/<install>/node_modules/.deno/<key>/node_modules/<name>/<file>`
 * (`<name>` is one segment or `@scope/name`; a package nested in another's
 * `node_modules` is a package of its own: the last `node_modules` names it).
 * Anything else is no package file: the store's bookkeeping, another
 * install's, or no cache at all.
 */
function packageHome(real: string): PackageHome | null {
  const m = real.match(
    /^(\/npm\/[^/]+)\/node_modules\/\.deno\/([^/]+)\/node_modules\/./,
  );
  if (!m) return null;
  const [, install, key] = m as unknown as [string, string, string];
  const at = real.lastIndexOf("/node_modules/") + "/node_modules/".length;
  const parts = real.slice(at).split("/");
  const size = parts[0]!.startsWith("@") ? 2 : 1;
  // A file inside the package, never the package directory itself.
  if (parts.length <= size) return null;
  const name = parts.slice(0, size).join("/");
  if (!NAME.test(name)) return null;
  const prefix = `${name.replace("/", "+")}@`;
  const top = at === m[0].length - 1;
  const version = top && key.startsWith(prefix)
    ? key.slice(prefix.length).split("_")[0]!
    : "";
  return { install, root: real.slice(0, at) + name, name, version };
}

/**
 * Whether `path` is a link whose target the bundler cannot see: a link out
 * of the cache (to a host file), which esbuild reports as "not found". The
 * caller turns that into a refusal the audit trail records.
 */
async function linkOut(path: string): Promise<boolean> {
  try {
    if (!(await Deno.lstat(path)).isSymlink) return false;
  } catch {
    return false;
  }
  return (await realFile(path)) === null;
}

async function realFile(path: string): Promise<string | null> {
  try {
    const real = await Deno.realPath(path);
    return (await Deno.stat(real)).isFile ? real : null;
  } catch {
    return null;
  }
}

/**
 * Checks that `found` (what esbuild resolved `spec` to) is a file inside the
 * package `spec` names (bare), or inside the importer's own package
 * (relative, absolute, `#imports`). Returns the reason it is not, or null.
 */
async function outsidePackage(
  spec: string,
  found: string,
  from: PackageHome | null,
  wanted: { name: string; install: string } | null,
): Promise<string | null> {
  // A symlink inside a package (or a path with "..") could name any file
  // the bundler's sandbox can see: the real path decides.
  const real = await realFile(found);
  const home = real === null ? null : packageHome(real);
  if (home === null) {
    return `it resolves to a file outside every installed package`;
  }
  if (wanted !== null) {
    // `pkg/../../other/x`: a package import names a file of that package.
    if (home.install !== wanted.install || home.name !== wanted.name) {
      return `it resolves outside the package '${wanted.name}'`;
    }
    if (!(real!.startsWith(home.root + "/"))) {
      return `it resolves outside the package '${wanted.name}'`;
    }
    return null;
  }
  if (from === null) return `it is not imported from a package`;
  if (home.install !== from.install) {
    return `it resolves into another install than its importer's`;
  }
  if (spec.startsWith("#")) return null; // package imports map: same install
  if (home.root !== from.root) {
    // `./../../other-pkg/x.js` from inside a package.
    return `it resolves outside the package '${from.name}'`;
  }
  return null;
}

// ---- the plugin ------------------------------------------------------------

function plugin(
  id: number,
  files: FileSource,
  npm: boolean,
  refusals: Refusal[],
): Esbuild.Plugin {
  const refuse = (spec: string, importer: string, reason: string) => {
    refusals.push({ specifier: spec, importer, reason });
    return { errors: [{ text: reason }] };
  };
  return {
    name: "airlock",
    setup(build) {
      build.onResolve({ filter: /.*/ }, async (args) => {
        const spec = args.path;
        if (args.pluginData === LOOKUP) return undefined;
        // Built-ins, from the program or from a package: Deno wants `node:`.
        const bare = spec.startsWith("node:") ? spec.slice(5) : spec;
        if (spec.startsWith("node:") || BUILTINS.has(bare)) {
          return { path: `node:${bare}`, external: true };
        }
        if (args.kind === "entry-point") {
          return {
            path: spec.slice(NAMESPACE.length + 1),
            namespace: NAMESPACE,
          };
        }
        // esbuild names a program file's importer by path alone ("/main.ts").
        const importer = args.importer.startsWith(`${NAMESPACE}:`)
          ? args.importer.slice(NAMESPACE.length + 1)
          : args.importer || "/";
        const shownImporter = args.namespace === NAMESPACE
          ? importer.slice(1)
          : npmName(importer);
        if (args.namespace === "file") {
          return await fromPackage(args, spec, shownImporter);
        }
        const pkg = npm && !spec.startsWith(".") && !spec.startsWith("/") &&
            (spec.startsWith("npm:") || !/^[a-z][a-z0-9+.-]*:/i.test(spec))
          ? parsePackage(spec)
          : null;
        if (pkg) return await toPackage(args, spec, pkg, shownImporter);
        const refused = refusal(spec);
        if (refused) return refuse(spec, shownImporter, refused);
        const resolved = await resolveRelative(spec, importer, files);
        if (resolved === "outside") {
          return refuse(
            spec,
            shownImporter,
            `Cannot import '${spec}' from '${shownImporter}': it goes outside the program's directory`,
          );
        }
        if (resolved === null) {
          return {
            errors: [{
              text:
                `Cannot find '${spec}' imported from '${shownImporter}': it is not among the program's files`,
            }],
          };
        }
        return { path: resolved, namespace: NAMESPACE };
      });

      /** A package import from the program: the harness decides and installs. */
      const toPackage = async (
        args: Esbuild.OnResolveArgs,
        spec: string,
        pkg: { name: string; range: string | null; subpath: string },
        importer: string,
      ) => {
        // `ms/../../x`, `ms//x`, `ms/./x`: a subpath names a file of the
        // package, never a walk out of it (checked again by real path below).
        if (badSubpath(pkg.subpath)) {
          return refuse(
            spec,
            importer,
            `Cannot import '${spec}': a package path may not contain '.', '..' or empty segments (it names a file inside the package)`,
          );
        }
        let install: { root: string; name: string };
        try {
          install = await ask(id, "package", {
            name: pkg.name,
            range: pkg.range,
            specifier: spec,
          }) as { root: string; name: string };
        } catch (error) {
          if (error instanceof RefusedError) {
            return refuse(spec, importer, error.message);
          }
          return { errors: [{ text: (error as Error).message }] };
        }
        const found = await build.resolve(pkg.name + pkg.subpath, {
          resolveDir: install.root,
          kind: args.kind,
          namespace: "file",
          pluginData: LOOKUP,
          with: args.with,
        });
        if (found.errors.length > 0) {
          const literal =
            `${install.root}/node_modules/${pkg.name}${pkg.subpath}`;
          if (pkg.subpath && await linkOut(literal)) {
            return refuse(
              spec,
              importer,
              `Cannot import '${spec}': it is a link to a file outside every installed package`,
            );
          }
          return {
            errors: [{
              text: `Cannot resolve '${spec}' in the installed package: ${
                found.errors[0]!.text
              }`,
            }],
          };
        }
        if (found.external) return found;
        const why = await outsidePackage(spec, found.path, null, {
          name: pkg.name,
          install: install.root,
        });
        if (why) {
          return refuse(spec, importer, `Cannot import '${spec}': ${why}`);
        }
        return {
          path: found.path,
          namespace: "file",
          sideEffects: found.sideEffects,
        };
      };

      /** An import made by a package file. */
      const fromPackage = async (
        args: Esbuild.OnResolveArgs,
        spec: string,
        importer: string,
      ) => {
        if (/^[a-z][a-z0-9+.-]*:/i.test(spec)) {
          return refuse(
            spec,
            importer,
            `Cannot import '${spec}' from '${importer}': URL imports are refused (the sandbox never fetches code)`,
          );
        }
        // No package names a file by absolute path: that is a reach for
        // whatever the bundler can see (its own files, /proc).
        if (spec.startsWith("/")) {
          return refuse(
            spec,
            importer,
            `Cannot import '${spec}' from '${importer}': a package may not import an absolute path`,
          );
        }
        // `dep/../../x` from a package file: as from the program.
        const bare = !spec.startsWith(".") && !spec.startsWith("#")
          ? parsePackage(spec)
          : null;
        if (bare && badSubpath(bare.subpath)) {
          return refuse(
            spec,
            importer,
            `Cannot import '${spec}' from '${importer}': a package path may not contain '.', '..' or empty segments (it names a file inside the package)`,
          );
        }
        const found = await build.resolve(spec, {
          importer: args.importer,
          resolveDir: args.resolveDir,
          kind: args.kind,
          namespace: "file",
          pluginData: LOOKUP,
          with: args.with,
        });
        if (found.errors.length > 0) {
          if (
            // A relative import that esbuild could not load may be a link
            // out of the package (its target is not in this sandbox): name
            // it as such, whatever its depth, so the refusal is audited.
            (spec.startsWith("./") || spec.startsWith("../")) &&
            await linkOut(`${args.resolveDir}/${spec}`)
          ) {
            return refuse(
              spec,
              importer,
              `Cannot import '${spec}' from '${importer}': it is a link to a file outside every installed package`,
            );
          }
          if (bare && args.kind === "require-call") {
            // An optional dependency, required inside try/catch by packages
            // that work without it (debug's supports-color, ws's
            // bufferutil): esbuild's own resolver fails it again and, in a
            // try block, leaves a require() that throws at run time, as
            // Node's does when the package is absent; anywhere else it is
            // still an error. Nothing is resolved that this lookup did not
            // already fail to find.
            return undefined;
          }
          return { errors: found.errors.map((e) => ({ text: e.text })) };
        }
        if (found.external) return found;
        const importerReal = await realFile(args.importer);
        const from = importerReal === null ? null : packageHome(importerReal);
        const bareName = !spec.startsWith(".") && !spec.startsWith("/") &&
            !spec.startsWith("#")
          ? parsePackage(spec)?.name ?? null
          : null;
        const why = await outsidePackage(
          spec,
          found.path,
          from,
          bareName !== null && from !== null
            ? { name: bareName, install: from.install }
            : null,
        );
        if (why) {
          return refuse(
            spec,
            importer,
            `Cannot import '${spec}' from '${importer}': ${why}`,
          );
        }
        return {
          path: found.path,
          namespace: "file",
          sideEffects: found.sideEffects,
        };
      };

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

/**
 * A cache path as the program may see it: `npm:name@version/file`. Stack
 * traces and messages name no path of the bundler's (or the host's) disk.
 */
function npmName(path: string): string {
  const home = packageHome(path);
  if (home === null || !path.startsWith(home.root + "/")) {
    return path.startsWith(`${NPM_ROOT}/`) ? "npm:(cache)" : path;
  }
  const version = home.version ? `@${home.version}` : "";
  return `npm:${home.name}${version}${path.slice(home.root.length)}`;
}

// ---- requests --------------------------------------------------------------

function toProblem(message: Esbuild.Message): Problem {
  const problem: Problem = { message: message.text };
  if (message.location) {
    const file = message.location.file;
    problem.file = file.startsWith(`${NAMESPACE}:/`)
      ? file.slice(NAMESPACE.length + 2)
      : npmName(file.startsWith("/") ? file : `/${file}`);
    problem.line = message.location.line;
    problem.column = message.location.column + 1;
  }
  return problem;
}

function failed(id: number, error: unknown, refusals: Refusal[] = []): void {
  const failure = error as Esbuild.BuildFailure;
  const problems = Array.isArray(failure?.errors)
    ? failure.errors.map(toProblem)
    : [{ message: `esbuild failed: ${(error as Error)?.message ?? error}` }];
  send({ t: "failed", id, problems, refusals });
}

/**
 * Rewrites the inline source map's sources: program files keep their own
 * names, package files become `npm:name@version/file`.
 */
function neutralSourceMap(code: string): string {
  const marker = "//# sourceMappingURL=data:application/json;base64,";
  const at = code.lastIndexOf(marker);
  if (at === -1) return code;
  const map = JSON.parse(
    new TextDecoder().decode(
      Uint8Array.from(
        atob(code.slice(at + marker.length).trim()),
        (c) => c.charCodeAt(0),
      ),
    ),
  ) as { sources?: string[] };
  map.sources = (map.sources ?? []).map((source) =>
    source.startsWith(`${NAMESPACE}:`)
      ? source
      : npmName(source.startsWith("/") ? source : `/${source}`)
  );
  const bytes = encoder.encode(JSON.stringify(map));
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return code.slice(0, at) + marker + btoa(binary) + "\n";
}

const COMMON = {
  format: "esm",
  target: "esnext",
  charset: "utf8",
  sourcemap: "inline",
  legalComments: "none",
  // Bundled packages check this at run time; the sandbox has no such
  // variable (and reading the environment is refused).
  define: { "process.env.NODE_ENV": '"production"' },
} as const;

async function transform(request: Extract<Request, { t: "transform" }>) {
  try {
    const result = await esbuild.transform(request.code, {
      ...COMMON,
      loader: "ts",
      sourcefile: request.sourcefile,
    });
    send({ t: "done", id: request.id, code: result.code, packages: false });
  } catch (error) {
    failed(request.id, error);
  }
}

async function bundle(request: Extract<Request, { t: "bundle" }>) {
  const files = request.files === null
    ? harnessFiles(request.id)
    : memoryFiles(request.files);
  const refusals: Refusal[] = [];
  try {
    const result = await esbuild.build({
      ...COMMON,
      entryPoints: [`${NAMESPACE}:${request.entry}`],
      bundle: true,
      write: false,
      // "node": npm packages resolve by their Node entry points; Node
      // built-ins are kept as `node:` imports for Deno.
      platform: "node",
      absWorkingDir: "/",
      metafile: true,
      sourcesContent: false,
      logLevel: "silent",
      plugins: [plugin(request.id, files, request.npm, refusals)],
    });
    const output = result.outputFiles?.[0];
    if (!output) throw new Error("esbuild produced no output");
    const packages = Object.keys(result.metafile?.inputs ?? {})
      .some((input) => input.includes("node_modules/"));
    send({
      t: "done",
      id: request.id,
      code: neutralSourceMap(output.text),
      packages,
    });
  } catch (error) {
    failed(request.id, error, refusals);
  }
}

function onReply(reply: Extract<Request, { t: "reply" }>): void {
  const waiter = waiting.get(reply.rid);
  if (!waiter) return;
  waiting.delete(reply.rid);
  if (reply.ok) waiter.resolve(reply.value);
  else {
    const message = reply.error ?? "the harness refused";
    waiter.reject(
      reply.refused ? new RefusedError(message) : new Error(message),
    );
  }
}

function dispatch(line: string): void {
  const request = JSON.parse(line) as Request;
  if (request.t === "reply") onReply(request);
  else if (request.t === "transform") transform(request);
  else if (request.t === "bundle") bundle(request);
}

/** Answers requests from stdin until the harness closes it. */
async function serve(): Promise<void> {
  out = Deno.stdout.writable.getWriter();
  esbuild = createRequire(import.meta.url)(
    Deno.args[0] ?? "/opt/esbuild/lib/main.js",
  ) as typeof Esbuild;
  let buffer = "";
  for await (
    const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())
  ) {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf("\n")) !== -1) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.trim() !== "") dispatch(line);
    }
  }
  // stdin closed: the harness stopped the bundler.
  await esbuild.stop();
  Deno.exit(0);
}

if (import.meta.main) await serve();
