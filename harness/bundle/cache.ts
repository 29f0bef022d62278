/**
 * A cache of bundled programs, so a sandbox that runs the same program again
 * (an agent retrying, a fresh sandbox per task) skips the bundler: bundling
 * an SDK such as `openai` costs a quarter of a second to a second, a hit a
 * hash and a few file checks.
 *
 * A bundle is a function of everything the bundler was given or told, and
 * nothing else: the bundler runs in a sandbox that sees only esbuild, its own
 * source and the package cache, and learns the rest by asking the harness.
 * So an entry is keyed by what it was given (the program's text, or the real
 * path of a program on disk; the bundler's fingerprint, the npm allowlist
 * and cache, the cache scope) and carries what it was told (every program
 * file it asked about on disk with its content hash, every package it asked
 * for with the install that answered). A lookup asks those questions again
 * and serves the entry only when every answer is the same: a changed file,
 * a file that appeared where the bundler found none, a newer version of a
 * package installed, a package the policy no longer allows, each misses.
 * Package installs are one directory per version that is never changed once
 * placed (`npm_packages.ts`), so the install's name stands for its files.
 *
 * Only successful bundles are kept; a refused import is refused (and
 * audited) again each time. Entries live in harness memory, never on disk,
 * bounded by bytes, the least recently used dropped first.
 *
 * **Scopes.** A hit is faster than a miss, so a cache shared by two tenants
 * would tell one whether the other had bundled a given program (a guess at
 * its text confirmed by timing). Entries are therefore partitioned by a
 * scope: the library's sandboxes share the process's scope by default (one
 * harness, one trust domain); the HTTP API gives each token its own.
 *
 * @module
 */

/** What a bundle depended on besides its key (see the module doc). */
export interface BundleDeps {
  /**
   * Program files on the harness's disk the bundler asked about, by
   * normalised path: the SHA-256 of the content read, `true` for a file
   * found but not read, `false` for one not found.
   */
  files: Map<string, string | boolean>;
  /** Packages asked for: `name` and `range` (null: the policy's) to install. */
  packages: Map<string, { name: string; range: string | null; dir: string }>;
}

/** Answers the bundler's questions again, for a lookup to compare. */
export interface DepsChecker {
  /** Whether the program file is there (and readable, contained). */
  has(path: string): Promise<boolean>;
  /** The program file's content, or undefined. */
  read(path: string): Promise<string | undefined>;
  /** The install that serves `name@range` now; throws when none may. */
  package(name: string, range: string | null): Promise<string>;
}

/** Options for {@linkcode BundleCache}. */
export interface BundleCacheOptions {
  /** Most bytes of bundles kept (estimated at two a character); 64 MiB. */
  maxBytes?: number;
}

/** Counters, for tests and benchmarks. */
export interface BundleCacheStats {
  /** Lookups served from the cache. */
  hits: number;
  /** Lookups that found nothing, or an entry whose answers changed. */
  misses: number;
  /** Entries kept. */
  entries: number;
  /** Estimated bytes kept. */
  bytes: number;
}

interface Entry {
  js: string;
  deps: BundleDeps;
  bytes: number;
}

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

/**
 * Bundled programs by key, checked against their dependencies on lookup.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { BundleCache, emptyDeps } from "./cache.ts";
 * const cache = new BundleCache();
 * const key = await BundleCache.key({ source: { code: "console.log(1)" } });
 * cache.set(key, "console.log(1);\n", emptyDeps());
 * const checker = {
 *   has: () => Promise.resolve(false),
 *   read: () => Promise.resolve(undefined),
 *   package: () => Promise.reject(new Error("no packages")),
 * };
 * assert.equal(await cache.get(key, checker), "console.log(1);\n");
 * ```
 */
export class BundleCache {
  #entries = new Map<string, Entry>();
  #bytes = 0;
  #maxBytes: number;
  #hits = 0;
  #misses = 0;

  /**
   * Makes an empty cache.
   *
   * @param options Its size bound.
   */
  constructor(options: BundleCacheOptions = {}) {
    const max = options.maxBytes ?? DEFAULT_MAX_BYTES;
    if (!Number.isSafeInteger(max) || max < 0) {
      throw new RangeError(
        `Cannot make a bundle cache as 'maxBytes' must be a whole number of bytes: current value is ${max}`,
      );
    }
    this.#maxBytes = max;
  }

