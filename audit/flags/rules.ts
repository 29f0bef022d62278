/**
 * The rules about a whole command, in the order its findings come:
 * `deno eval` (rated by its code: literal and harmless, literal and
 * touching permissions, or built by the shell at run time), a `-P` set
 * that is not found, each grant (with the fix derived from the project's
 * own command and script, or the exact flags of a recorded run), each flag
 * Deno rejects, a script fetched at run time without a pin, and a missing
 * `--no-prompt` where a person could answer a prompt.
 *
 * @module
 */

import { basename } from "node:path";
import { fixFor, type FixInput, type Listener } from "./fix.ts";
import type { Finding, FindingId, Grant } from "./model.ts";
import { atOrAbove } from "./model.ts";
import { type ParsedDenoCommand, parseDenoCommand } from "./parse.ts";
import { expandSet, type PermissionSets } from "./permission_sets.ts";
import { rateGrant, type Rating } from "./rate.ts";
import { type RemoteScript, remoteScript } from "./remote.ts";
import { type CommandSite, quoteWord } from "./site.ts";
import { type SourceFacts, sourceFacts } from "./source.ts";
import { type Trail, trailFor, trailSuggestion } from "./trail.ts";

/** What the rules may look up beyond the command itself. */
export interface RuleContext {
  /** The file, as findings show it. */
  file: string;
  /** The permission sets `-P` refers to. */
  sets: PermissionSets | null;
  /** Recorded runs to take exact flags from. */
  trails: readonly Trail[];
  /** The file's own text: the script of its `#!` line. */
  text: string;
  /** The source of a local script the command runs, or null. */
  script(spec: string, site: CommandSite): string | null;
  /** Whether a lockfile checks this remote script's content. */
  locked(spec: string, site: CommandSite): boolean;
}

/** Subcommands whose script is fetched and run (or compiled, installed). */
const RUNS_SCRIPT = new Set(["run", "serve", "compile", "install", "bench"]);

/**
 * The findings of one command.
 *
 * @param site The command as found in a file.
 * @param context The file, sets, trails and project lookups.
 * @returns The findings, in the order described in the module doc.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { rateSite } from "./rules.ts";
 * import { sitesFromShell } from "./site.ts";
 * const [site] = sitesFromShell("deno eval 'console.log(1)'", 1, "script");
 * const [finding] = rateSite(site!, {
 *   file: "x.sh",
 *   sets: null,
 *   trails: [],
 *   text: "",
 *   script: () => null,
 *   locked: () => false,
 * });
 * assert.equal(finding?.severity, "info");
 * ```
 */
