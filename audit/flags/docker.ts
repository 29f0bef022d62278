/**
 * Reads a Dockerfile the way Docker builds it, for the deno commands it
 * runs: `RUN` lines (shell form, exec form, heredocs), and per build stage
 * the command the image starts with, which is `ENTRYPOINT` and `CMD`
 * together. On a Deno image (`FROM denoland/deno`) the entrypoint is deno:
 * `CMD ["run", "--allow-net", "main.ts"]` runs `deno run --allow-net
 * main.ts`. A stage built `FROM` an earlier stage inherits its entrypoint
 * and command; setting `ENTRYPOINT` drops an inherited `CMD`, as Docker
 * does. Instructions that only name deno (`USER deno`, `RUN adduser ...
 * deno --ingroup deno`, `COPY --from=denoland/deno:bin /deno ...`) are no
 * deno commands.
 *
 * @module
 */

import { basename } from "node:path";
import { DENO_SUBCOMMANDS, isDenoImage, launchOf } from "./launch.ts";
import { type ShellWord, shellWords } from "./shell.ts";
import {
  type CommandSite,
  type Context,
  execSegment,
  type Origin,
  type Segment,
  siteOf,
  sitesFromShell,
  sitesFromWords,
} from "./site.ts";

/** One instruction's command: an exec-form array or a shell string. */
type Form =
  | { form: "exec"; keyword: string; words: string[]; line: number }
  | { form: "shell"; keyword: string; text: string; line: number };

interface Stage {
  name: string | null;
  /** Built on a Deno image, or on a stage that was. */
  denoBase: boolean;
  /** Copies or installs a deno binary. */
  installsDeno: boolean;
  /** "deno" when the base image's entrypoint dispatches to deno. */
  entrypoint: Form | "deno" | null;
  cmd: Form | null;
  cmdWritten: boolean;
  written: boolean;
  env: Record<string, string>;
  exposed: number[];
}

interface Instruction {
  line: number;
  text: string;
  /** Bodies of `<<EOF` heredocs, each with its first line number. */
  heredocs: { line: number; lines: string[] }[];
}

const WRAPPER_ENTRY = /^(?:tini|tini-static|dumb-init|catatonit)$/;

/**
 * The deno commands of a Dockerfile's lines.
 *
 * @param lines The file's lines (or a Markdown block's).
 * @param firstLine The 1-based line number of `lines[0]`.
 * @param context `docker`, or `docs` for a block in Markdown.
 * @returns The sites, in file order (a start command at the line of the
 * instruction that holds its flags).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { dockerfileSites } from "./docker.ts";
 * const sites = dockerfileSites([
 *   "FROM denoland/deno:2.0.2",
 *   "RUN adduser --disabled-password deno --ingroup deno",
 *   'CMD ["run", "--allow-net", "main.ts"]',
 * ], 1, "docker");
 * assert.deepEqual(sites.map((s) => `${s.line}: ${s.words.join(" ")}`), [
 *   "3: deno run --allow-net main.ts",
 * ]);
 * assert.equal(
 *   sites[0]!.rewrite(2, 3, ["--allow-net=0.0.0.0:8000"]),
 *   'CMD ["run", "--allow-net=0.0.0.0:8000", "main.ts"]',
 * );
 * ```
 */
