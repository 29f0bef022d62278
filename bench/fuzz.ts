/**
 * Long fuzz runs (`deno task fuzz [--seed N] [--iterations N] [--seconds N]`):
 * the host-pattern fuzzer (`runHostFuzz`), the HTTP/1.1 parser fuzzer
 * (`runHttp1Fuzz`) and the policy-matcher fuzzer defined here
 * (`runPolicyFuzz`), round after round with fresh seeds until the time
 * budget is spent. Every round prints its seed: `--seed S --seconds 0`
 * repeats exactly that round. Exits 1 on any failure.
 *
 * The policy-matcher fuzzer builds random allowlists (exact, wildcard and
 * IP patterns, with and without ports, in odd spellings) and random
 * destinations, and checks `compileNetworkPolicy(...).decide()` against an
 * oracle written independently of `host_pattern.ts`:
 *
 * 1. on a canonical host (as the proxy passes it), `decide()` picks exactly
 *    the entry the oracle picks (exact beats wildcard, the longest wildcard
 *    wins, an explicit port beats the default ports, then list order), with
 *    that entry's rules, and denies when the oracle finds none: never an
 *    allow for a destination the policy does not allow;
 * 2. on a raw, non-canonical spelling (`A.COM.`, `[::1]`, `0x7f.1`),
 *    `decide()` refuses to match (HostError) or denies: never an allow;
 * 3. `canonicalHost()` agrees with the oracle's canonical form where the
 *    oracle knows it;
 * 4. every allowed destination is also admitted by the policy's Deno
 *    `--allow-net` grants (the sandbox's second wall must not be narrower
 *    in a way that breaks, nor is it consulted for safety);
 * 5. invalid patterns (`*`, `*.com`, `a.*.com`, wildcards over IPs, paths,
 *    schemes, userinfo, bad ports, empty labels, controls) are refused by
 *    the schema and by `compileNetworkPolicy`;
 * 6. `deny-all` denies and `allow-all` allows everything.
 *
 * @module
 */

import { runHostFuzz } from "../tests/kits/host_fuzz.ts";
import { runHttp1Fuzz } from "../tests/kits/http1_fuzz.ts";
import { canonicalHost, HostError } from "../injector/host_pattern.ts";
import { publicSuffixUnder } from "../injector/_public_suffix.ts";
import {
  compileNetworkPolicy,
  type NetworkPolicy,
  NetworkPolicySchema,
} from "../injector/network_policy.ts";

/** What a policy fuzz run did and what it found. */
export interface PolicyFuzzResult {
  /** Destinations and patterns fed to the code under test. */
  inputs: number;
  /** One line per property violation (at most 100 kept). */
  failures: string[];
}

type Rng = () => number;

/** mulberry32: 32-bit state, uniform floats in [0, 1). */
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

const int = (rng: Rng, n: number) => Math.floor(rng() * n);
const pick = <T>(rng: Rng, items: readonly T[]): T =>
  items[int(rng, items.length)]!;

// A small vocabulary, so that patterns and hosts overlap often.
// deno-fmt-ignore
const LABELS = ["a", "b", "api", "www", "cdn", "x-y", "_s", "0", "12", "evil", "co"];
// Last labels: alphabetic, so no name is read as an IPv4 number.
// deno-fmt-ignore
const TLDS = ["com", "test", "org", "uk", "co", "example"];
// deno-fmt-ignore
const IPV4 = ["10.0.0.1", "127.0.0.1", "169.254.169.254", "1.2.3.4", "192.168.1.10"];
/** Non-canonical spellings whose canonical form the oracle knows. */
const KNOWN_SPELLINGS: Readonly<Record<string, string>> = {
  "bücher.com": "xn--bcher-kva.com",
  "BÜCHER.com": "xn--bcher-kva.com",
  "xn--bcher-kva.com": "xn--bcher-kva.com",
  "2852039166": "169.254.169.254",
  "0xa9fea9fe": "169.254.169.254",
  "0x7f.1": "127.0.0.1",
  "0177.0.0.1": "127.0.0.1",
  "10.0.0.01": "10.0.0.1",
  "[::1]": "::1",
  "::1": "::1",
  "0:0:0:0:0:0:0:1": "::1",
  "[2001:DB8::1]": "2001:db8::1",
  "2001:db8::1": "2001:db8::1",
  "::ffff:127.0.0.1": "::ffff:7f00:1",
  "ａｐｉ.com": "api.com",
  "api\u3002com": "api.com",
};
// deno-fmt-ignore
const PORTS = [443, 80, 8443, 8080, 1, 65535, 444, 79, 0, 65536, -1, 3128];