export function rateSite(site: CommandSite, context: RuleContext): Finding[] {
  const parsed = parseDenoCommand(site.words.slice(1));
  if (!parsed) return [];
  const command = site.words.map((text, k) =>
    quoteWord({ text, literal: site.literal[k] ?? true })
  ).join(" ");
  const findings: Finding[] = [];
  const add = (id: FindingId, flag: string, rated: Rating) =>
    findings.push({
      id,
      file: context.file,
      line: site.line,
      command,
      flag,
      ...rated,
    });
  if (parsed.subcommand === "eval") {
    add("deno-eval", "deno eval", rateEval(site, parsed));
    return findings;
  }
  let grants = parsed.grants;
  let denies = parsed.denies;
  if (parsed.permissionSet) {
    const expanded = expandSet(parsed, context.sets);
    if (expanded) {
      grants = [...grants, ...expanded.grants];
      denies = [...denies, ...expanded.denies];
    } else {
      add("permission-set-missing", parsed.permissionSet.flag, {
        severity: "medium",
        message:
          `loads permission set '${parsed.permissionSet.name}' from a config file this audit did not find`,
        suggestion:
          "write the flags on the command line, or check the set in deno.json 'permissions' by hand",
      });
    }
  }
  const spec = parsed.script;
  const remote = spec !== null && RUNS_SCRIPT.has(parsed.subcommand)
    ? remoteScript(spec)
    : null;
  const unpinned = remote !== null && !remote.pinned && !parsed.lock &&
    !context.locked(spec!, site);
  // A `#!` line's script is the file it starts.
  const self = spec === null && site.context === "shebang";
  const name = self
    ? basename(context.file)
    : remote === null && spec !== "-"
    ? spec
    : null;
  const source = self
    ? context.text
    : name !== null
    ? context.script(name, site)
    : null;
  const facts = source === null ? null : sourceFacts(source);
  const listener = listenerOf(parsed, facts, source, site, name);
  const trail = trailFor(parsed.script, context.trails);
  const ratings: Rating[] = [];
  for (const grant of grants) {
    const rated = rateGrant(grant, denies);
    amend(rated, grant, parsed, remote, unpinned, listener);
    const input: FixInput = {
      grant,
      site,
      parsed,
      facts,
      listener,
      remote,
      unpinned,
      fallback: rated.suggestion,
      name,
    };
    rated.suggestion = parsed.misplacedValue?.flag === grant.flag
      ? rated.suggestion
      : (trail ? trailSuggestion(grant, trail) : "") || fixFor(input);
    ratings.push(rated);
    add(`allow-${grant.kind}`, grant.flag, rated);
  }
  for (const { flag, message } of parsed.problems) {
    add("bad-flag", flag, {
      severity: "medium",
      message:
        `cannot audit: ${message}, so the command fails or means something else`,
      suggestion: "fix the flag (see `deno run --help`)",
    });
  }
  if (unpinned && parsed.scriptAt !== null) {
    add("remote-unpinned", spec!, rateRemote(site, parsed, remote!, ratings));
  }
  const prompts = ["run", "serve", "test", "bench"].includes(parsed.subcommand);
  const all = grants.some((g) => g.kind === "all");
  // Deno prompts only when stdin and stderr are both terminals (checked
  // with Deno 2.9.6): CI jobs, image builds and containers never prompt,
  // so --no-prompt changes nothing there.
  const interactive = site.context === "task" || site.context === "shebang";
  if (prompts && !all && !parsed.noPrompt && !site.noPromptEnv && interactive) {
    add("no-prompt", "(no --no-prompt)", {
      severity: "low",
      message:
        `no --no-prompt in a ${site.context} command run from a terminal: a missing grant becomes a prompt, and answering it grants more than the command line says`,
      suggestion: `add --no-prompt so a missing grant fails fast: ${
        site.rewrite(parsed.flagsAt + 1, parsed.flagsAt + 1, ["--no-prompt"])
      }`,
    });
  }
  return findings;
}

/** Adds what the command shows to a grant's message. */
function amend(
  rated: Rating,
  grant: Grant,
  parsed: ParsedDenoCommand,
  remote: RemoteScript | null,
  unpinned: boolean,
  listener: Listener | null,
): void {
  if (parsed.misplacedValue?.flag === grant.flag) {
    const word = parsed.misplacedValue.word;
    rated.message +=
      `; '${word}' after it is not its list but the script Deno runs`;
    rated.suggestion = `write the list with '=': --allow-${grant.kind}=${word}`;
  }
  if (grant.kind === "all" && remote) {
    rated.message =
      `every permission, for code fetched from ${remote.host} at run time${
        unpinned ? " with no pin" : ""
      }: read ~/.ssh, run any program, reach any host`;
  }
  if (grant.kind === "net" && grant.values === null && listener) {
    rated.message =
      `${listener.from}, but this grant also lets it reach any host: exfiltration anywhere, the cloud metadata endpoint, the LAN`;
  }
}