export function dockerfileSites(
  lines: readonly string[],
  firstLine: number,
  context: Context,
): CommandSite[] {
  const sites: CommandSite[] = [];
  const stages: Stage[] = [];
  let stage: Stage | null = null;
  const current = (): Stage => stage ??= newStage(null);
  const hinted = (found: CommandSite[], s: Stage) =>
    found.map((site) =>
      Object.assign(site, { env: { ...s.env }, exposed: [...s.exposed] })
    );
  const runSites = (form: Form, s: Stage) =>
    hinted(
      form.form === "exec"
        ? execSites([form], false, context)
        : sitesFromShell(form.text, form.line, context),
      s,
    );
  const finish = () => {
    if (stage?.written) {
      const published = [...stage.exposed];
      sites.push(
        ...hinted(startSites(stage, context), stage).map((site) =>
          Object.assign(site, { published })
        ),
      );
    }
  };
  const handle = (keyword: string, rest: string, ins: Instruction) => {
    const s = current();
    switch (keyword.toUpperCase()) {
      case "FROM": {
        finish();
        stage = fromStage(rest, stages);
        stages.push(stage);
        return;
      }
      case "ENTRYPOINT":
        s.entrypoint = formOf(keyword, rest, ins.line);
        // Docker: setting ENTRYPOINT resets a CMD inherited from the base.
        if (!s.cmdWritten) s.cmd = null;
        s.written = true;
        return;
      case "CMD":
        s.cmd = formOf(keyword, rest, ins.line);
        s.cmdWritten = true;
        s.written = true;
        return;
      case "RUN": {
        const command = rest.replace(/^(?:--[\w-]+(?:=\S*)?\s+)+/, "");
        if (/deno\.land\/(?:x\/)?install|\/deno\s*$/.test(command)) {
          s.installsDeno = true;
        }
        sites.push(...runSites(formOf(keyword, command, ins.line), s));
        for (const body of ins.heredocs) {
          body.lines.forEach((text, k) =>
            sites.push(
              ...hinted(sitesFromShell(text, body.line + k, context), s),
            )
          );
        }
        return;
      }
      case "HEALTHCHECK": {
        const m = rest.match(/^(?:--\S+\s+)*CMD\s+(.*)$/is);
        if (m) sites.push(...runSites(formOf("CMD", m[1]!, ins.line), s));
        return;
      }
      case "ONBUILD": {
        const m = rest.match(/^(\w+)\s*(.*)$/s);
        if (m) handle(m[1]!, m[2]!, ins);
        return;
      }
      case "ENV":
        Object.assign(s.env, envOf(rest));
        return;
      case "EXPOSE":
        for (const m of rest.matchAll(/\b(\d{1,5})(?:\/\w+)?\b/g)) {
          s.exposed.push(Number(m[1]));
        }
        return;
      case "COPY":
      case "ADD":
        if (/(?:^|\s)\S*\/deno(?:\s|$)/.test(rest)) s.installsDeno = true;
        return;
    }
  };
  for (const ins of instructions(lines, firstLine)) {
    const m = ins.text.match(/^\s*(\w+)\s*(.*)$/s);
    if (m) handle(m[1]!, m[2]!.trim(), ins);
  }
  finish();
  // A stage's start command is known at its end; report it at its line.
  return sites.sort((a, b) => a.line - b.line);
}

function newStage(name: string | null): Stage {
  return {
    name,
    denoBase: false,
    installsDeno: false,
    entrypoint: null,
    cmd: null,
    cmdWritten: false,
    written: false,
    env: {},
    exposed: [],
  };
}

/** `FROM [--platform=...] image [AS name]`: a stage and what it inherits. */
function fromStage(rest: string, stages: readonly Stage[]): Stage {
  const words = rest.split(/\s+/).filter((w) => !w.startsWith("--"));
  const image = words[0] ?? "";
  const as = words.findIndex((w) => w.toLowerCase() === "as");
  const stage = newStage(as !== -1 ? (words[as + 1] ?? null) : null);
  const parent = stages.findLast((s) =>
    s.name !== null && s.name.toLowerCase() === image.toLowerCase()
  );
  if (parent) {
    stage.denoBase = parent.denoBase;
    stage.installsDeno = parent.installsDeno;
    stage.entrypoint = parent.entrypoint;
    stage.cmd = parent.cmd;
    stage.env = { ...parent.env };
    stage.exposed = [...parent.exposed];
  } else if (isDenoImage(image)) {
    stage.denoBase = true;
    stage.entrypoint = "deno";
  }
  return stage;
}

/** An instruction's argument as exec form (a JSON array) or shell form. */
function formOf(keyword: string, rest: string, line: number): Form {
  if (rest.startsWith("[")) {
    try {
      const words: unknown = JSON.parse(rest);
      if (Array.isArray(words) && words.every((w) => typeof w === "string")) {
        return { form: "exec", keyword, words, line };
      }
    } catch {
      // Not valid JSON: Docker runs it in a shell.
    }
  }
  return { form: "shell", keyword, text: rest, line };
}

/** `ENV A=1 B="x y"`, or the old `ENV A value`. */
function envOf(rest: string): Record<string, string> {
  const env: Record<string, string> = {};
  const legacy = rest.match(/^([A-Za-z_]\w*)\s+([^=]*|.*\s.*)$/s);
  if (legacy && !/^[A-Za-z_]\w*=/.test(rest)) {
    env[legacy[1]!] = legacy[2]!.trim();
    return env;
  }
  for (const word of shellWords(rest)[0] ?? []) {
    const eq = word.text.indexOf("=");
    if (eq > 0) env[word.text.slice(0, eq)] = word.text.slice(eq + 1);
  }
  return env;
}