/** The oracle's canonical form of a host, or null when it cannot tell. */
function oracleCanonical(raw: string): string | null {
  if (Object.hasOwn(KNOWN_SPELLINGS, raw)) return KNOWN_SPELLINGS[raw]!;
  if (
    /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/
      .test(raw)
  ) {
    return raw;
  }
  const name = raw.endsWith(".") ? raw.slice(0, -1) : raw;
  const labels = name.split(".");
  const last = labels.at(-1) ?? "";
  if (
    name.length === 0 || name.length > 253 || !/^[A-Za-z]+$/.test(last) ||
    labels.some((l) =>
      !/^[A-Za-z0-9_-]{1,63}$/.test(l) || l.toLowerCase().startsWith("xn--")
    )
  ) {
    return null;
  }
  return name.toLowerCase();
}

function isIpLiteral(host: string): boolean {
  return host.includes(":") || /^\d+\.\d+\.\d+\.\d+$/.test(host);
}

/** One allowlist entry as the oracle sees it. */
interface OracleEntry {
  source: string;
  wildcard: boolean;
  /** Canonical host (for a wildcard: the suffix after `*.`). */
  host: string;
  port: number | null;
  /** The tag of this entry's first transform rule, if it has rules. */
  tag: string | null;
  ruleCount: number;
}

/**
 * The oracle: which entry allows `host:port`, decided by plain string
 * comparisons and an explicit preference order.
 */
function oracleDecide(
  entries: readonly OracleEntry[],
  host: string,
  port: number,
): OracleEntry | null {
  let best: OracleEntry | null = null;
  for (const entry of entries) {
    const portOk = entry.port === null
      ? port === 443 || port === 80
      : entry.port === port;
    if (!portOk) continue;
    const hostOk = entry.wildcard
      ? !isIpLiteral(host) && host.length > entry.host.length &&
        host.slice(-(entry.host.length + 1)) === `.${entry.host}`
      : entry.host === host;
    if (!hostOk) continue;
    if (best === null || prefer(entry, best)) best = entry;
  }
  return best;
}

/** Whether `a` beats `b` (both match); a tie keeps the earlier one (b). */
function prefer(a: OracleEntry, b: OracleEntry): boolean {
  if (a.wildcard !== b.wildcard) return !a.wildcard;
  if (a.wildcard && a.host.length !== b.host.length) {
    return a.host.length > b.host.length;
  }
  if ((a.port === null) !== (b.port === null)) return a.port !== null;
  return false;
}

/** Deno's `--allow-net` semantics for one grant. */
function denoAdmits(grant: string, host: string, port: number): boolean {
  const colon = grant.lastIndexOf(":");
  const grantPort = Number(grant.slice(colon + 1));
  let grantHost = grant.slice(0, colon);
  if (grantHost.startsWith("[")) grantHost = grantHost.slice(1, -1);
  if (grantPort !== port) return false;
  if (grantHost.startsWith("*.")) {
    const suffix = grantHost.slice(2);
    return host === suffix || host.endsWith(`.${suffix}`);
  }
  return grantHost === host;
}

function randomCase(rng: Rng, text: string): string {
  if (rng() < 0.7) return text;
  return [...text].map((c) => rng() < 0.4 ? c.toUpperCase() : c).join("");
}

function domainName(rng: Rng, minLabels = 1): string {
  const count = minLabels + int(rng, 3);
  const labels = Array.from({ length: count }, () => pick(rng, LABELS));
  return [...labels, pick(rng, TLDS)].join(".");
}

