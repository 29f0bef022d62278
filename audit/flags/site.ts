/**
 * A deno command found in a file (a "site"): its words from `deno` on,
 * which of them the shell expands, the kind of place it sits in, and how
 * to write it back with one flag changed, in the file's own syntax (a
 * shell line, a task string, a Dockerfile `CMD [...]` array), so a fix
 * quotes the project's own command.
 *
 * @module
 */

import { launchOf } from "./launch.ts";
import { type ShellWord, shellWords } from "./shell.ts";

/**
 * Where a command sits. A prompt can only be answered where a person runs
 * the command in a terminal: `task` (deno.json, package.json, Makefile,
 * Procfile) and `shebang`. `ci` (workflows, scripts under .github/ or ci/)
 * and `docker` run with no terminal, where Deno never prompts. `script` is
 * a shell script elsewhere, `docs` a Markdown code block.
 */
export type Context = "task" | "ci" | "docker" | "shebang" | "script" | "docs";

/** One deno command found in a file. */
export interface CommandSite {
  /** 1-based line. */
  line: number;
  /** What kind of place it is in. */
  context: Context;
  /** The words from `deno` on (a `deno` an image's entrypoint adds included). */
  words: string[];
  /** Per word: false when the shell expands part of it (`$VAR`, `$(...)`). */
  literal: boolean[];
  /** `DENO_NO_PROMPT=...` set in front of it. */
  noPromptEnv: boolean;
  /**
   * The command as the file writes it, with `words[from..to)` replaced.
   *
   * @param from First word to replace.
   * @param to End of the replaced words (`from` to insert).
   * @param replacement The new words.
   * @returns The rewritten command in the file's syntax.
   */
  rewrite(from: number, to: number, replacement: readonly string[]): string;
  /** Variables set for it (a Dockerfile's `ENV`), e.g. PORT. */
  env?: Readonly<Record<string, string>>;
  /** Ports a Dockerfile `EXPOSE`s for it. */
  exposed?: readonly number[];
  /**
   * Ports it is started to serve on: `docker run -p`'s container ports, or
   * the `EXPOSE`d ones for an image's `CMD`/`ENTRYPOINT` (not for `RUN`,
   * which runs at build time).
   */
  published?: readonly number[];
}

/** Part of a command as the file writes it: a shell line, or one array. */
export interface Segment {
  /** Its words. */
  words: ShellWord[];
  /** Writes the segment back with (possibly changed) words. */
  render(words: readonly ShellWord[]): string;
}

/** A deno word's place in the segments (null: added by an entrypoint). */
export type Origin = { segment: number; index: number } | null;

/**
 * Builds a site from deno's words and where each sits in the segments.
 *
 * @param line The 1-based line.
 * @param context The kind of place.
 * @param words Deno's words, from `deno` on.
 * @param origins Per word, its segment and index, or null when implied.
 * @param segments The command's parts as written.
 * @returns The site.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { execSegment, siteOf } from "./site.ts";
 * const cmd = ["run", "-A", "main.ts"].map((text) => ({ text, literal: true }));
 * const site = siteOf(
 *   9,
 *   "docker",
 *   [{ text: "deno", literal: true }, ...cmd],
 *   [null, ...cmd.map((_, index) => ({ segment: 0, index }))],
 *   [execSegment("CMD", cmd)],
 * );
 * assert.equal(site.rewrite(2, 3, ["--allow-net"]), 'CMD ["run", "--allow-net", "main.ts"]');
 * ```
 */
export function siteOf(
  line: number,
  context: Context,
  words: readonly ShellWord[],
  origins: readonly Origin[],
  segments: readonly Segment[],
): CommandSite {
  const texts = words.map((w) => w.text);
  const prefix = segments[0]?.words ?? [];
  const first = origins.find((o) => o !== null);
  const before = first ? prefix.slice(0, first.index) : [];
  return {
    line,
    context,
    words: texts,
    literal: words.map((w) => w.literal),
    noPromptEnv: first?.segment === 0 &&
      before.some((w) => /^DENO_NO_PROMPT=./.test(w.text)),
    rewrite(from, to, replacement) {
      const at = origins[from] ?? null;
      const previous = origins.slice(0, from).findLast((o) => o !== null);
      const place = at ??
        (previous ? { ...previous, index: previous.index + 1 } : null);
      if (!place) return texts.join(" ");
      const segment = segments[place.segment]!;
      const changed = [...segment.words];
      changed.splice(
        place.index,
        to - from,
        // A `<slot>` to fill in is shown as is, not quoted for a shell.
        ...replacement.map((text) => ({
          text,
          literal: !/<[^<>]+>/.test(text),
        })),
      );
      return segment.render(changed);
    },
  };
}

