/**
 * Fixes in the project's own words: the command as the file writes it
 * (task string, shell line, Dockerfile `CMD [...]`) with the flag
 * replaced by the list the script's literal calls show (its listening
 * address for a server's `--allow-net`), or by a named slot
 * (`--allow-read=<paths it reads>`) when the source says nothing. A value
 * this audit rates risky (a secret path, a secret-looking variable, an
 * interpreter, the metadata address) is never proposed: it is named as
 * left out, so a script cannot talk the audit into suggesting its own
 * attack.
 *
 * @module
 */

import { atOrAbove, type Grant, type PermissionKind } from "./model.ts";
import type { ParsedDenoCommand } from "./parse.ts";
import { rateList } from "./rate.ts";
import type { RemoteScript } from "./remote.ts";
import { type CommandSite, quoteWord } from "./site.ts";
import type { SourceFacts } from "./source.ts";

/** Where a server listens, and what says so. */
export interface Listener {
  /** `host:port`, or `host:<port>` when the port is unknown. */
  address: string;
  /** What shows it (`main.ts calls Deno.serve`, `deno serve`). */
  from: string;
  /** The variable its port comes from, if any. */
  portEnv: string | null;
}

/** Everything a fix is derived from. */
export interface FixInput {
  /** The grant to fix. */
  grant: Grant;
  /** The command as found. */
  site: CommandSite;
  /** Its parse. */
  parsed: ParsedDenoCommand;
  /** What the script's source shows, when it was found in the project. */
  facts: SourceFacts | null;
  /** Where it listens, if it is a server. */
  listener: Listener | null;
  /** Where the script comes from, when it is fetched at run time. */
  remote: RemoteScript | null;
  /** The remote script is neither pinned nor in a lockfile. */
  unpinned: boolean;
  /** The rating's generic suggestion, kept for grants that need no change. */
  fallback: string;
  /** The script's name to show (a shebang's file), when it is local. */
  name?: string | null;
}

const SLOT: Record<PermissionKind, string> = {
  read: "<paths it reads>",
  write: "<paths it writes>",
  net: "<hosts it reaches>",
  env: "<variables it reads>",
  sys: "<APIs it uses>",
  run: "<programs it runs>",
  ffi: "<library path>",
  import: "<hosts it imports from>",
};
/** The slots for `deno test`: the tests are many. */
const SLOT_TESTS: Record<PermissionKind, string> = {
  read: "<paths they read>",
  write: "<paths they write>",
  net: "<hosts they reach>",
  env: "<variables they read>",
  sys: "<APIs they use>",
  run: "<programs they run>",
  ffi: "<library path>",
  import: "<hosts they import from>",
};
/** `<who> <verb> <values>`: "main.ts reads deno.json". */
const VERB: Record<PermissionKind, string> = {
  read: "reads",
  write: "writes",
  net: "reaches",
  env: "reads",
  sys: "uses",
  run: "runs",
  ffi: "loads",
  import: "imports from",
};
const PLURAL: Record<string, string> = {
  reads: "read",
  writes: "write",
  reaches: "reach",
  uses: "use",
  runs: "run",
  loads: "load",
  "imports from": "import from",
};
/** `list <what> <who> <verb>`: "list the variables main.ts reads". */
const WHAT: Record<PermissionKind, string> = {
  read: "the paths",
  write: "the paths",
  net: "the hosts",
  env: "the variables",
  sys: "the APIs",
  run: "the programs",
  ffi: "the libraries",
  import: "the hosts",
};

/**
 * Whether proposing `value` would grant what this audit rates risky: for
 * `run`, an interpreter (critical); for the rest, medium or worse.
 *
 * @param kind The permission.
 * @param value One list entry.
 * @returns True when it must not be proposed.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { riskyValue } from "./fix.ts";
 * assert.equal(riskyValue("read", "~/.ssh/id_rsa"), true);
 * assert.equal(riskyValue("env", "PORT"), false);
 * assert.equal(riskyValue("run", "git"), false);
 * assert.equal(riskyValue("run", "bash"), true);
 * ```
 */
export function riskyValue(kind: PermissionKind, value: string): boolean {
  const severity = rateList(kind, [value]).severity;
  return kind === "run"
    ? severity === "critical"
    : atOrAbove(severity, "medium");
}

