/**
 * Command-line parsing for every `airlock` subcommand: `node:util`'s
 * `parseArgs`, with its errors said in airlock's words (the option named in
 * balanced quotes, the closest known option suggested, how to pass a
 * program argument that starts with '-').
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";

/**
 * A bad command line; the CLIs print it with a pointer to `--help` and exit
 * 125 (2 for `audit-flags`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { UsageError } from "./_args.ts";
 * assert.equal(new UsageError("Missing the program").name, "UsageError");
 * ```
 */
export class UsageError extends Error {
  /** @param message What is wrong and what to do instead. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The options table of `parseArgs`. */
export type OptionsSpec = NonNullable<ParseArgsConfig["options"]>;

/**
 * `parseArgs` with positionals allowed and strict options, its errors turned
 * into {@linkcode UsageError}s that a person can act on.
 *
 * @param argv The arguments after the subcommand.
 * @param options The subcommand's options.
 * @param command The subcommand's name for messages (`airlock run`).
 * @param forProgram Whether arguments after `--` go to a program (then an
 *   unknown option's message says how to pass it there).
 * @returns What `parseArgs` returns.
 * @throws {UsageError} For an unknown option, a missing or extra value.
 *
 * @example An unknown option gets a suggestion
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommandLine } from "./_args.ts";
 * const options = { timeout: { type: "string" as const } };
 * assert.throws(
 *   () => parseCommandLine(["--timout", "5s"], options, "airlock run", true),
 *   /^UsageError: Unknown option '--timout' for 'airlock run': did you mean '--timeout'\? \(to pass '--timout' to the program, put it after '--'\)$/,
 * );
 * ```
 */
export function parseCommandLine<T extends OptionsSpec>(
  argv: string[],
  options: T,
  command: string,
  forProgram = false,
): ReturnType<typeof parseArgs<{ options: T; allowPositionals: true }>> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true });
  } catch (error) {
    throw new UsageError(explain(error, options, command, forProgram));
  }
}

/** parseArgs's error, in airlock's words. */
function explain(
  error: unknown,
  options: OptionsSpec,
  command: string,
  forProgram: boolean,
): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string }).code;
  // node:util quotes the option as '--name' or '-n' in its first sentence.
  const named = /'(-{1,2}[^'\s]*)/.exec(message)?.[1] ?? "";
  const flag = named.replace(/=.*$/, "");
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const guess = closestOption(flag, options);
    return `Unknown option '${flag}' for '${command}'` +
      (guess ? `: did you mean '${guess}'?` : "") +
      (forProgram
        ? ` (to pass '${flag}' to the program, put it after '--')`
        : "");
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    const name = flag.replace(/^-+/, "");
    const spec = options[name] ??
      Object.values(options).find((o) => `-${o.short}` === flag);
    if (spec?.type === "string") {
      return `Cannot use '${flag}' without a value: give one, e.g. '${flag} VALUE' (see --help)`;
    }
    return `Cannot give '${flag}' a value: it is a switch, write '${flag}' alone`;
  }
  return message;
}

/**
 * The known option spelled most like `flag`, if one is close enough to be
 * a typo (edit distance at most 2, or a prefix of it).
 *
 * @param flag The unknown option as written (`--timout`).
 * @param options The known options.
 * @returns `--name` of the closest option, or null.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { closestOption } from "./_args.ts";
 * const options = { json: { type: "boolean" as const }, input: { type: "string" as const } };
 * assert.equal(closestOption("--jsno", options), "--json");
 * assert.equal(closestOption("--inp", options), "--input");
 * assert.equal(closestOption("--zzzzzz", options), null);
 * ```
 */
export function closestOption(
  flag: string,
  options: OptionsSpec,
): string | null {
  const name = closestWord(flag.replace(/^-+/, ""), Object.keys(options));
  return name === null ? null : `--${name}`;
}

/**
 * The candidate spelled most like `word` (case-insensitive), if it is a
 * likely typo: an edit distance of at most 2, or `word` is a prefix of it of
 * at least 3 characters.
 *
 * @param word What was written.
 * @param candidates What it could have meant.
 * @returns The closest candidate, or null.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { closestWord } from "./_args.ts";
 * assert.equal(closestWord("rn", ["run", "audit", "serve"]), "run");
 * assert.equal(closestWord("audit_flags", ["audit", "audit-flags"]), "audit-flags");
 * ```
 */
export function closestWord(
  word: string,
  candidates: readonly string[],
): string | null {
  const wanted = word.toLowerCase();
  if (!wanted) return null;
  let best: { name: string; distance: number } | null = null;
  for (const name of candidates) {
    const distance = name.startsWith(wanted) && wanted.length >= 3
      ? 1
      : editDistance(wanted, name);
    if (distance <= 2 && (best === null || distance < best.distance)) {
      best = { name, distance };
    }
  }
  return best?.name ?? null;
}

/** Levenshtein distance (insert, delete, substitute, each 1). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}