/**
 * A Dockerfile exec-form instruction (`CMD ["run", "main.ts"]`) as a segment.
 *
 * @param keyword The instruction as written (`CMD`, `ENTRYPOINT`, `RUN`).
 * @param words The array's strings.
 * @returns The segment, rendering `KEYWORD ["a", "b"]`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { execSegment } from "./site.ts";
 * const segment = execSegment("CMD", [{ text: "run", literal: true }]);
 * assert.equal(segment.render(segment.words), 'CMD ["run"]');
 * ```
 */
export function execSegment(keyword: string, words: ShellWord[]): Segment {
  return {
    words,
    render: (ws) =>
      `${keyword} [${ws.map((w) => JSON.stringify(w.text)).join(", ")}]`,
  };
}

/**
 * A shell command (or task string) as a segment, rendered with the
 * quoting a shell needs: literal words in single quotes when they hold
 * special characters, expanding words in double quotes.
 *
 * @param words The simple command's words.
 * @returns The segment.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { shellSegment } from "./site.ts";
 * const segment = shellSegment([
 *   { text: "deno", literal: true },
 *   { text: "eval", literal: true },
 *   { text: "console.log(1)", literal: true },
 * ]);
 * assert.equal(segment.render(segment.words), "deno eval 'console.log(1)'");
 * ```
 */
export function shellSegment(words: ShellWord[]): Segment {
  return { words, render: (ws) => ws.map(quoteWord).join(" ") };
}

/**
 * A word as a shell reads it back: bare when safe, else quoted.
 *
 * @param word The word.
 * @returns The quoted word.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { quoteWord } from "./site.ts";
 * assert.equal(quoteWord({ text: "a b", literal: true }), "'a b'");
 * assert.equal(quoteWord({ text: "$HOME/a b", literal: false }), '"$HOME/a b"');
 * assert.equal(quoteWord({ text: "console.log('hi')", literal: true }), `"console.log('hi')"`);
 * ```
 */
export function quoteWord(word: ShellWord): string {
  const text = word.text;
  if (/^[\w@%+=:,./~{}^-]+$/.test(text)) return text;
  // A `<slot>` to fill in is shown as is.
  if (/<[^<>]+>/.test(text) && !word.literal) return text;
  // An expanding word keeps its expansion: double quotes, not split.
  if (!word.literal) return `"${text.replace(/["\\]/g, "\\$&")}"`;
  return text.includes("'") && !/["\\$`!]/.test(text)
    ? `"${text}"`
    : `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * The deno commands in one logical shell line (or task string): each
 * simple command with deno in command position, looking inside `sh -c`.
 *
 * @param text The line.
 * @param line Its 1-based line number.
 * @param context The kind of place it is in.
 * @param segmentOf How a command is written back (default: a shell line).
 * @returns The sites.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { sitesFromShell } from "./site.ts";
 * const sites = sitesFromShell("adduser deno --ingroup deno && env X=1 deno run x.ts", 3, "script");
 * assert.deepEqual(sites.map((s) => s.words), [["deno", "run", "x.ts"]]);
 * ```
 */
export function sitesFromShell(
  text: string,
  line: number,
  context: Context,
  segmentOf: (words: ShellWord[]) => Segment = shellSegment,
): CommandSite[] {
  return shellWords(text).flatMap((words) =>
    sitesFromWords(words, line, context, segmentOf)
  );
}

/**
 * The deno command in one simple command's words, if deno is in command
 * position there.
 *
 * @param words The words.
 * @param line The 1-based line.
 * @param context The kind of place.
 * @param segmentOf How the words are written back (a shell line, an array).
 * @returns Zero or more sites (a `sh -c` script may hold several).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { sitesFromWords, shellSegment } from "./site.ts";
 * const words = ["which", "deno"].map((text) => ({ text, literal: true }));
 * assert.deepEqual(sitesFromWords(words, 1, "script", shellSegment), []);
 * ```
 */
export function sitesFromWords(
  words: ShellWord[],
  line: number,
  context: Context,
  segmentOf: (words: ShellWord[]) => Segment,
): CommandSite[] {
  const launch = launchOf(words.map((w) => w.text));
  if (launch === null) return [];
  if (launch.kind === "shell") {
    return sitesFromShell(launch.script, line, context);
  }
  const deno = words.slice(launch.at);
  const origins: Origin[] = deno.map((_, k) => ({
    segment: 0,
    index: launch.at + k,
  }));
  const site = launch.implied
    ? siteOf(
      line,
      context,
      [{ text: "deno", literal: true }, ...deno],
      [null, ...origins],
      [segmentOf(words)],
    )
    : siteOf(line, context, deno, origins, [segmentOf(words)]);
  // `docker run -p 1993:1993 ...`: the program listens on what is published.
  if (launch.published) Object.assign(site, { published: launch.published });
  return [site];
}