  /**
   * The key of everything a bundle is given: a SHA-256 over the canonical
   * JSON of `parts` (object keys sorted, so equal parts give equal keys).
   *
   * @param parts Program source, bundler fingerprint, options, scope.
   * @returns The key, as hex.
   */
  static async key(parts: Record<string, unknown>): Promise<string> {
    const bytes = new TextEncoder().encode(canonicalJson(parts));
    return hex(await crypto.subtle.digest("SHA-256", bytes));
  }

  /**
   * The bundle stored under `key`, if each of its dependencies still
   * answers as it did when it was bundled.
   *
   * @param key From {@linkcode BundleCache.key}.
   * @param checker Asks the questions again.
   * @returns The bundle, or null (a miss; a stale entry is dropped).
   */
  async get(key: string, checker: DepsChecker): Promise<string | null> {
    const entry = this.#entries.get(key);
    if (entry === undefined || !(await unchanged(entry.deps, checker))) {
      // Dropped only if it is still the entry checked (not a newer one).
      if (entry !== undefined && this.#entries.get(key) === entry) {
        this.#delete(key);
      }
      this.#misses++;
      return null;
    }
    // Most recently used last: the first entries are the ones to drop.
    if (this.#entries.delete(key)) this.#entries.set(key, entry);
    this.#hits++;
    return entry.js;
  }

  /**
   * Keeps a bundle. One larger than a quarter of the cache is not kept
   * (it would push out many programs for one).
   *
   * @param key From {@linkcode BundleCache.key}.
   * @param js The bundle.
   * @param deps What the bundler asked while making it.
   */
  set(key: string, js: string, deps: BundleDeps): void {
    const bytes = 2 * js.length + depsBytes(deps);
    this.#delete(key);
    if (bytes > this.#maxBytes / 4) return;
    this.#entries.set(key, { js, deps, bytes });
    this.#bytes += bytes;
    for (const oldest of this.#entries.keys()) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#delete(oldest);
    }
  }

  /** Drops every entry (counters stay). */
  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  /** Hits, misses and what is kept. */
  get stats(): BundleCacheStats {
    return {
      hits: this.#hits,
      misses: this.#misses,
      entries: this.#entries.size,
      bytes: this.#bytes,
    };
  }

  #delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }
}

/**
 * No dependencies yet (a bundle records them as the bundler asks).
 *
 * @returns Empty maps.
 *
 * @example Usage
 * ```ts
 * import { emptyDeps } from "./cache.ts";
 * console.log(emptyDeps().files.size); // 0
 * ```
 */
export function emptyDeps(): BundleDeps {
  return { files: new Map(), packages: new Map() };
}

/**
 * The SHA-256 of a program file's text, as `BundleDeps.files` holds it.
 *
 * @param text The file's content.
 * @returns Hex digest.
 *
 * @example Usage
 * ```ts
 * import { contentHash } from "./cache.ts";
 * console.log((await contentHash("x")).length); // 64
 * ```
 */
export async function contentHash(text: string): Promise<string> {
  const bytes = new TextEncoder().encode(text);
  return hex(await crypto.subtle.digest("SHA-256", bytes));
}

/** Whether every recorded answer is still given. */
async function unchanged(
  deps: BundleDeps,
  checker: DepsChecker,
): Promise<boolean> {
  try {
    for (const [path, was] of deps.files) {
      if (typeof was === "boolean") {
        if ((await checker.has(path)) !== was) return false;
        continue;
      }
      const text = await checker.read(path);
      if (text === undefined || (await contentHash(text)) !== was) {
        return false;
      }
    }
    for (const { name, range, dir } of deps.packages.values()) {
      if ((await checker.package(name, range)) !== dir) return false;
    }
    return true;
  } catch {
    // A package the policy refuses now, an install that would be needed,
    // an unreadable file: the bundler decides (and says why).
    return false;
  }
}

function depsBytes(deps: BundleDeps): number {
  let n = 0;
  for (const path of deps.files.keys()) n += 2 * path.length + 64;
  for (const [key, p] of deps.packages) n += 2 * (key.length + p.dir.length);
  return n;
}

/** JSON with object keys in sorted order, at every depth. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    return Object.fromEntries(
      Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]),
    );
  });
}

function hex(buffer: ArrayBuffer): string {
  return Array.from(
    new Uint8Array(buffer),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}
