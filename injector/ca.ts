/**
 * The injector's ephemeral certificate authority: a CA that lives for one
 * harness process and issues TLS server certificates for the hosts a
 * sandboxed program connects to, so the injector can terminate its TLS and
 * add credential headers.
 *
 * The sandbox is told to trust ONLY this CA (see the TLS section of the
 * platform notes). Whoever holds the CA's signing key can impersonate any
 * host to the sandbox, so the key is a WebCrypto key generated
 * non-extractable: it can sign inside this process and nothing can export it,
 * not even as PEM. It dies with the process; nothing is written to disk.
 *
 * All keys are ECDSA P-256 and all signatures ECDSA with SHA-256: fast to
 * make (a CA in tens of milliseconds, a leaf in a few) and accepted by
 * rustls (Deno's `fetch`), OpenSSL (Node's `node:https`) and every browser.
 *
 * @example Usage
 * ```ts
 * import { CertificateAuthority } from "./ca.ts";
 *
 * const ca = await CertificateAuthority.create();
 * // Give this to the sandbox as its only trusted root:
 * console.log(ca.certificatePem.startsWith("-----BEGIN CERTIFICATE-----"));
 * // Serve this to the sandbox when it connects to api.github.com:
 * const { certPem, keyPem } = await ca.leafFor("api.github.com");
 * console.log(certPem.length > 0 && keyPem.length > 0);
 * ```
 *
 * @module
 */

import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { type HostName, parseHost, quote } from "./_leaf_host.ts";
import {
  type CachedLeaf,
  cacheStore,
  LeafCache,
  type LeafCredentials,
  type LeafStore,
} from "./leaf_cache.ts";

export { LeafCache, type LeafCredentials };

x509.cryptoProvider.set(crypto);

/**
 * Options for {@linkcode CertificateAuthority.create}.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   CertificateAuthority,
 *   type CertificateAuthorityOptions,
 * } from "./ca.ts";
 *
 * const options: CertificateAuthorityOptions = {
 *   commonName: "airlock example CA",
 *   validityDays: 1,
 *   leafValidityDays: 0.5,
 * };
 * const ca = await CertificateAuthority.create(options);
 * assert.match(ca.certificatePem, /BEGIN CERTIFICATE/);
 * ```
 */
export interface CertificateAuthorityOptions {
  /**
   * The start of the CA's common name; a short random id is appended so two
   * CAs are told apart in logs and certificate viewers.
   *
   * @default {"airlock ephemeral CA"}
   */
  commonName?: string;
  /**
   * How long the CA is valid, in days (fractions allowed).
   *
   * @default {30}
   */
  validityDays?: number;
  /**
   * How long each leaf certificate is valid, in days (fractions allowed);
   * never beyond the CA's own expiry.
   *
   * @default {7}
   */
  leafValidityDays?: number;
}

/**
 * Options for {@linkcode CertificateAuthority.leafFor}.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { CertificateAuthority, LeafCache, type LeafOptions } from "./ca.ts";
 *
 * const ca = await CertificateAuthority.create();
 * const options: LeafOptions = { cache: new LeafCache() };
 * await ca.leafFor("api.example.test", options);
 * assert.equal(options.cache?.size, 1);
 * ```
 */
export interface LeafOptions {
  /** Where to keep the leaf; default: the CA's own cache. */
  cache?: LeafCache;
}

const DAY_MS = 24 * 60 * 60 * 1000;
// Certificates start an hour in the past: a client whose clock runs behind
// the harness's would otherwise reject a certificate as "not yet valid".
const CLOCK_SKEW_MS = 60 * 60 * 1000;
const MAX_VALIDITY_DAYS = 3650;
const MAX_COMMON_NAME_LENGTH = 48;
// RFC 5280's upper bound for a commonName (ub-common-name).
const MAX_CN_LENGTH = 64;
// A sandboxed program allowed to reach "*.example.com" could otherwise make
// the harness mint and keep one certificate per random subdomain, growing
// its memory without bound. Least recently used entries go first.
const MAX_CACHED_LEAVES = 1024;
const ALGORITHM: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING_ALGORITHM: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

