/**
 * Which paths the flag audit skips: `--exclude` globs, and by default the
 * trees that are not the project's own commands:
 * - dependencies and VCS data: `node_modules`, `vendor`, `.git`, `.hg`,
 *   `.svn` directories, anywhere;
 * - Markdown that records the past rather than instructs: files under a
 *   docs archive folder (`old`, `archive`, `archived`, `deprecated`,
 *   `legacy`, `versioned_docs`) and changelog-style files (`CHANGELOG`,
 *   `CHANGES`, `HISTORY`, `NEWS`, `RELEASES`, `Releases.md`...). Their
 *   commands are quotes of old versions, not what anyone runs today. Only
 *   Markdown: a script or Dockerfile in such a folder is still read.
 *
 * Globs follow .gitignore's shape: a pattern without a slash matches a
 * name at any depth (`docs` skips every `docs` folder), one with a slash
 * is anchored to the audited directory (`docs/old`, `tests/**\/*.md`); `*`
 * matches within a name, `**` across folders, `?` one character, `{a,b}`
 * either, `[abc]` a class; a trailing `/` matches directories only.
 *
 * @module
 */

/** Why a path is skipped: the glob or default rule that matched. */
export type Exclude = (path: string, isDirectory: boolean) => string | null;

const DEFAULT_DIRS = new Set(["node_modules", "vendor", ".git", ".hg", ".svn"]);
const ARCHIVE_DIRS =
  /^(?:old|archive|archived|archives|deprecated|legacy|versioned_docs)$/i;
const CHANGELOG =
  /^(?:change[-_. ]?log|changes|history|news|releases?|release[-_. ]?notes)(?:[-_.][\w-]*)?\.(?:md|markdown|mdx)$/i;
const MARKDOWN = /\.(?:md|markdown|mdx)$/i;

/** Options for {@linkcode excludeFilter}. */
export interface ExcludeOptions {
  /** Apply the default exclusions (default: true). */
  defaults?: boolean;
}

/**
 * Compiles exclusion globs (and the defaults) into one test.
 *
 * @param globs The `--exclude` patterns, relative to the audited directory.
 * @param options Whether the defaults apply.
 * @returns A test of a path relative to the audited directory (`/`
 * separated): the rule that skips it, or null.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { excludeFilter } from "./exclude.ts";
 * const skip = excludeFilter(["fixtures", "examples/**\/*.md"]);
 * assert.equal(skip("tests/fixtures", true), "--exclude fixtures");
 * assert.equal(skip("examples/a/b.md", false), "--exclude examples/**\/*.md");
 * assert.equal(skip("docs/old/setup.md", false), "default: docs archive (old/)");
 * assert.equal(skip("CHANGELOG.md", false), "default: changelog");
 * assert.equal(skip("src/old/run.sh", false), null);
 * ```
 */
export function excludeFilter(
  globs: readonly string[],
  options: ExcludeOptions = {},
): Exclude {
  const compiled = globs.map((glob) => ({ glob, test: compileGlob(glob) }));
  const defaults = options.defaults ?? true;
  return (path, isDirectory) => {
    for (const { glob, test } of compiled) {
      if (test(path, isDirectory)) return `--exclude ${glob}`;
    }
    if (!defaults) return null;
    const segments = path.split("/");
    const name = segments.at(-1) ?? "";
    if (isDirectory && DEFAULT_DIRS.has(name)) return `default: ${name}/`;
    if (!isDirectory && MARKDOWN.test(name)) {
      const archive = segments.slice(0, -1).find((s) => ARCHIVE_DIRS.test(s));
      if (archive) return `default: docs archive (${archive}/)`;
      if (CHANGELOG.test(name)) return "default: changelog";
    }
    return null;
  };
}

/**
 * A glob as a test of relative paths: matching a directory skips what is
 * under it too, so a path also matches when one of its parents does.
 */
function compileGlob(glob: string): (path: string, dir: boolean) => boolean {
  let pattern = glob.replaceAll("\\", "/").replace(/^\.\//, "");
  const dirOnly = pattern.endsWith("/");
  pattern = pattern.replace(/\/+$/, "");
  const anchored = pattern.includes("/");
  pattern = pattern.replace(/^\//, "");
  const regex = new RegExp(
    `^${anchored ? "" : "(?:.*/)?"}${globToRegex(pattern)}$`,
  );
  return (path, dir) => {
    // The path itself, or any directory above it.
    const segments = path.split("/");
    for (let n = segments.length; n >= 1; n--) {
      const prefix = segments.slice(0, n).join("/");
      const isDir = n < segments.length || dir;
      if ((!dirOnly || isDir) && regex.test(prefix)) return true;
    }
    return false;
  };
}

function globToRegex(glob: string): string {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      // `**/` matches zero or more folders; a trailing `**` everything.
      if (glob[i + 2] === "/") {
        out += "(?:.*/)?";
        i += 2;
      } else {
        out += ".*";
        i++;
      }
    } else if (c === "*") out += "[^/]*";
    else if (c === "?") out += "[^/]";
    else if (c === "{") {
      const close = glob.indexOf("}", i);
      if (close === -1) out += "\\{";
      else {
        out += `(?:${
          glob.slice(i + 1, close).split(",").map(globToRegex).join("|")
        })`;
        i = close;
      }
    } else if (c === "[") {
      const close = glob.indexOf("]", i + 1);
      if (close === -1) out += "\\[";
      else {
        const body = glob.slice(i + 1, close).replace(/^!/, "^")
          .replace(/[\\\]]/g, "\\$&");
        out += `[${body}]`;
        i = close;
      }
    } else out += c.replace(/[.+^$()|\\]/g, "\\$&");
  }
  return out;
}
