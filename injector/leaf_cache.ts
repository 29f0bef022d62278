/**
 * Leaf certificate caches: each sandbox gets its own, so no sandbox can
 * learn from the certificates it is served which hosts another one
 * contacted, or when. The store behind each cache is kept out of reach of
 * its holder (a `WeakMap`), and belongs to the first CA that uses it.
 *
 * @module
 */

/**
 * TLS server credentials for one host, in the PEM form `node:tls` takes.
 *
 * @example Usage
 * ```ts
 * import tls from "node:tls";
 * import { CertificateAuthority, type LeafCredentials } from "./ca.ts";
 *
 * const ca = await CertificateAuthority.create();
 * const leaf: LeafCredentials = await ca.leafFor("api.example.test");
 * tls.createSecureContext({ cert: leaf.certPem, key: leaf.keyPem });
 * ```
 */
export interface LeafCredentials {
  /** The leaf certificate (signed by the CA), PEM. */
  readonly certPem: string;
  /** The leaf's private key, PKCS#8 PEM. */
  readonly keyPem: string;
}

/** A leaf in a cache, with its expiry. */
export interface CachedLeaf {
  /** What node:tls is given. */
  credentials: LeafCredentials;
  /** When the certificate expires (ms since the epoch). */
  notAfterMs: number;
}

/** A cache's entries (least recently used first), bound, and owning CA. */
export interface LeafStore {
  /** Issued (or issuing) leaves by host, least recently used first. */
  entries: Map<string, Promise<CachedLeaf>>;
  /** Most entries kept. */
  maxEntries: number;
  /** The CA the cache belongs to (the first that used it). */
  ca: object | null;
}

const stores = new WeakMap<LeafCache, LeafStore>();

/**
 * A cache of leaf certificates kept apart from every other: the leaves one
 * sandbox was served, so no other sandbox can learn from its certificates
 * (their `notBefore`, their serials, a handshake that skips issuance) which
 * hosts that sandbox contacted, or when. It belongs to the first CA that
 * uses it. Dropping every reference frees it.
 *
 * @example Usage
 * ```ts
 * import { CertificateAuthority, LeafCache } from "./ca.ts";
 *
 * const ca = await CertificateAuthority.create();
 * const mine = new LeafCache();
 * const theirs = new LeafCache();
 * const a = await ca.leafFor("api.example.test", { cache: mine });
 * const b = await ca.leafFor("api.example.test", { cache: theirs });
 * console.log(a.certPem !== b.certPem); // true: issued separately
 * ```
 */
export class LeafCache {
  /**
   * Makes an empty cache.
   *
   * @param options `maxEntries`: most leaves kept (least recently used go
   *   first); default 256.
   * @throws {RangeError} If `maxEntries` is not a positive integer.
   */
  constructor(options: { maxEntries?: number } = {}) {
    const maxEntries = options.maxEntries ?? 256;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(
        `Cannot create a leaf cache as 'maxEntries' must be a positive integer: current value is ${maxEntries}`,
      );
    }
    stores.set(this, { entries: new Map(), maxEntries, ca: null });
  }

  /** How many leaves it holds (issuances in progress included). */
  get size(): number {
    return stores.get(this)!.entries.size;
  }

  /** Forgets every leaf. */
  clear(): void {
    stores.get(this)!.entries.clear();
  }
}

/**
 * The store behind `cache`, bound to `ca` on first use.
 *
 * @param cache A cache made by `new LeafCache()`.
 * @param ca The CA about to use it.
 * @returns Its entries.
 * @throws {TypeError} If `cache` is not a LeafCache, or another CA's.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { cacheStore, LeafCache } from "./leaf_cache.ts";
 * const cache = new LeafCache({ maxEntries: 4 });
 * const ca = {};
 * assert.equal(cacheStore(cache, ca).maxEntries, 4);
 * assert.throws(() => cacheStore(cache, {}), TypeError);
 * ```
 */
export function cacheStore(cache: LeafCache, ca: object): LeafStore {
  const store = stores.get(cache);
  if (store === undefined) {
    throw new TypeError("Cannot use a leaf cache that is not a LeafCache");
  }
  store.ca ??= ca;
  if (store.ca !== ca) {
    // Leaves of one CA served as another's would fail every handshake.
    throw new TypeError(
      "Cannot use a leaf cache with a second certificate authority: make one LeafCache per CA",
    );
  }
  return store;
}