/**
 * An ephemeral certificate authority that issues TLS server certificates on
 * demand. Create one with {@linkcode CertificateAuthority.create}.
 *
 * One leaf key pair is made per CA and reused for every leaf. Per-host keys
 * would buy nothing here: every leaf is issued to the same party (this
 * process), the sandbox only ever sees public certificates, and anyone able
 * to read one leaf key from harness memory can equally read them all and ask
 * the CA to sign anything. Reuse saves a key generation per host and keeps
 * the one exportable key in one place.
 *
 * @example Usage
 * ```ts
 * import { CertificateAuthority } from "./ca.ts";
 *
 * const ca = await CertificateAuthority.create({ validityDays: 1 });
 * console.log(ca.fingerprintSha256.length); // 64
 * ```
 */
export class CertificateAuthority {
  /**
   * The CA certificate (public; give it to the sandbox as its trust store),
   * PEM.
   *
   * @example Usage
   * ```ts
   * import { CertificateAuthority } from "./ca.ts";
   *
   * const ca = await CertificateAuthority.create();
   * await Deno.writeTextFile(await Deno.makeTempFile(), ca.certificatePem);
   * ```
   */
  readonly certificatePem: string;
  /**
   * SHA-256 of the CA certificate's DER encoding, lowercase hex without
   * separators: for logs and audit records.
   *
   * @example Usage
   * ```ts
   * import { CertificateAuthority } from "./ca.ts";
   *
   * const ca = await CertificateAuthority.create();
   * console.log(`CA ${ca.fingerprintSha256}`);
   * ```
   */
  readonly fingerprintSha256: string;

