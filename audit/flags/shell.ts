/**
 * Tokenises shell-like text (scripts, Makefile recipes, CI `run:` lines,
 * task strings) far enough to find commands: logical lines joined at a
 * trailing backslash, split into simple commands of unquoted words. It
 * never expands anything: variables stay as written.
 *
 * @module
 */

/** One word of a simple command, quotes removed. */
export interface ShellWord {
  /** The word's text, quotes removed, variables as written. */
  text: string;
  /**
   * False when the shell would expand part of it (`$VAR`, `$(...)` or a
   * backtick outside single quotes): its value is not what is written.
   */
  literal: boolean;
}

/**
 * Splits one logical shell line into simple commands: on `&&`, `||`, `;`,
 * `|`, `&`, parentheses, backticks and `$(`; quotes removed, redirections
 * and `#` comments dropped. Variables stay as written (`$HOME`).
 *
 * @param line One logical line (continuations already joined).
 * @returns The simple commands, each as its words.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { shellCommands } from "./shell.ts";
 * assert.deepEqual(
 *   shellCommands(`a && deno run -R 'x y.ts' 2>/dev/null # note`),
 *   [["a"], ["deno", "run", "-R", "x y.ts"]],
 * );
 * ```
 */
export function shellCommands(line: string): string[][] {
  return shellWords(line).map((words) => words.map((w) => w.text));
}

/**
 * {@linkcode shellCommands}, with each word marked literal or not: a word
 * with `$` or a backtick outside single quotes is what the shell makes of
 * it at run time, not what is written.
 *
 * @param line One logical line (continuations already joined).
 * @returns The simple commands, each as its words.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { shellWords } from "./shell.ts";
 * const [words] = shellWords(`deno eval 'console.log($x)' "$CODE"`);
 * assert.deepEqual(words!.map((w) => w.literal), [true, true, true, false]);
 * ```
 */
export function shellWords(line: string): ShellWord[][] {
  const commands: ShellWord[][] = [];
  let words: ShellWord[] = [];
  let word = "";
  let literal = true;
  let inWord = false;
  let redirectTarget = false;
  const expands = (next: string | undefined) =>
    next !== undefined && /[\w{(@*#?$!-]/.test(next);
  const endWord = () => {
    if (inWord && !redirectTarget) words.push({ text: word, literal });
    else if (inWord) redirectTarget = false;
    word = "";
    literal = true;
    inWord = false;
  };
  const endCommand = () => {
    endWord();
    redirectTarget = false;
    if (words.length > 0) commands.push(words);
    words = [];
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const close = line.indexOf("'", i + 1);
      const end = close === -1 ? line.length : close;
      word += line.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      inWord = true;
      for (i++; i < line.length && line[i] !== '"'; i++) {
        if (line[i] === "\\" && '"\\$`'.includes(line[i + 1] ?? "x")) i++;
        else if (line[i] === "`" || (line[i] === "$" && expands(line[i + 1]))) {
          literal = false;
        }
        word += line[i];
      }
    } else if (c === "\\") {
      inWord = true;
      word += line[++i] ?? "";
    } else if (" \t\r\n".includes(c)) {
      endWord();
    } else if (c === "#" && !inWord) {
      break;
    } else if (c === "$" && line[i + 1] === "(") {
      endCommand();
      i++;
    } else if ("&|;()`".includes(c)) {
      endCommand();
      if (line[i + 1] === c && c !== "(" && c !== ")") i++;
    } else if (c === "<" || c === ">") {
      // `2>&1`, `>/dev/null`, `<<EOF`: the fd number and target are no words.
      if (inWord && /^\d+$/.test(word)) {
        word = "";
        inWord = false;
      } else endWord();
      while ("<>&".includes(line[i + 1] ?? "x")) i++;
      redirectTarget = true;
    } else {
      if (c === "$" && expands(line[i + 1])) literal = false;
      inWord = true;
      word += c;
    }
  }
  endCommand();
  return commands;
}

/**
 * Joins lines that end in an unescaped backslash to the next, as a shell
 * does, keeping each logical line's first line number.
 *
 * @param lines The file's lines.
 * @returns The logical lines, with their 1-based first line numbers.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { logicalLines } from "./shell.ts";
 * assert.deepEqual(logicalLines(["deno run \\", "-N x.ts", "deno test"]), [
 *   { text: "deno run  -N x.ts", line: 1 },
 *   { text: "deno test", line: 3 },
 * ]);
 * ```
 */
export function logicalLines(
  lines: readonly string[],
): { text: string; line: number }[] {
  const out: { text: string; line: number }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let text = lines[i]!;
    while (/(?:^|[^\\])(?:\\\\)*\\$/.test(text) && i + 1 < lines.length) {
      text = text.slice(0, -1) + " " + lines[++i]!;
    }
    out.push({ text, line: start });
  }
  return out;
}