/**
 * A valid pattern and what the oracle knows of it. Names come mostly from
 * `bases` (a few per policy), so entries of one policy overlap: the same
 * host with and without a port, nested wildcards, exact under wildcard.
 */
function validPattern(
  rng: Rng,
  bases: readonly string[],
): Omit<OracleEntry, "tag" | "ruleCount"> {
  const port = rng() < 0.5 ? null : pick(rng, [443, 80, 8443, 8080, 1, 65535]);
  const portText = port === null ? "" : `:${port}`;
  const name = () => {
    const r = rng();
    if (r < 0.5) return pick(rng, bases);
    if (r < 0.85) return `${pick(rng, LABELS)}.${pick(rng, bases)}`;
    return domainName(rng);
  };
  const r = rng();
  if (r < 0.4) {
    const host = name();
    const spelled = randomCase(rng, host) + (rng() < 0.1 ? "." : "");
    return {
      source: spelled + portText,
      wildcard: false,
      host,
      port,
    };
  }
  if (r < 0.8) {
    // At least two labels after "*.".
    const suffix = name();
    const spelled = randomCase(rng, suffix) + (rng() < 0.1 ? "." : "");
    return {
      source: `*.${spelled}${portText}`,
      wildcard: true,
      host: suffix,
      port,
    };
  }
  if (r < 0.9) {
    const ip = pick(rng, IPV4);
    return { source: ip + portText, wildcard: false, host: ip, port };
  }
  const spelling = pick(rng, Object.keys(KNOWN_SPELLINGS));
  const host = KNOWN_SPELLINGS[spelling]!;
  // An IPv6 pattern with a port needs brackets; bare IPv6 has no port.
  if (host.includes(":")) {
    if (!spelling.startsWith("[")) {
      return { source: `[${spelling}]`, wildcard: false, host, port: null };
    }
    return { source: spelling + portText, wildcard: false, host, port };
  }
  return { source: spelling + portText, wildcard: false, host, port };
}

/** A pattern that must be refused, derived from a valid one. */
function invalidPattern(rng: Rng): string {
  const host = domainName(rng);
  switch (int(rng, 14)) {
    case 0:
      return "*";
    case 1:
      return `*.${pick(rng, TLDS)}`;
    case 2:
      return `a.*.${host}`;
    case 3:
      return `*.${pick(rng, IPV4)}`;
    case 4:
      return `*${host}`;
    case 5:
      return `${host}/path`;
    case 6:
      return `https://${host}`;
    case 7:
      return `user@${host}`;
    case 8:
      return `a..${host}`;
    case 9:
      return `.${host}`;
    case 10:
      return `${host}:${
        pick(rng, ["0", "65536", "99999", "", "x", "+1", "-1"])
      }`;
    case 11:
      return `${host}${pick(rng, ["\n", "\r\n", "\0", " ", "\t"])}`;
    case 12:
      return pick(rng, [
        "2001:db8::1",
        "[::1",
        "*.[::1]",
        "**.a.com",
        "*.*.a.com",
      ]);
    default:
      return `*.${host}:${pick(rng, ["0", "70000", "443x"])}`;
  }
}

/** A destination host near the patterns, in assorted spellings. */
function probeHost(rng: Rng, entries: readonly OracleEntry[]): string {
  const base = entries.length > 0 && rng() < 0.8
    ? pick(rng, entries).host
    : rng() < 0.7
    ? domainName(rng)
    : pick(rng, IPV4);
  const dot = base.indexOf(".");
  const variants = [
    base,
    base,
    `a.${base}`,
    `${pick(rng, LABELS)}.${pick(rng, LABELS)}.${base}`,
    `evil${base}`,
    `${base}.evil.com`,
    dot > 0 ? base.slice(dot + 1) : base,
    `${base}.`,
    base.toUpperCase(),
    randomCase(rng, `${pick(rng, LABELS)}.${base}`),
    `x${base.slice(1)}`,
    pick(rng, Object.keys(KNOWN_SPELLINGS)),
    `${base}:443`,
    `[${base}]`,
    `${base}..`,
    `${base}%2e`,
  ];
  return pick(rng, variants);
}