  #caKey: CryptoKey;
  #caName: x509.Name;
  #caKeyId: string;
  #caNotAfterMs: number;
  #leafKeys: CryptoKeyPair;
  #leafKeyPem: string;
  #leafKeyId: x509.SubjectKeyIdentifierExtension;
  #leafValidityMs: number;
  #cache: LeafStore = {
    entries: new Map(),
    maxEntries: MAX_CACHED_LEAVES,
    ca: null,
  };

  private constructor(init: {
    certificate: x509.X509Certificate;
    fingerprintSha256: string;
    caKey: CryptoKey;
    caKeyId: string;
    caNotAfterMs: number;
    leafKeys: CryptoKeyPair;
    leafKeyPem: string;
    leafKeyId: x509.SubjectKeyIdentifierExtension;
    leafValidityMs: number;
  }) {
    this.certificatePem = init.certificate.toString("pem");
    this.fingerprintSha256 = init.fingerprintSha256;
    this.#caKey = init.caKey;
    this.#caName = init.certificate.subjectName;
    this.#caKeyId = init.caKeyId;
    this.#caNotAfterMs = init.caNotAfterMs;
    this.#leafKeys = init.leafKeys;
    this.#leafKeyPem = init.leafKeyPem;
    this.#leafKeyId = init.leafKeyId;
    this.#leafValidityMs = init.leafValidityMs;
  }

  /**
   * Makes a new CA: fresh keys, a self-signed certificate.
   *
   * @param options Name and validity periods.
   * @returns The certificate authority.
   * @throws {TypeError} If `commonName` is empty, longer than 48 characters
   *   or contains control characters.
   * @throws {RangeError} If a validity is not a positive number of days up to
   *   3650.
   *
   * @example Usage
   * ```ts
   * import { CertificateAuthority } from "./ca.ts";
   *
   * const ca = await CertificateAuthority.create({
   *   commonName: "airlock test CA",
   *   validityDays: 1,
   *   leafValidityDays: 0.5,
   * });
   * console.log(ca.certificatePem.includes("CERTIFICATE"));
   * ```
   */
  static async create(
    options: CertificateAuthorityOptions = {},
  ): Promise<CertificateAuthority> {
    const commonName = options.commonName ?? "airlock ephemeral CA";
    if (
      commonName.length === 0 || commonName.length > MAX_COMMON_NAME_LENGTH ||
      // deno-lint-ignore no-control-regex
      /[\u0000-\u001f\u007f-\u009f]/.test(commonName)
    ) {
      throw new TypeError(
        `Cannot create a certificate authority as 'commonName' must be 1 to ${MAX_COMMON_NAME_LENGTH} printable characters: current value is ${
          quote(commonName)
        }`,
      );
    }
    const validityMs = days("validityDays", options.validityDays ?? 30);
    const leafValidityMs = days(
      "leafValidityDays",
      options.leafValidityDays ?? 7,
    );

    const [caKeys, leafKeys] = await Promise.all([
      // extractable: false. The CA key signs certificates the sandbox trusts
      // for ANY host; as a non-extractable CryptoKey it cannot be exported,
      // so no bug that logs, serializes or leaks an object can leak it.
      crypto.subtle.generateKey(ALGORITHM, false, ["sign", "verify"]),
      // Extractable only because node:tls takes the key as PEM; it stays in
      // this process's memory (see the class doc for why one key is shared).
      crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]),
    ]);
    const leafKeyPem = x509.PemConverter.encode(
      await crypto.subtle.exportKey("pkcs8", leafKeys.privateKey),
      "PRIVATE KEY",
    );

    const now = wholeSeconds(Date.now());
    const notAfterMs = now + validityMs;
    const ski = await x509.SubjectKeyIdentifierExtension.create(
      caKeys.publicKey,
    );
    const certificate = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      // A JSON name, never a "CN=..." string: a comma or plus sign in the
      // text cannot smuggle extra attributes into the name.
      name: [{ CN: [`${commonName} ${randomHex(4)}`] }],
      notBefore: new Date(now - CLOCK_SKEW_MS),
      notAfter: new Date(notAfterMs),
      keys: caKeys,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        // pathLen 0: even a certificate this CA wrongly issued with CA:true
        // could not sign further certificates that clients would accept.
        new x509.BasicConstraintsExtension(true, 0, true),
        // Signing certificates (and CRLs) only: the CA key cannot double as
        // a TLS server key.
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        ski,
      ],
    });
    const digest = await crypto.subtle.digest("SHA-256", certificate.rawData);
    return new CertificateAuthority({
      certificate,
      fingerprintSha256: toHex(new Uint8Array(digest)),
      caKey: caKeys.privateKey,
      caKeyId: ski.keyId,
      caNotAfterMs: notAfterMs,
      leafKeys,
      leafKeyPem,
      // One leaf key for every leaf: its identifier is computed once, not
      // per issuance (~0.7 ms of the ~5 ms a leaf costs).
      leafKeyId: await x509.SubjectKeyIdentifierExtension.create(
        leafKeys.publicKey,
      ),
      leafValidityMs,
    });
  }

  /**
   * TLS server credentials for `host`: issued on first use and cached.
   * Concurrent calls for one host share one issuance; a certificate within a
   * day (or half its validity, if shorter) of expiry is re-issued. DNS names
   * are compared case-insensitively and IP addresses by value, so `"::1"`
   * and `"0:0::1"` share a certificate.
   *
   * @param host A DNS name (`"api.github.com"`), or an IPv4 or IPv6 literal
   *   without brackets (`"127.0.0.1"`, `"::1"`).
   * @returns The leaf certificate and its private key, PEM.
   * @throws {TypeError} If `host` is not a plain DNS name or IP address
   *   (empty, wildcards, slashes, spaces, control characters, brackets...).
   * @throws {Error} If the CA itself has expired.
   *
   * @example Usage
   * ```ts
   * import { CertificateAuthority } from "./ca.ts";
   * import tls from "node:tls";
   *
   * const ca = await CertificateAuthority.create();
   * const { certPem, keyPem } = await ca.leafFor("api.example.test");
   * const context = tls.createSecureContext({ cert: certPem, key: keyPem });
   * console.log(context !== undefined);
   * ```
   */
  async leafFor(
    host: string,
    options: LeafOptions = {},
  ): Promise<LeafCredentials> {
    const name = parseHost(host);
    const now = Date.now();
    if (now >= this.#caNotAfterMs) {
      throw new Error(
        `Cannot issue a certificate for ${quote(host)} as the CA expired at ${
          new Date(this.#caNotAfterMs).toISOString()
        }: create a new CertificateAuthority`,
      );
    }
    const store = options.cache === undefined
      ? this.#cache
      : cacheStore(options.cache, this);
    const cache = store.entries;
    const key = `${name.type}:${name.value}`;
    const pending = cache.get(key);
    if (pending !== undefined) {
      const cached = await pending;
      const renewAtMs = cached.notAfterMs -
        Math.min(DAY_MS, this.#leafValidityMs / 2);
      // A leaf that already ends with the CA cannot be extended: keep it
      // rather than re-issue on every call during the CA's last day.
      if (now < renewAtMs || cached.notAfterMs >= this.#caNotAfterMs) {
        // Refresh its place in the least-recently-used order.
        if (cache.get(key) === pending) {
          cache.delete(key);
          cache.set(key, pending);
        }
        return cached.credentials;
      }
      if (cache.get(key) !== pending) {
        // Another caller is already re-issuing: share its result.
        return this.leafFor(host, options);
      }
    }
    const issuing = this.#issue(name, now);
    cache.delete(key);
    cache.set(key, issuing);
    // A failed issuance must not stay cached: the next call retries.
    issuing.catch(() => {
      if (cache.get(key) === issuing) cache.delete(key);
    });
    for (const oldest of cache.keys()) {
      if (cache.size <= store.maxEntries) break;
      cache.delete(oldest);
    }
    return (await issuing).credentials;
  }

  async #issue(name: HostName, now: number): Promise<CachedLeaf> {
    const start = wholeSeconds(now);
    const notAfterMs = Math.min(
      wholeSeconds(start + this.#leafValidityMs),
      this.#caNotAfterMs,
    );
    // RFC 5280 caps a commonName at 64 characters; a longer host goes in the
    // subjectAltName only (which TLS clients match on anyway), and an empty
    // subject makes that extension critical.
    const withCn = name.value.length <= MAX_CN_LENGTH;
    const certificate = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      // A JSON name, never a "CN=..." string (no attribute injection).
      subject: withCn ? [{ CN: [name.value] }] : [],
      issuer: this.#caName,
      notBefore: new Date(start - CLOCK_SKEW_MS),
      notAfter: new Date(notAfterMs),
      publicKey: this.#leafKeys.publicKey,
      signingKey: this.#caKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        // Exactly one name: the certificate cannot be presented for any
        // other host, and carries no wildcard.
        new x509.SubjectAlternativeNameExtension([{
          type: name.type,
          value: name.type === "ip" ? name.sanValue : name.value,
        }], !withCn),
        // CA:false: a leaf key cannot be used to sign further certificates.
        new x509.BasicConstraintsExtension(false, undefined, true),
        // Signing handshakes only (ECDHE), and for TLS servers only: the
        // leaf is no good as a client certificate or for code signing.
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.AuthorityKeyIdentifierExtension(this.#caKeyId),
        this.#leafKeyId,
      ],
    });
    return {
      credentials: Object.freeze({
        certPem: certificate.toString("pem"),
        keyPem: this.#leafKeyPem,
      }),
      notAfterMs,
    };
  }
}

function days(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0 || value > MAX_VALIDITY_DAYS) {
    throw new RangeError(
      `Cannot create a certificate authority as '${name}' must be a positive number of days up to ${MAX_VALIDITY_DAYS}: current value is ${value}`,
    );
  }
  return value * DAY_MS;
}

/**
 * A 16-byte positive serial number. Unpredictable serials are what stops a
 * chosen-prefix collision attack on the signature (CA/Browser Forum rules ask
 * for at least 64 random bits; this has 126).
 */
function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  // Top bit clear (positive), next bit set (no leading zero byte).
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return toHex(bytes);
}

function randomHex(byteCount: number): string {
  return toHex(crypto.getRandomValues(new Uint8Array(byteCount)));
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Certificates store whole seconds; round down so cached expiries match. */
function wholeSeconds(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}