/**
 * The fix for one grant, as the project's command where it can be derived.
 *
 * @param input The grant, its command, and what the script shows.
 * @returns One line.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { fixFor } from "./fix.ts";
 * import { parseDenoCommand } from "./parse.ts";
 * import { sitesFromShell } from "./site.ts";
 * const [site] = sitesFromShell("deno run --allow-net main.ts", 1, "task");
 * const parsed = parseDenoCommand(site!.words.slice(1))!;
 * assert.equal(
 *   fixFor({
 *     grant: parsed.grants[0]!,
 *     site: site!,
 *     parsed,
 *     facts: null,
 *     remote: null,
 *     unpinned: false,
 *     fallback: "",
 *     listener: { address: "0.0.0.0:8000", from: "main.ts calls Deno.serve", portEnv: null },
 *   }),
 *   "main.ts calls Deno.serve (0.0.0.0:8000): deno run --allow-net=0.0.0.0:8000 main.ts; add any host it calls",
 * );
 * ```
 */
export function fixFor(input: FixInput): string {
  const { grant, site, parsed, facts, listener, fallback } = input;
  if (grant.kind === "all") return allFix(input);
  if (grant.kind === "hrtime") {
    return grant.at === undefined
      ? fallback
      : `delete the flag: ${replaceFlag(site, grant, null)}`;
  }
  if (grant.kind === "scripts") return fallback;
  const kind = grant.kind;
  if (grant.at === undefined) {
    // A -P set's grant: the fix is in deno.json's "permissions".
    return `${fallback} (in deno.json "permissions"."${
      parsed.permissionSet?.name ?? "default"
    }")`;
  }
  if (grant.values !== null) {
    const dropped = grant.values.filter((v) => riskyValue(kind, v));
    if (dropped.length === 0) return fallback;
    const kept = grant.values.filter((v) => !dropped.includes(v));
    // A program that runs npm or a shell needs it: say where that step goes.
    const why = kind === "run"
      ? ` (it runs any code with no sandbox; if the program needs it, do that step outside Deno)`
      : "";
    return `drop ${dropped.join(", ")}${why}: ${
      replaceFlag(site, grant, kept.length > 0 ? flag(grant, kept) : null)
    }`;
  }
  const derived = [
    ...(kind === "net" && listener ? [listener.address] : []),
    ...(facts ? factValues(kind, facts) : []),
    ...(kind === "env" && listener?.portEnv ? [listener.portEnv] : []),
  ].filter((v, i, all) => all.indexOf(v) === i);
  const safe = derived.filter((v) => !riskyValue(kind, v));
  const risky = derived.filter((v) => riskyValue(kind, v));
  const leftOut = risky.length > 0
    ? `; not proposed (risky): ${risky.join(", ")}`
    : "";
  const tests = parsed.subcommand === "test";
  const who = tests ? "the tests" : input.name ?? "the program";
  // "main.ts reads", "the tests read".
  const verb = tests ? PLURAL[VERB[kind]] ?? VERB[kind] : VERB[kind];
  if (safe.length > 0) {
    const others = kind === "net" && listener
      ? safe.filter((v) => v !== listener.address)
      : safe;
    const why = kind === "net" && listener
      ? `${listener.from} (${listener.address})${
        others.length > 0 ? ` and fetches ${others.join(", ")}` : ""
      }`
      : `${who} ${verb} ${safe.join(", ")}`;
    // The literals are a start: a name built at run time is not among them.
    const more = kind === "net" && listener && others.length === 0
      ? "; add any host it calls"
      : (facts?.built as readonly string[] | undefined)?.includes(kind)
      ? `; add the ${
        WHAT[kind].replace(/^the /, "")
      } its code builds at run time`
      : "";
    return `${why}: ${
      replaceFlag(site, grant, flag(grant, safe))
    }${more}${leftOut}`;
  }
  const slot = replaceFlag(
    site,
    grant,
    flag(grant, [(tests ? SLOT_TESTS : SLOT)[kind]]),
  );
  if (kind === "run" || kind === "ffi") {
    return `remove --allow-${kind}; if unavoidable, list exact ${
      kind === "run" ? "programs, never a shell or interpreter" : "libraries"
    }: ${slot}${leftOut}`;
  }
  return `list ${WHAT[kind]} ${who} ${verb}: ${slot}${leftOut}`;
}

