/**
 * A deterministic fuzzer for `host_pattern.ts`, shared by the unit test
 * (`host_fuzz_test.ts`) and longer runs (`deno task fuzz`).
 *
 * Properties checked for every generated input:
 * 1. `canonicalHost` and `parseHostPattern` throw nothing but `HostError`;
 * 2. a canonical host is a fixed point, lower case, ASCII, <= 253 characters;
 * 3. a parsed pattern has a canonical host, a valid port, and a wildcard
 *    suffix of at least two domain labels;
 * 4. `matchHost` returns exactly the winner an independent oracle picks, so
 *    it never matches a host no pattern allows; it refuses (with
 *    `HostError`) any host that is not canonical.
 *
 * @module
 */

import {
  canonicalHost,
  HostError,
  type HostPattern,
  matchHost,
  parseHostPattern,
} from "../../injector/host_pattern.ts";

/** What a fuzz run did and what it found. */
export interface HostFuzzResult {
  /** How many inputs were fed to the functions under test. */
  inputs: number;
  /** One line per property violation (at most 100 kept). */
  failures: string[];
}

type Entry = { pattern: HostPattern; value: number };
type Rng = () => number;

// deno-fmt-ignore
const REAL_HOSTS = [
  "api.example.com", "github.com", "raw.githubusercontent.com",
  "registry.npmjs.org", "a.b.c.d.example.co.uk", "metadata.google.internal",
  "localhost", "bücher.de", "xn--bcher-kva.de", "_dmarc.example.com",
  "169.254.169.254", "10.0.0.5", "2852039166", "0x7f.1", "[::1]", "[fe80::1]",
  "[::ffff:127.0.0.1]", "2001:db8::1", "*.example.com",
  "*.api.example.com:8443", "example.com:443",
];

// deno-fmt-ignore
const LABELS = [
  "a", "x", "api", "example", "com", "co", "uk", "de", "_srv", "a-b", "-",
  "EXAMPLE", "xn--bcher-kva", "bücher", "faß", "İ", "ｅｘ", "0", "1", "127",
  "255", "256", "0x7f", "0177", "09", "4294967295", "*", "",
];

// deno-fmt-ignore
const SPECIAL = [
  ".", "..", ":", "*", "*.", "%", "%2e", "@", "/", "\\", "?", "#", "[", "]",
  " ", "-", "_", "0", "9", "x", "\0", "\r\n", "\t", "\x7f", "\x85", "\u00a0",
  "\u00ad", "\u200b", "\u200d", "\ufeff", "\u3002", "\uff0e", "\u3000",
  "\u0301", "\ud800", "\udc00", "ü", "ß", "ı", "Ａ", "😀",
];

// deno-fmt-ignore
const PORTS = [
  "443", "80", "8443", "1", "65535", "0", "65536", "99999", "", "x", "+1", "0443",
];

/**
 * Runs the fuzzer: same seed, same inputs, same result.
 *
 * @param seed Any 32-bit integer.
 * @param iterations How many inputs to generate (each also yields a few
 *   derived hosts for `matchHost`).
 * @returns The number of inputs fed and the property violations found.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { runHostFuzz } from "./host_fuzz.ts";
 * const { inputs, failures } = runHostFuzz(1, 200);
 * assert.ok(inputs >= 200);
 * assert.deepEqual(failures, []);
 * ```
 */
export function runHostFuzz(seed: number, iterations: number): HostFuzzResult {
  const rng = mulberry32(seed);
  const failures: string[] = [];
  const fail = (line: string) => {
    if (failures.length < 100) failures.push(line);
  };
  const pool: Entry[] = [];
  let inputs = 0;

  for (let i = 0; i < iterations; i++) {
    const text = generate(rng);
    inputs++;
    const canonical = checkCanonical(text, fail);
    const pattern = checkPattern(text, fail);
    if (pattern) {
      const entry = { pattern, value: i };
      if (pool.length < 48) pool.push(entry);
      else pool[Math.floor(rng() * pool.length)] = entry;
      // Liveness: an exact pattern allows its own host on a port it names.
      const port = pattern.port ?? 443;
      if (
        pattern.kind === "exact" &&
        matchHost([entry], pattern.host, port) !== entry
      ) {
        fail(
          `matchHost() does not match ${
            show(pattern.source)
          } with its own host`,
        );
      }
    }
    if (pool.length === 0) continue;
    const entries = pick(rng, pool, 1 + Math.floor(rng() * 6));
    const hosts = [text, ...derivedHosts(rng, entries)];
    if (canonical !== null) hosts.push(canonical);
    for (const host of hosts) {
      inputs++;
      checkMatch(entries, host, choosePort(rng, entries), fail);
    }
  }
  return { inputs, failures };
}

