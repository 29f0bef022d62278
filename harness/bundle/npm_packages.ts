/**
 * npm packages for sandboxed programs, resolved on the harness side. A
 * program may import `npm:name@range` (or a bare `name`) when the policy's
 * `npm.allow` lists the name; the harness installs the package into a cache
 * and the (sandboxed) bundler bundles it into the program. The sandbox never
 * fetches code.
 *
 * The policy's range is a ceiling, not a default: a program's own range must
 * lie inside it (`ms@^2.1` under `ms@^2`), or the import is refused naming
 * both. The cache holds one directory per installed version
 * (`ms@2.1.3`), and a range any cached version satisfies installs nothing:
 * however many ranges a program writes, the cache grows by at most one
 * directory per published version inside the policy's range.
 *
 * Installs run `deno install` in a sandbox of their own
 * (`_npm_installer.ts`). Lifecycle scripts never run (Deno runs none
 * without `--allow-scripts`): installing a package must not execute its
 * code on the trusted side.
 *
 * @module
 */

import semver from "semver";
import { MAX_INSTALLS_PER_BUNDLE } from "./_install_limit.ts";
import { PackageRefusal } from "./_process.ts";
import { installInSandbox } from "./_npm_installer.ts";

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
  /** Package names a program may import; `name@range` caps the version. */
  allow: readonly string[];
  /** Cache directory; default `/var/tmp/airlock-npm-<uid>`. */
  cacheDir?: string;
}

/** A package could not be used; the message names it. */
export class NpmPackageError extends Error {
  /**
   * Builds the error.
   *
   * @param message What failed and how to fix it.
   */
  constructor(message: string) {
    super(message);
    this.name = "NpmPackageError";
  }
}

/** Options for {@linkcode NpmPackages.resolve}. */
export interface ResolveOptions {
  /**
   * New installs this bundle may still cause (decremented); none left is a
   * refusal. Cached versions cost nothing.
   */
  installs?: { left: number };
}

// New installs one bundle may cause (see `ResolveOptions.installs`).
export { MAX_INSTALLS_PER_BUNDLE };

/** Installs that run at once per harness (each a `deno install`). */
const INSTALL_SLOTS = 2;
let installsRunning = 0;
const installQueue: (() => void)[] = [];

/** Runs `install` when fewer than {@linkcode INSTALL_SLOTS} others run. */
async function withInstallSlot<T>(install: () => Promise<T>): Promise<T> {
  while (installsRunning >= INSTALL_SLOTS) {
    await new Promise<void>((resolve) => installQueue.push(resolve));
  }
  installsRunning++;
  try {
    return await install();
  } finally {
    installsRunning--;
    installQueue.shift()?.();
  }
}

/** The marker a complete install carries (written last, before the move). */
const INSTALLED = ".airlock-installed";

/**
 * Installs allowed packages into a cache and tells the bundler where they
 * are. One instance can serve many bundles; resolutions of the same package
 * and range are shared (and made once, also when requested concurrently).
 *
 * @example Usage
 * ```ts ignore
 * const npm = new NpmPackages({ allow: ["is-number@^7"] });
 * await npm.ready();
 * console.log(await npm.resolve("is-number", "7.0.0")); // "is-number@7.0.0"
 * ```
 */
export class NpmPackages {
  /** Allowed names, with the policy's range (canonical and as written). */
  #allow = new Map<string, { range: string; written: string } | null>();
  #cacheDir: string;
  #resolving = new Map<string, Promise<string>>();
  #ready: Promise<void> | null = null;