/** Where a server listens: `deno serve`, the script's source, or its args. */
function listenerOf(
  parsed: ParsedDenoCommand,
  facts: SourceFacts | null,
  source: string | null,
  site: CommandSite,
  script: string | null,
): Listener | null {
  const args = parsed.scriptArgs;
  const argPort = args.map((a, i) =>
    /^(?:--port|-p)$/.test(a) ? args[i + 1] : a.match(/^--port=(\d+)$/)?.[1]
  ).find((p) => p !== undefined && /^\d+$/.test(p));
  if (parsed.subcommand === "serve") {
    return {
      address: `${parsed.options.host ?? "0.0.0.0"}:${
        parsed.options.port ?? 8000
      }`,
      from: "deno serve listens",
      portEnv: null,
    };
  }
  // A local script as the command names it (as the other fixes do); a
  // remote one by its last part (`file-server`).
  const name = script ?? basename(parsed.script ?? "");
  const exposed = site.exposed?.length === 1 ? site.exposed[0] : undefined;
  if (facts?.listens) {
    // Fresh's dev.ts with `build` builds the site and exits.
    if (args[0] === "build" && /\$fresh\/dev\.ts/.test(source ?? "")) {
      return null;
    }
    const fromEnv = facts.portEnv ? site.env?.[facts.portEnv] : undefined;
    const port = fromEnv ?? facts.port ?? exposed ?? 8000;
    return {
      address: `${facts.hostname ?? "0.0.0.0"}:${port}`,
      from: `${name} listens`,
      portEnv: facts.portEnv,
    };
  }
  // A script this audit cannot read, started in a container to serve on
  // one port (docker run -p, EXPOSE for its CMD): it listens there.
  const published = site.published?.length === 1
    ? site.published[0]
    : undefined;
  if (!facts && published !== undefined && !argPort && name !== "") {
    return {
      address: `0.0.0.0:${published}`,
      from: `${name} listens`,
      portEnv: null,
    };
  }
  if (/^file[-_]server(?:\.ts)?$/.test(name) || (argPort && !facts)) {
    return {
      address: `0.0.0.0:${argPort ?? "<port>"}`,
      from: `${name} listens`,
      portEnv: null,
    };
  }
  return null;
}

/** `deno eval`: critical only when its code is not what is written. */
function rateEval(site: CommandSite, parsed: ParsedDenoCommand): Rating {
  const at = parsed.scriptAt;
  const code = parsed.script;
  const always =
    "deno eval runs with every permission, whatever its flags (--deny-* included)";
  if (code === null || at === null || !site.literal[at + 1]) {
    return {
      severity: "critical",
      message: `${always}, and its code is built when the command runs (${
        code ?? "no literal code"
      }): whoever controls that input runs anything`,
      suggestion:
        "put the code in a file and run it with deno run and narrow flags",
    };
  }
  const facts = sourceFacts(code);
  if (facts.apis.length === 0) {
    return {
      severity: "info",
      message: `${always}; this literal code calls no permission-gated API`,
      suggestion:
        "nothing to do while the code stays literal; once it reads, writes, fetches or spawns, move it to a file and run it with deno run and narrow flags",
    };
  }
  const spawns = facts.codeApis.length > 0;
  return {
    severity: spawns ? "high" : "medium",
    message: `${always}, and this code calls ${facts.apis.join(", ")}${
      spawns ? ": it runs or loads other code with every permission" : ""
    }`,
    suggestion:
      "put the code in a file and run it with deno run and only the flags it needs",
  };
}

/** A script fetched at run time with no pin: as bad as what it is granted. */
function rateRemote(
  site: CommandSite,
  parsed: ParsedDenoCommand,
  remote: RemoteScript,
  ratings: readonly Rating[],
): Rating {
  const broad = ratings.some((r) => atOrAbove(r.severity, "high"));
  const grants = parsed.grants.map((g) => g.flag);
  const at = parsed.scriptAt! + 1;
  return {
    severity: broad ? "high" : ratings.length > 0 ? "medium" : "low",
    message:
      `runs code fetched from ${remote.host} at run time (${remote.why}, no lockfile entry): whoever controls ${remote.host} or that path decides what runs${
        grants.length > 0 ? ` with ${grants.join(" ")}` : ""
      }`,
    suggestion: `pin it: ${
      site.rewrite(at, at + 1, [remote.pinnedForm])
    }; or vendor the script into the repository and review it`,
  };
}