function checkCanonical(
  text: string,
  fail: (line: string) => void,
): string | null {
  let canonical: string;
  try {
    canonical = canonicalHost(text);
  } catch (error) {
    if (!(error instanceof HostError)) {
      fail(`canonicalHost(${show(text)}) threw ${describe(error)}`);
    }
    return null;
  }
  const again = attempt(() => canonicalHost(canonical));
  if (again !== canonical) {
    fail(
      `canonicalHost(${show(text)}) = ${show(canonical)} is not a fixed point`,
    );
  }
  if (
    canonical.length > 253 || !/^[a-z0-9_.:-]+$/.test(canonical) ||
    canonical.endsWith(".") || canonical.startsWith(".") ||
    canonical.includes("..")
  ) {
    fail(
      `canonicalHost(${show(text)}) = ${show(canonical)} is not a clean host`,
    );
  }
  return canonical;
}

function checkPattern(
  text: string,
  fail: (line: string) => void,
): HostPattern | null {
  let pattern: HostPattern;
  try {
    pattern = parseHostPattern(text);
  } catch (error) {
    if (!(error instanceof HostError)) {
      fail(`parseHostPattern(${show(text)}) threw ${describe(error)}`);
    }
    return null;
  }
  const { host, port, kind } = pattern;
  if (attempt(() => canonicalHost(host)) !== host) {
    fail(
      `parseHostPattern(${show(text)}) has a non-canonical host ${show(host)}`,
    );
  }
  if (
    port !== null && !(Number.isInteger(port) && port >= 1 && port <= 65535)
  ) {
    fail(`parseHostPattern(${show(text)}) has an invalid port ${port}`);
  }
  if (kind === "wildcard" && (isIp(host) || !host.includes("."))) {
    fail(
      `parseHostPattern(${show(text)}) has a too broad wildcard ${show(host)}`,
    );
  }
  if (pattern.source !== text) {
    fail(`parseHostPattern(${show(text)}) lost its source`);
  }
  return pattern;
}

function checkMatch(
  entries: readonly Entry[],
  host: string,
  port: number,
  fail: (line: string) => void,
): void {
  const where = `matchHost([${entries.map((e) => show(e.pattern.source))}], ${
    show(host)
  }, ${port})`;
  let result: Entry | null;
  try {
    result = matchHost(entries, host, port);
  } catch (error) {
    if (!(error instanceof HostError)) {
      fail(`${where} threw ${describe(error)}`);
    } // Refusing is right only for a host that is not canonical.
    else if (attempt(() => canonicalHost(host)) === host) {
      fail(`${where} refused a canonical host`);
    }
    return;
  }
  if (attempt(() => canonicalHost(host)) !== host) {
    fail(`${where} accepted a host that is not canonical`);
    return;
  }
  const expected = oracle(entries, host, port);
  if (result !== expected) {
    fail(
      `${where} returned ${show(result?.pattern.source ?? null)}, oracle says ${
        show(expected?.pattern.source ?? null)
      }`,
    );
  }
}

/** The rules, written a second way: filter what is allowed, then sort. */
function oracle(
  entries: readonly Entry[],
  host: string,
  port: number,
): Entry | null {
  const ip = isIp(host);
  const allowed = entries.filter(({ pattern }) => {
    const portOk = pattern.port === null
      ? port === 443 || port === 80
      : pattern.port === port;
    if (!portOk) return false;
    if (pattern.kind === "exact") return pattern.host === host;
    return !ip && host.endsWith("." + pattern.host);
  });
  const score = ({ pattern }: Entry) => [
    pattern.kind === "exact" ? 1 : 0,
    pattern.kind === "exact" ? 0 : pattern.host.length,
    pattern.port === null ? 0 : 1,
  ];
  // Array.prototype.sort is stable: equal scores keep list order.
  allowed.sort((a, b) => {
    const [sa, sb] = [score(a), score(b)];
    for (let i = 0; i < sa.length; i++) {
      if (sa[i] !== sb[i]) return sb[i]! - sa[i]!;
    }
    return 0;
  });
  return allowed[0] ?? null;
}

function isIp(host: string): boolean {
  return host.includes(":") || /^[0-9.]+$/.test(host);
}

// --- generators ----------------------------------------------------------

function generate(rng: Rng): string {
  const r = rng();
  if (r < 0.2) return randomString(rng);
  if (r < 0.45) return grammarHost(rng);
  if (r < 0.55) return ipForm(rng);
  return mutate(rng, choose(rng, REAL_HOSTS));
}