  /**
   * Reads the allowlist (nothing is installed yet).
   *
   * @param options The allowlist and cache location.
   * @throws {NpmPackageError} For an entry that is not `name` or
   *   `name@range` with a semver range.
   */
  constructor(options: NpmOptions) {
    for (const entry of options.allow) {
      const parsed = parseNpmSpecifier(entry);
      if (!parsed || parsed.subpath) {
        throw new NpmPackageError(
          `Cannot allow npm package '${entry}': write 'name' or 'name@range'`,
        );
      }
      if (parsed.range !== null && validRange(parsed.range) === null) {
        throw new NpmPackageError(
          `Cannot allow npm package '${entry}': '${parsed.range}' is not a semver range (dist-tags are not supported); write e.g. '${parsed.name}@^1.2'`,
        );
      }
      this.#allow.set(
        parsed.name,
        parsed.range === null
          ? null
          : { range: validRange(parsed.range)!, written: parsed.range },
      );
    }
    this.#cacheDir = options.cacheDir ?? defaultCacheDir();
  }

  /** The cache directory (exists once `ready()` resolved). */
  get cacheDir(): string {
    return this.#cacheDir;
  }

  /**
   * The allowlist as `name` or `name@range` (canonical ranges), sorted: two
   * instances with equal lists allow exactly the same imports.
   */
  get allowed(): string[] {
    return [...this.#allow].map(([name, ceiling]) =>
      ceiling === null ? name : `${name}@${ceiling.range}`
    ).sort();
  }

  /** Whether `name` is on the allowlist. */
  allows(name: string): boolean {
    return this.#allow.has(name);
  }

  /** Creates the cache directory if needed. */
  ready(): Promise<void> {
    // Readable by all: the bundler reads it as a uid of its own, and what
    // it holds is public npm code. Writable by the harness alone.
    this.#ready ??= Deno.mkdir(this.#cacheDir, {
      recursive: true,
      mode: 0o755,
    });
    this.#ready.catch(() => (this.#ready = null));
    return this.#ready;
  }

  /**
   * Decides whether a program may import `name@range`, and finds (or
   * installs) the highest version that satisfies both the program's range
   * and the policy's.
   *
   * @param name The package.
   * @param range The program's range, or null for the policy's.
   * @param options The bundle's install budget.
   * @returns The install's directory name inside the cache (`ms@2.1.3`).
   * @throws {PackageRefusal} When the policy does not allow it.
   * @throws {NpmPackageError} When it cannot be installed.
   */
  resolve(
    name: string,
    range: string | null,
    options: ResolveOptions = {},
  ): Promise<string> {
    let wanted: string;
    try {
      wanted = this.#ceiling(name, range);
    } catch (error) {
      return Promise.reject(error);
    }
    const key = `${name}@${wanted}`;
    let resolving = this.#resolving.get(key);
    if (!resolving) {
      resolving = this.#resolve(name, wanted, options.installs);
      this.#resolving.set(key, resolving);
      // A failure is retried next time; a success is re-checked against the
      // cache then (cheap), so a removed cache directory is reinstalled.
      resolving.finally(() => this.#resolving.delete(key)).catch(() => {});
    }
    return resolving;
  }

  /** The range to install: the program's, inside the policy's. */
  #ceiling(name: string, range: string | null): string {
    if (!this.#allow.has(name)) {
      throw new PackageRefusal(
        `Cannot import npm package '${name}': '${name}' is not in the policy's npm allowlist (add it to npm.allow)`,
      );
    }
    const policy = this.#allow.get(name) ?? null;
    if (range === null) return policy?.range ?? "*";
    const asked = validRange(range);
    if (asked === null) {
      throw new PackageRefusal(
        `Cannot import npm package '${name}@${range}': '${range}' is not a semver range (dist-tags are not supported)`,
      );
    }
    // The program picks a version only inside the policy's range: an old
    // release (with a path or a bug the policy's author ruled out) is not
    // the program's to choose.
    if (policy !== null && !semver.subset(asked, policy.range)) {
      throw new PackageRefusal(
        `Cannot import npm package '${name}@${range}': the policy allows only '${name}@${policy.written}' (npm.allow); import a version in that range or change the policy`,
      );
    }
    return asked;
  }

  async #resolve(
    name: string,
    range: string,
    budget: { left: number } | undefined,
  ): Promise<string> {
    await this.ready();
    const cached = await this.#cachedVersions(name);
    const best = semver.maxSatisfying(cached, range) as string | null;
    if (best !== null) return dirName(name, best);
    // One program must not make the harness run installs without end
    // (a thousand versions of an allowed package, each a new install).
    if (budget) {
      if (budget.left <= 0) {
        throw new PackageRefusal(
          `Cannot import npm package '${name}@${range}': the program needs more than ${MAX_INSTALLS_PER_BUNDLE} new package installs in one bundle`,
        );
      }
      budget.left--;
    }
    return await withInstallSlot(() => this.#install(name, range));
  }

  async #cachedVersions(name: string): Promise<string[]> {
    const prefix = `${safeName(name)}@`;
    const versions: string[] = [];
    for await (const entry of Deno.readDir(this.#cacheDir)) {
      if (!entry.isDirectory || !entry.name.startsWith(prefix)) continue;
      const version = entry.name.slice(prefix.length);
      if (
        isVersion(version) &&
        await exists(`${this.#cacheDir}/${entry.name}/${INSTALLED}`)
      ) {
        versions.push(version);
      }
    }
    return versions;
  }

  async #install(name: string, range: string): Promise<string> {
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
      const outcome = await installInSandbox(staging);
      const version = outcome.success
        ? await installedVersion(staging, `${staging}/node_modules/${name}`)
        : null;
      if (version === null) {
        throw new NpmPackageError(
          `Cannot install npm package '${name}@${range}': ${
            outcome.why || "the installed package has no valid version"
          }`,
        );
      }
      if (!semver.satisfies(version, range)) {
        throw new NpmPackageError(
          `Cannot install npm package '${name}@${range}': the registry gave version ${version}`,
        );
      }
      // The installer's own cache (tarballs, metadata) is not the package.
      await Deno.remove(`${staging}/.deno-dir`, { recursive: true })
        .catch(() => {});
      await Deno.writeTextFile(`${staging}/${INSTALLED}`, `${name}@${version}`);
      const dir = dirName(name, version);
      if (await exists(`${this.#cacheDir}/${dir}/${INSTALLED}`)) return dir;
      try {
        await Deno.rename(staging, `${this.#cacheDir}/${dir}`);
      } catch {
        // Another harness installed it meanwhile: use theirs.
        if (!(await exists(`${this.#cacheDir}/${dir}/${INSTALLED}`))) {
          throw new NpmPackageError(
            `Cannot place npm package '${name}@${version}' in the cache '${this.#cacheDir}'`,
          );
        }
      }
      return dir;
    } finally {
      await Deno.remove(staging, { recursive: true }).catch(() => {});
    }
  }
}

/** semver's canonical form of a range, or null when it is none. */
function validRange(range: string): string | null {
  if (range.length > 256) return null;
  return (semver.validRange(range) as string | null) ?? null;
}

/** An exact version that is safe as a path segment. */
function isVersion(text: string): boolean {
  return /^[0-9A-Za-z.+-]{1,128}$/.test(text) && semver.valid(text) === text;
}

/** The version in an installed package's package.json, if valid. */
async function installedVersion(
  staging: string,
  dir: string,
): Promise<string | null> {
  try {
    // The installer wrote this tree: a link out of it (to a host file, a
    // FIFO) must not make the harness read anything else.
    const real = await Deno.realPath(`${dir}/package.json`);
    const root = await Deno.realPath(staging);
    if (!real.startsWith(`${root}/`) || !(await Deno.lstat(real)).isFile) {
      return null;
    }
    const text = await Deno.readTextFile(real);
    if (text.length > 4 * 1024 * 1024) return null;
    const version = (JSON.parse(text) as { version?: unknown }).version;
    return typeof version === "string" && isVersion(version) ? version : null;
  } catch {
    return null;
  }
}

function dirName(name: string, version: string): string {
  return `${safeName(name)}@${version}`;
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