function probePort(rng: Rng, entries: readonly OracleEntry[]): number {
  const r = rng();
  if (r < 0.35) return 443;
  if (r < 0.5) return 80;
  if (r < 0.75 && entries.length > 0) {
    const port = pick(rng, entries).port ?? 443;
    return rng() < 0.8 ? port : port + (rng() < 0.5 ? 1 : -1);
  }
  return rng() < 0.5 ? pick(rng, PORTS) : int(rng, 70_000) - 10;
}

function describe(error: unknown): string {
  return error instanceof Error
    ? `${error.name}: ${error.message}`
    : String(error);
}

/**
 * Runs the policy-matcher fuzzer: same seed, same inputs, same result.
 *
 * @param seed Any 32-bit integer.
 * @param iterations How many random policies to build (each is probed
 *   with several destinations).
 * @returns The inputs fed and the property violations found.
 *
 * @example Usage
 * ```ts
 * import { runPolicyFuzz } from "./fuzz.ts";
 * console.log(runPolicyFuzz(1, 100).failures.length); // 0
 * ```
 */
export function runPolicyFuzz(
  seed: number,
  iterations: number,
): PolicyFuzzResult {
  const rng = mulberry32(seed);
  const failures: string[] = [];
  let inputs = 0;
  const fail = (line: string) => {
    if (failures.length < 100) failures.push(line);
  };
  const show = JSON.stringify;

  for (let i = 0; i < iterations; i++) {
    inputs++;
    // 5: invalid patterns are refused by the schema and by the compiler.
    if (rng() < 0.15) {
      const bad = invalidPattern(rng);
      const policy = { allow: [domainName(rng), bad] };
      if (NetworkPolicySchema.safeParse(policy).success) {
        fail(`schema accepted the invalid pattern ${show(bad)}`);
      }
      let compiled = false;
      try {
        compileNetworkPolicy(policy, {});
        compiled = true;
      } catch {
        // refused: right
      }
      if (compiled) {
        fail(`compileNetworkPolicy accepted the invalid pattern ${show(bad)}`);
      }
      continue;
    }
    // 6: the fixed policies.
    if (rng() < 0.02) {
      const fixed = rng() < 0.5 ? "deny-all" : "allow-all";
      const compiled = compileNetworkPolicy(fixed, {});
      const host = domainName(rng);
      const port = probePort(rng, []);
      if (compiled.decide(host, port).allowed !== (fixed === "allow-all")) {
        fail(`${fixed} decided wrongly for ${show(host)}:${port}`);
      }
      continue;
    }

    // A random allowlist, as an array or with rules.
    const count = 1 + int(rng, 8);
    const bases = Array.from(
      { length: 1 + int(rng, 3) },
      () => domainName(rng),
    );
    const drafts = Array.from(
      { length: count },
      () => validPattern(rng, bases),
    );
    const withRules = rng() < 0.5;
    let input: unknown;
    const ruleCounts = new Map<string, number>();
    if (withRules) {
      const allow: Record<string, unknown[]> = {};
      drafts.forEach((d, n) => {
        const rules: unknown[] = [];
        if (rng() < 0.8) {
          rules.push({
            transform: [{ headers: { "x-entry": `entry-${n}-${d.source}` } }],
          });
        }
        if (rng() < 0.3) {
          rules.push({ response: { statusCode: 403, body: `r${n}` } });
        }
        if (!Object.hasOwn(allow, d.source)) {
          allow[d.source] = rules;
          ruleCounts.set(d.source, rules.length);
        }
      });
      input = { allow };
    } else {
      input = { allow: drafts.map((d) => d.source) };
    }
    // A wildcard over a public suffix ("*.co.uk") is refused unless the
    // policy opts in; with the opt-in it matches like any other wildcard.
    if (drafts.some((d) => d.wildcard && publicSuffixUnder(d.host) !== null)) {
      if (NetworkPolicySchema.safeParse(input).success) {
        fail(`schema accepted a public-suffix wildcard in ${show(input)}`);
      }
      input = { ...(input as object), allowPublicSuffixWildcards: true };
    }
    const parsed = NetworkPolicySchema.safeParse(input);
    if (!parsed.success) {
      fail(
        `schema refused a valid policy ${show(input)}: ${
          parsed.error.issues.map((x) => x.message).join("; ")
        }`,
      );
      continue;
    }
    let compiled;
    try {
      compiled = compileNetworkPolicy(parsed.data as NetworkPolicy, {});
    } catch (error) {
      fail(`compileNetworkPolicy(${show(input)}) threw ${describe(error)}`);
      continue;
    }
    // The oracle's entries in list order, as JavaScript lists an object's
    // keys (integer-like keys such as "2852039166" come first).
    const keys = withRules
      ? Object.keys((input as { allow: Record<string, unknown> }).allow)
      : Object.keys(Object.fromEntries(drafts.map((d) => [d.source, 0])));
    const entries: OracleEntry[] = keys.map((source) => {
      const draft = drafts.find((d) => d.source === source)!;
      const n = drafts.indexOf(draft);
      const rules = ruleCounts.get(source) ?? 0;
      const allow = (input as { allow: Record<string, unknown[]> }).allow;
      const first = withRules
        ? allow[source]![0] as { transform?: unknown } | undefined
        : undefined;
      return {
        ...draft,
        tag: first && "transform" in first ? `entry-${n}-${source}` : null,
        ruleCount: rules,
      };
    });
    const grants = compiled.denoNetGrants ?? [];

    const probes = 4 + int(rng, 8);
    for (let p = 0; p < probes; p++) {
      const raw = probeHost(rng, entries);
      const port = probePort(rng, entries);
      const where = `policy ${show(input)} decide(${show(raw)}, ${port})`;
      inputs++;

      // 2 (and 1 for canonical input): the raw string straight in.
      let direct;
      try {
        direct = compiled.decide(raw, port);
      } catch (error) {
        if (!(error instanceof HostError)) {
          fail(`${where} threw ${describe(error)}`);
        } else if (oracleCanonical(raw) === raw) {
          fail(`${where} refused a canonical host: ${describe(error)}`);
        }
        direct = null;
      }
      if (direct?.allowed) {
        const expected = oracleDecide(entries, raw, port);
        if (oracleCanonical(raw) !== raw && canonicalOf(raw) !== raw) {
          fail(`${where} allowed a non-canonical spelling (${direct.id})`);
        } else if (expected === null) {
          fail(`${where} allowed (${direct.id}); the oracle denies`);
        }
      }

      // 1 and 3: canonicalised first, as the proxy does.
      const canonical = canonicalOf(raw);
      const known = oracleCanonical(raw);
      if (known !== null && canonical !== known) {
        fail(
          `canonicalHost(${show(raw)}) = ${show(canonical)}, oracle: ${
            show(known)
          }`,
        );
      }
      if (canonical === null) continue;
      let decision;
      try {
        decision = compiled.decide(canonical, port);
      } catch (error) {
        fail(
          `${where} (canonical ${show(canonical)}) threw ${describe(error)}`,
        );
        continue;
      }
      const expected = oracleDecide(entries, canonical, port);
      const got = decision.allowed ? decision.id : null;
      if (got !== (expected?.source ?? null)) {
        fail(
          `${where} (canonical ${show(canonical)}) chose ${
            show(got)
          }, oracle: ${show(expected?.source ?? null)}`,
        );
        continue;
      }
      if (decision.allowed && expected) {
        if (decision.rules.length !== expected.ruleCount) {
          fail(
            `${where} returned ${decision.rules.length} rules for ${
              show(expected.source)
            }, which has ${expected.ruleCount}`,
          );
        }
        const tag = decision.rules[0]?.headers?.[0]?.[1] ?? null;
        if (expected.tag !== null && tag !== expected.tag) {
          fail(`${where} returned the rules of another entry (${show(tag)})`);
        }
        // 4: the Deno grants admit what the injector allows.
        if (!grants.some((g) => denoAdmits(g, canonical, port))) {
          fail(
            `${where}: allowed, but no Deno grant admits it: ${show(grants)}`,
          );
        }
      }
    }
  }
  return { inputs, failures };
}

