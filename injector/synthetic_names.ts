/**
 * The names a run looked up, and the loopback address each was answered
 * with. Inside the sandbox every name resolves to an address of its own in
 * {@linkcode SYNTHETIC_NETWORK} (the sandbox's own loopback: only the
 * in-sandbox bridge listens there), so a connection's destination address
 * tells the injector which name the program asked for. The table lives in
 * the harness: the injector maps an address back to a name with it and
 * decides on that name, never on what the connection says later (SNI,
 * Host).
 *
 * @module
 */

/** The range synthetic addresses are taken from (inside 127.0.0.0/8). */
export const SYNTHETIC_NETWORK = "127.64.0.0/10";

/** Default for {@linkcode SyntheticNamesOptions.limit}. */
export const DEFAULT_NAME_LIMIT = 4096;

const BASE = (127 << 24 | 64 << 16) >>> 0;
const SIZE = 1 << 22;

/** Options for {@linkcode SyntheticNames}. */
export interface SyntheticNamesOptions {
  /**
   * Most distinct names one table hands out (a program looking up names
   * without end must not grow harness memory without end).
   */
  limit?: number;
}

/**
 * One run's name table: a name gets the next free address the first time
 * it is looked up and keeps it for the run.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { SyntheticNames } from "./synthetic_names.ts";
 *
 * const names = new SyntheticNames();
 * const address = names.addressFor("api.example.com");
 * assert.equal(address, "127.64.0.1");
 * assert.equal(names.addressFor("api.example.com"), address);
 * assert.equal(names.nameAt("127.64.0.1"), "api.example.com");
 * assert.equal(names.nameAt("127.64.0.2"), null); // never handed out
 * ```
 */
export class SyntheticNames {
  #byName = new Map<string, string>();
  #byAddress = new Map<string, string>();
  #next = 1;
  #limit: number;

  /** @param options The table's bound. */
  constructor(options: SyntheticNamesOptions = {}) {
    const limit = options.limit ?? DEFAULT_NAME_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > SIZE / 2) {
      throw new RangeError(
        `Cannot make a name table as 'limit' must be an integer in 1..${
          SIZE / 2
        }: current value is ${limit}`,
      );
    }
    this.#limit = limit;
  }

  /** How many names the table holds. */
  get size(): number {
    return this.#byName.size;
  }

  /**
   * The address a (canonical) name is answered with, given out on first
   * use.
   *
   * @param name A canonical host name.
   * @returns The address, or null when the table is full.
   */
  addressFor(name: string): string | null {
    const known = this.#byName.get(name);
    if (known !== undefined) return known;
    if (this.#byName.size >= this.#limit) return null;
    let address: string;
    do {
      address = formatV4((BASE + this.#next++) >>> 0);
      // x.x.x.0 and x.x.x.255 look like network and broadcast addresses
      // to some clients: never handed out.
    } while (/\.(0|255)$/.test(address));
    this.#byName.set(name, address);
    this.#byAddress.set(address, name);
    return address;
  }

  /**
   * The name an address was given to in this run.
   *
   * @param address A dotted IPv4 address.
   * @returns The name, or null when no lookup in this run returned it.
   */
  nameAt(address: string): string | null {
    return this.#byAddress.get(address) ?? null;
  }
}

/**
 * Whether an address lies in {@linkcode SYNTHETIC_NETWORK}.
 *
 * @param address Any text.
 * @returns True for a dotted IPv4 address inside the range.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isSyntheticAddress } from "./synthetic_names.ts";
 * assert.equal(isSyntheticAddress("127.64.0.9"), true);
 * assert.equal(isSyntheticAddress("127.0.0.1"), false);
 * ```
 */
export function isSyntheticAddress(address: string): boolean {
  const match = address.match(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/);
  if (!match) return false;
  const parts = match.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return false;
  const value = ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) |
    parts[3]!) >>> 0;
  return value >= BASE && value < BASE + SIZE;
}

function formatV4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255]
    .join(".");
}
