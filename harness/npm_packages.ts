/**
 * npm packages for sandboxed programs, resolved on the harness side. A
 * program may import `npm:name@range` (or a bare `name`) when the policy's
 * `npm.allow` lists the name; the harness installs the package into a cache
 * and esbuild bundles it into the program. The sandbox never fetches code.
 *
 * Installs run `deno install` in a per-package cache directory. Lifecycle
 * scripts never run (Deno runs none without `--allow-scripts`): installing a
 * package must not execute its code on the trusted side.
 *
 * @module
 */

/** A parsed npm import specifier. */
export interface NpmSpecifier {
  /** Package name, with scope (`@scope/name`). */
  name: string;
  /** Version range from the import, or null. */
  range: string | null;
  /** Path inside the package (`/fp` of `lodash/fp`), or "". */
  subpath: string;
}

const NAME = /^(?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/;

/**
 * Parses `npm:name@range/sub` or a bare `name/sub`.
 *
 * @param specifier The import specifier.
 * @returns The parts, or null if it is not a package specifier.
 *
 * @example Usage
 * ```ts
 * import { parseNpmSpecifier } from "./npm_packages.ts";
 * console.log(parseNpmSpecifier("npm:@scope/pkg@^1.2/sub"));
 * ```
 */
export function parseNpmSpecifier(specifier: string): NpmSpecifier | null {
  const text = specifier.startsWith("npm:")
    ? specifier.slice(4).replace(/^\/+/, "")
    : specifier;
  const scoped = text.startsWith("@");
  const parts = text.split("/");
  const head = scoped ? `${parts[0]}/${parts[1] ?? ""}` : parts[0] ?? "";
  const rest = parts.slice(scoped ? 2 : 1).join("/");
  const at = head.indexOf("@", scoped ? 1 : 0);
  const name = at === -1 ? head : head.slice(0, at);
  const range = at === -1 ? null : head.slice(at + 1) || null;
  if (!NAME.test(name) || name.length > 214) return null;
  if (range !== null && !/^[\w.^~<>=|*+\- ]+$/.test(range)) return null;
  return { name, range, subpath: rest ? `/${rest}` : "" };
}

/** Where installs go, and what may be installed. */
export interface NpmOptions {
  /** Package names a program may import; `name@range` sets the default range. */
  allow: readonly string[];
  /** Cache directory; default `/var/tmp/airlock-npm-<uid>`. */
  cacheDir?: string;
}

/** A package could not be used; the message names it. */
export class NpmPackageError extends Error {
  /** @param message What failed and how to fix it. */
  constructor(message: string) {
    super(message);
    this.name = "NpmPackageError";
  }
}

/**
 * Installs allowed packages into a cache and tells the bundler where they
 * are. One instance can serve many bundles; installs of the same package and
 * range are shared (and made once, also when requested concurrently).
 *
 * @example Usage
 * ```ts ignore
 * const npm = new NpmPackages({ allow: ["is-number"] });
 * const dir = await npm.install(parseNpmSpecifier("npm:is-number@7")!);
 * console.log(dir); // a directory whose node_modules holds is-number
 * ```
 */
export class NpmPackages {
  #allow = new Map<string, string | null>();
  #cacheDir: string;
  #installs = new Map<string, Promise<string>>();

  /** @param options The allowlist and cache location. */
  constructor(options: NpmOptions) {
    for (const entry of options.allow) {
      const parsed = parseNpmSpecifier(entry);
      if (!parsed || parsed.subpath) {
        throw new NpmPackageError(
          `Cannot allow npm package '${entry}': write 'name' or 'name@range'`,
        );
      }
      this.#allow.set(parsed.name, parsed.range);
    }
    this.#cacheDir = options.cacheDir ?? defaultCacheDir();
  }

  /** Whether `name` is on the allowlist. */
  allows(name: string): boolean {
    return this.#allow.has(name);
  }

  /**
   * Installs (or finds in the cache) the package of `spec`.
   *
   * @param spec A parsed specifier of an allowed package.
   * @returns A directory to resolve the import from (its node_modules has
   *   the package).
   * @throws {NpmPackageError} If the package is not allowed or cannot be
   *   installed (offline without a cached copy, no such version...).
   */
  install(spec: NpmSpecifier): Promise<string> {
    if (!this.#allow.has(spec.name)) {
      return Promise.reject(
        new NpmPackageError(
          `Cannot import npm package '${spec.name}': it is not in the policy's npm allowlist (npm.allow)`,
        ),
      );
    }
    const range = spec.range ?? this.#allow.get(spec.name) ?? "*";
    const key = `${spec.name}@${range}`;
    let install = this.#installs.get(key);
    if (!install) {
      install = this.#install(spec.name, range);
      this.#installs.set(key, install);
      install.catch(() => this.#installs.delete(key));
    }
    return install;
  }

  async #install(name: string, range: string): Promise<string> {
    const dir = `${this.#cacheDir}/${safeName(name)}@${await digest(range)}`;
    if (await exists(`${dir}/.airlock-installed`)) return dir;
    await Deno.mkdir(this.#cacheDir, { recursive: true, mode: 0o700 });
    // Install into a fresh directory, then move it in place: a concurrent
    // harness or a crash never leaves a half-installed package behind.
    const staging = await Deno.makeTempDir({
      dir: this.#cacheDir,
      prefix: ".staging-",
    });
    try {
      await Deno.writeTextFile(
        `${staging}/package.json`,
        JSON.stringify({ private: true, dependencies: { [name]: range } }),
      );
      const out = await new Deno.Command(Deno.execPath(), {
        // No --allow-scripts: lifecycle scripts never run on the harness.
        args: ["install", "--quiet", "--node-modules-dir=auto"],
        cwd: staging,
        env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (
        !out.success ||
        !(await exists(`${staging}/node_modules/${name}/package.json`))
      ) {
        const why = new TextDecoder().decode(out.stderr).trim().split("\n")
          .slice(-3).join(" ");
        throw new NpmPackageError(
          `Cannot install npm package '${name}@${range}': ${
            why || "deno install failed"
          }`,
        );
      }
      await Deno.writeTextFile(
        `${staging}/.airlock-installed`,
        new Date().toISOString(),
      );
      try {
        await Deno.rename(staging, dir);
      } catch {
        // Another harness installed it meanwhile: use theirs.
        if (!(await exists(`${dir}/.airlock-installed`))) {
          throw new NpmPackageError(
            `Cannot place npm package '${name}' in the cache '${dir}'`,
          );
        }
      }
      return dir;
    } finally {
      await Deno.remove(staging, { recursive: true }).catch(() => {});
    }
  }
}

function defaultCacheDir(): string {
  let uid = 0;
  try {
    uid = Deno.uid() ?? 0;
  } catch { /* no sys permission */ }
  return `/var/tmp/airlock-npm-${uid}`;
}

function safeName(name: string): string {
  return name.replace("/", "__");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function digest(text: string): Promise<string> {
  const hash = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(text),
  );
  return Array.from(
    new Uint8Array(hash).slice(0, 8),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}