/** The command a stage's image starts with: ENTRYPOINT and CMD together. */
function startSites(stage: Stage, context: Context): CommandSite[] {
  const { entrypoint, cmd } = stage;
  if (entrypoint !== null && entrypoint !== "deno") {
    if (entrypoint.form === "shell") {
      // A shell-form ENTRYPOINT ignores CMD.
      return sitesFromShell(entrypoint.text, entrypoint.line, context);
    }
    const core = entrypoint.words.slice(wrapperEnd(entrypoint.words));
    const dispatches = basename(core[0] ?? "") === "docker-entrypoint.sh" &&
      core.length === 1 && (stage.denoBase || stage.installsDeno);
    if (!dispatches) {
      return execSites(
        cmd?.form === "exec" ? [entrypoint, cmd] : [entrypoint],
        false,
        context,
      );
    }
  }
  if (cmd === null) return [];
  if (cmd.form === "shell") return sitesFromShell(cmd.text, cmd.line, context);
  const first = cmd.words[0] ?? "";
  const dispatch = entrypoint !== null &&
    (DENO_SUBCOMMANDS.has(first) || first.startsWith("-"));
  return execSites([cmd], dispatch, context);
}

/** Index after a `tini --`-style init wrapper at the start of an entrypoint. */
function wrapperEnd(words: readonly string[]): number {
  if (!WRAPPER_ENTRY.test(basename(words[0] ?? ""))) return 0;
  let i = 1;
  while (i < words.length && words[i]!.startsWith("-")) {
    if (words[i++] === "--") break;
  }
  return i;
}

/**
 * The deno command of exec-form arrays run as one (ENTRYPOINT then CMD);
 * `implied` when an entrypoint puts deno in front of them.
 */
function execSites(
  forms: readonly Form[],
  implied: boolean,
  context: Context,
): CommandSite[] {
  const words: ShellWord[] = [];
  const origins: Origin[] = [];
  const segments: Segment[] = [];
  const lines: number[] = [];
  forms.forEach((form, segment) => {
    if (form.form !== "exec") return;
    const ws = form.words.map((text) => ({ text, literal: true }));
    segments.push(execSegment(form.keyword, ws));
    ws.forEach((w, index) => {
      words.push(w);
      origins.push({ segment, index });
      lines.push(form.line);
    });
  });
  if (words.length === 0) return [];
  let from = 0;
  let addDeno = implied;
  if (!implied) {
    const launch = launchOf(words.map((w) => w.text));
    if (launch === null) return [];
    if (launch.kind === "shell") {
      return sitesFromWords(
        words,
        lines[launch.at - 1] ?? lines[0]!,
        context,
        (ws) => segments[0] ?? execSegment("CMD", ws),
      );
    }
    from = launch.at;
    addDeno = launch.implied;
  }
  const denoWords = words.slice(from);
  const denoOrigins = origins.slice(from);
  const denoLines = lines.slice(from);
  // The line of the instruction that holds the flags (else the last one).
  const flagAt = denoWords.findLastIndex((w) => w.text.startsWith("-"));
  const line = denoLines[flagAt === -1 ? denoLines.length - 1 : flagAt]!;
  return [
    addDeno
      ? siteOf(
        line,
        context,
        [{ text: "deno", literal: true }, ...denoWords],
        [null, ...denoOrigins],
        segments,
      )
      : siteOf(line, context, denoWords, denoOrigins, segments),
  ];
}

/**
 * Joins a Dockerfile's lines into instructions: continuation lines (the
 * escape character, `\` unless a `# escape=` directive says otherwise),
 * comment lines dropped, heredoc bodies collected.
 */
function instructions(
  lines: readonly string[],
  firstLine: number,
): Instruction[] {
  let escape = "\\";
  let i = 0;
  for (; i < lines.length; i++) {
    const m = lines[i]!.match(/^\s*#\s*([a-z]+)\s*=\s*(\S+)\s*$/i);
    if (!m) break;
    if (m[1]!.toLowerCase() === "escape") escape = m[2]!;
  }
  const out: Instruction[] = [];
  const continues = (text: string) => text.trimEnd().endsWith(escape);
  while (i < lines.length) {
    const raw = lines[i]!;
    if (/^\s*(?:#|$)/.test(raw)) {
      i++;
      continue;
    }
    const line = firstLine + i;
    let text = raw;
    while (continues(text) && i + 1 < lines.length) {
      text = text.trimEnd().slice(0, -escape.length);
      i++;
      while (i < lines.length - 1 && /^\s*#/.test(lines[i]!)) i++;
      text += " " + lines[i]!;
    }
    i++;
    const heredocs: Instruction["heredocs"] = [];
    for (const m of text.matchAll(/<<(-?)(["']?)([A-Za-z_]\w*)\2/g)) {
      const start = i;
      while (i < lines.length && lines[i]!.trim() !== m[3]) i++;
      heredocs.push({ line: firstLine + start, lines: lines.slice(start, i) });
      i++;
    }
    out.push({ line, text, heredocs });
  }
  return out;
}