function randomString(rng: Rng): string {
  const length = Math.floor(rng() * 40);
  let text = "";
  for (let i = 0; i < length; i++) {
    const r = rng();
    if (r < 0.5) text += String.fromCharCode(0x20 + Math.floor(rng() * 0x5f));
    else if (r < 0.65) text += String.fromCharCode(Math.floor(rng() * 0x100));
    else if (r < 0.75) text += String.fromCharCode(Math.floor(rng() * 0x10000));
    else text += choose(rng, SPECIAL);
  }
  return text;
}

function grammarHost(rng: Rng): string {
  const count = 1 + Math.floor(rng() * 5);
  const labels = Array.from({ length: count }, () => choose(rng, LABELS));
  let text = labels.join(".");
  if (rng() < 0.3) text = `*.${text}`;
  if (rng() < 0.15) text += ".";
  if (rng() < 0.3) text += `:${choose(rng, PORTS)}`;
  return text;
}

function ipForm(rng: Rng): string {
  const n = Math.floor(rng() * 2 ** 32);
  const octet = () => Math.floor(rng() * 256);
  const hex = () => Math.floor(rng() * 0x10000).toString(16);
  switch (Math.floor(rng() * 7)) {
    case 0:
      return String(n);
    case 1:
      return `0x${n.toString(16)}`;
    case 2:
      return `${octet()}.${octet()}.${octet()}.${octet()}`;
    case 3:
      return `0${octet().toString(8)}.${octet()}.0x${
        octet().toString(16)
      }.${octet()}`;
    case 4:
      return `[${hex()}::${hex()}]${
        rng() < 0.5 ? `:${choose(rng, PORTS)}` : ""
      }`;
    case 5:
      return `::ffff:${octet()}.${octet()}.${octet()}.${octet()}`;
    default:
      return `${hex()}:${hex()}::${rng() < 0.5 ? "%eth0" : hex()}`;
  }
}

function mutate(rng: Rng, text: string): string {
  let out = text;
  const times = 1 + Math.floor(rng() * 4);
  for (let i = 0; i < times; i++) {
    const at = Math.floor(rng() * (out.length + 1));
    const char = out[at] ?? "";
    switch (Math.floor(rng() * 8)) {
      case 0: // flip case
        out = out.slice(0, at) +
          (char === char.toUpperCase()
            ? char.toLowerCase()
            : char.toUpperCase()) +
          out.slice(at + 1);
        break;
      case 1: // insert a dot
        out = `${out.slice(0, at)}.${out.slice(at)}`;
        break;
      case 2: // delete
        out = out.slice(0, at) + out.slice(at + 1);
        break;
      case 3: // insert something nasty
        out = out.slice(0, at) + choose(rng, SPECIAL) + out.slice(at);
        break;
      case 4: // a port
        out += `:${choose(rng, PORTS)}`;
        break;
      case 5: // a wildcard
        out = `*.${out}`;
        break;
      case 6: // a digit
        out = out.slice(0, at) + String(Math.floor(rng() * 10)) +
          out.slice(at + 1);
        break;
      default: // duplicate a stretch
        out = out.slice(0, at) + out.slice(Math.max(0, at - 5), at) +
          out.slice(at);
    }
  }
  return out;
}

/** Hosts near the patterns: equal, subdomains, apex, look-alikes. */
function derivedHosts(rng: Rng, entries: readonly Entry[]): string[] {
  const { host } = choose(rng, entries).pattern;
  const dot = host.indexOf(".");
  return [
    host,
    `a.${host}`,
    `a.b.${host}`,
    `evil${host}`,
    `${host}.evil.com`,
    dot > 0 ? host.slice(dot + 1) : host,
    host.toUpperCase(),
    `${host}.`,
  ];
}

function choosePort(rng: Rng, entries: readonly Entry[]): number {
  const r = rng();
  if (r < 0.35) return 443;
  if (r < 0.5) return 80;
  if (r < 0.8) return choose(rng, entries).pattern.port ?? 8443;
  return Math.floor(rng() * 70000) - 100;
}

function pick<T>(rng: Rng, from: readonly T[], count: number): T[] {
  return Array.from({ length: count }, () => choose(rng, from));
}

function choose<T>(rng: Rng, from: readonly T[]): T {
  return from[Math.floor(rng() * from.length)]!;
}

/** mulberry32: a tiny, fast 32-bit PRNG; plenty for generating inputs. */
function mulberry32(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function attempt(fn: () => string): string | null {
  try {
    return fn();
  } catch {
    return null;
  }
}

function describe(error: unknown): string {
  return error instanceof Error
    ? `${error.name}: ${error.message}`
    : String(error);
}

function show(value: string | null): string {
  return JSON.stringify(value);
}