/** The fix for `-A`: a pinned script, or the recorded run's exact flags. */
function allFix(input: FixInput): string {
  const { grant, site, parsed, listener, remote } = input;
  const script = parsed.script;
  if (grant.at === undefined) {
    return `replace "all": true in deno.json "permissions"."${
      parsed.permissionSet?.name ?? "default"
    }" with the kinds the program needs`;
  }
  if (remote && input.unpinned && parsed.scriptAt !== null) {
    return `run a pinned version with only the grants it needs: ${
      editWords(site, [
        {
          at: grant.at + 1,
          words: [...withoutFlag(site, grant), "<--allow-* flags>"],
        },
        { at: parsed.scriptAt + 1, words: [remote.pinnedForm] },
      ])
    }`;
  }
  if (remote) {
    return `grant only what ${script} needs (its documentation should say): ${
      replaceFlag(site, grant, "<--allow-* flags>")
    }`;
  }
  const name = input.name ?? script;
  if (parsed.subcommand === "test") {
    return `grant only what the tests need: ${
      replaceFlag(site, grant, "<--allow-* flags>")
    } (or give each test its own with Deno.test({ permissions }))`;
  }
  if (name === "-") {
    // `echo "import 'lume/cli.ts'" | deno run -A -`: the code is on stdin.
    return `grant only what the code piped to deno needs: ${
      replaceFlag(site, grant, "<--allow-* flags>")
    } (to learn which: put that code in a file and run airlock audit --learn on it)`;
  }
  if (name === null) {
    return `grant only what the program needs: ${
      replaceFlag(site, grant, "<--allow-* flags>")
    } (airlock audit --learn records what a run uses)`;
  }
  const shown = name.replace(/^\.\//, "");
  // The run learns what these arguments make the program do (`dev.ts build`).
  const from = parsed.scriptAt === null
    ? site.words.length
    : parsed.scriptAt + 2;
  const args = site.words.slice(from).map((text, k) =>
    quoteWord({ text, literal: site.literal[from + k] ?? true })
  );
  const learn = `${quoteWord({ text: shown, literal: true })}${
    args.length > 0 ? ` -- ${args.join(" ")}` : ""
  }`;
  return `record what ${shown} uses: airlock audit --learn --json ${learn} > trail.json, then airlock audit-flags --trail trail.json gives this command's exact flags${
    listener
      ? `; it listens on ${listener.address} (--allow-net=${listener.address})`
      : ""
  }`;
}

function factValues(kind: PermissionKind, facts: SourceFacts): string[] {
  switch (kind) {
    case "net":
      return facts.hosts;
    case "env":
      return facts.env;
    case "read":
      return facts.reads;
    case "write":
      return facts.writes;
    case "run":
      return facts.runs;
    default:
      return [];
  }
}

function flag(grant: Grant, values: readonly string[]): string {
  return `--allow-${grant.kind}=${values.join(",")}`;
}

/** The words that stay of a grant's word when the grant is taken out. */
function withoutFlag(site: CommandSite, grant: Grant): string[] {
  const word = site.words[grant.at! + 1] ?? "";
  if (!grant.span) return [];
  const rest = word.slice(0, grant.span[0]) + word.slice(grant.span[1]);
  return rest === "-" ? [] : [rest];
}

/**
 * The command with a grant's flag replaced (or removed when `replacement`
 * is null); a short flag in a cluster (`-RN`) leaves the others in place.
 */
function replaceFlag(
  site: CommandSite,
  grant: Grant,
  replacement: string | null,
): string {
  const at = grant.at! + 1;
  return site.rewrite(at, at + 1, [
    ...withoutFlag(site, grant),
    ...(replacement === null ? [] : [replacement]),
  ]);
}

/** The command with several words replaced (in order, same segment). */
function editWords(
  site: CommandSite,
  edits: readonly { at: number; words: string[] }[],
): string {
  const sorted = [...edits].sort((a, b) => a.at - b.at);
  const from = sorted[0]!.at;
  const to = sorted.at(-1)!.at + 1;
  const words: string[] = [];
  for (let i = from; i < to; i++) {
    const edit = sorted.find((e) => e.at === i);
    words.push(...(edit ? edit.words : [site.words[i]!]));
  }
  return site.rewrite(from, to, words);
}