function canonicalOf(raw: string): string | null {
  try {
    return canonicalHost(raw);
  } catch {
    return null;
  }
}

// --- the task --------------------------------------------------------------

interface Args {
  seed: number | null;
  iterations: number;
  seconds: number;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { seed: null, iterations: 10_000, seconds: 60 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const [name, inline] = flag.includes("=")
      ? [flag.slice(0, flag.indexOf("=")), flag.slice(flag.indexOf("=") + 1)]
      : [flag, undefined];
    const value = inline ?? argv[++i];
    const number = Number(value);
    if (value === undefined || !Number.isFinite(number) || number < 0) {
      throw new TypeError(`${name} needs a non-negative number`);
    }
    if (name === "--seed") args.seed = Math.trunc(number) >>> 0;
    else if (name === "--iterations") {
      args.iterations = Math.max(1, Math.trunc(number));
    } else if (name === "--seconds") args.seconds = number;
    else {
      throw new TypeError(
        `unknown option ${name}: use --seed N, --iterations N, --seconds N`,
      );
    }
  }
  return args;
}

const FUZZERS: {
  name: string;
  run: (seed: number, iterations: number) => {
    inputs: number;
    failures: string[];
  };
}[] = [
  { name: "host patterns (runHostFuzz)", run: runHostFuzz },
  { name: "HTTP/1.1 parser (runHttp1Fuzz)", run: runHttp1Fuzz },
  { name: "policy matcher (runPolicyFuzz)", run: runPolicyFuzz },
];

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(Deno.args);
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  const baseSeed = args.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]!;
  const nextSeed = mulberry32(baseSeed);
  const started = performance.now();
  const totals = FUZZERS.map(() => ({ inputs: 0, failures: 0 }));
  const found: string[] = [];
  console.log(
    `fuzz: base seed ${baseSeed}, ${args.iterations} iterations per fuzzer per round, budget ${args.seconds} s`,
  );
  for (let round = 0;; round++) {
    // Round 0 uses the base seed itself, so "--seed S --seconds 0" repeats it.
    const seed = round === 0 ? baseSeed : Math.floor(nextSeed() * 2 ** 32);
    for (const [index, fuzzer] of FUZZERS.entries()) {
      const t0 = performance.now();
      const { inputs, failures } = fuzzer.run(seed, args.iterations);
      const ms = performance.now() - t0;
      totals[index]!.inputs += inputs;
      totals[index]!.failures += failures.length;
      console.log(
        `round ${round} seed ${seed}: ${fuzzer.name}: ${inputs} inputs, ${failures.length} failures (${
          (ms / 1000).toFixed(1)
        } s)`,
      );
      for (const failure of failures) {
        const line =
          `[${fuzzer.name}] seed ${seed}: ${failure}\n  reproduce: deno task fuzz --seed ${seed} --iterations ${args.iterations} --seconds 0`;
        found.push(line);
        console.log(`  FAIL ${line}`);
      }
      // Give the event loop a turn (Ctrl-C, output).
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    if ((performance.now() - started) / 1000 >= args.seconds) break;
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `\nfuzz summary (base seed ${baseSeed}, ${seconds.toFixed(1)} s):`,
  );
  for (const [index, fuzzer] of FUZZERS.entries()) {
    const { inputs, failures } = totals[index]!;
    console.log(
      `  ${fuzzer.name}: ${inputs} inputs tried, ${failures} failures`,
    );
  }
  const total = totals.reduce((sum, t) => sum + t.inputs, 0);
  console.log(`  total: ${total} inputs, ${found.length} failures`);
  if (found.length > 0) {
    console.log("\nFAILURES (each with its reproducer):");
    for (const line of found) console.log(`- ${line}`);
    return 1;
  }
  console.log("PASS: no property violated");
  return 0;
}

if (import.meta.main) Deno.exit(await main());
