/**
 * Walks a project for the flag audit: which files are read (not links
 * inside the project, not what the exclusions skip) and which are skipped
 * as data (big or binary).
 *
 * @module
 */

import { isAbsolute, join, relative } from "node:path";
import { type Exclude, excludeFilter } from "./exclude.ts";

/** Larger files are data, not scripts. */
const MAX_FILE_BYTES = 1024 * 1024;

/** The files of a project to read, and what was skipped and why. */
export interface ProjectWalk {
  /** The files' absolute paths, sorted. */
  files: string[];
  /** Skipped files and directories (relative), with the rule that skipped them. */
  skipped: { path: string; rule: string }[];
}

/**
 * The files of a project, sorted, for the flag audit to read: a directory
 * is walked without following the symlinks inside it, skipping what
 * `exclude` names (by default node_modules, vendor, VCS data, and
 * Markdown in docs archives and changelogs: see exclude.ts); a file is
 * itself. The path given is followed even when it is a link.
 *
 * @param path The directory or file (absolute).
 * @param exclude The exclusion test (default: the default exclusions).
 * @returns The files, and what was skipped.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { projectFiles } from "./walk.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/node_modules`);
 * await Deno.writeTextFile(`${dir}/node_modules/x.sh`, "deno run -A x.ts");
 * await Deno.writeTextFile(`${dir}/deno.json`, "{}");
 * const walked = await projectFiles(dir);
 * assert.deepEqual(walked.files, [`${dir}/deno.json`]);
 * assert.deepEqual(walked.skipped, [{ path: "node_modules", rule: "default: node_modules/" }]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function projectFiles(
  path: string,
  exclude: Exclude = excludeFilter([]),
): Promise<ProjectWalk> {
  const walked: ProjectWalk = { files: [], skipped: [] };
  await walk(path, path, exclude, walked, true);
  return walked;
}

async function walk(
  root: string,
  path: string,
  exclude: Exclude,
  out: ProjectWalk,
  top = false,
): Promise<void> {
  // The path given is followed; symlinks inside it are not (a link to / or
  // to a loop would walk forever, and its files are not the project's).
  const info = top ? await Deno.stat(path) : await Deno.lstat(path);
  if (!top) {
    const rel = relative(root, path).replaceAll("\\", "/");
    const rule = exclude(rel, info.isDirectory);
    if (rule !== null) {
      out.skipped.push({ path: rel, rule });
      return;
    }
  }
  if (info.isFile) {
    out.files.push(path);
    return;
  }
  if (!info.isDirectory) return;
  const names: string[] = [];
  for await (const entry of Deno.readDir(path)) names.push(entry.name);
  for (const name of names.sort()) {
    await walk(root, join(path, name), exclude, out);
  }
}

/**
 * A file's text, or null for a file over 1 MiB or one with a NUL byte in
 * its first 8,000 bytes: data and binaries, not scripts.
 *
 * @param file The file's path.
 * @returns Its text, or null.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readText } from "./walk.ts";
 * const file = await Deno.makeTempFile();
 * await Deno.writeFile(file, new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0]));
 * assert.equal(await readText(file), null);
 * await Deno.remove(file);
 * ```
 */
export async function readText(file: string): Promise<string | null> {
  const info = await Deno.stat(file);
  if (info.size > MAX_FILE_BYTES) return null;
  const bytes = await Deno.readFile(file);
  if (bytes.subarray(0, 8000).includes(0)) return null;
  return new TextDecoder().decode(bytes);
}

/**
 * A file beside an audited single file (the script its command runs), read
 * as the directory walk would: only inside `top`, through no symlink (a
 * link planted in the project must not make this trusted reader open a
 * file outside it), not excluded, and text. Null otherwise.
 *
 * @param top The audited file's directory (absolute).
 * @param path The file wanted (absolute).
 * @param exclude The exclusion test the walk uses.
 * @returns Its text, or null.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readBesideSync } from "./walk.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/main.ts`, "Deno.serve(() => new Response());");
 * await Deno.symlink("/etc/hostname", `${dir}/link.ts`);
 * assert.match(readBesideSync(dir, `${dir}/main.ts`) ?? "", /Deno\.serve/);
 * assert.equal(readBesideSync(dir, `${dir}/link.ts`), null);
 * assert.equal(readBesideSync(dir, "/etc/hostname"), null);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function readBesideSync(
  top: string,
  path: string,
  exclude: Exclude = excludeFilter([]),
): string | null {
  const rel = relative(top, path).replaceAll("\\", "/");
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return null;
  try {
    const parts = rel.split("/");
    for (let k = 1; k <= parts.length; k++) {
      const info = Deno.lstatSync(join(top, ...parts.slice(0, k)));
      const last = k === parts.length;
      if (info.isSymlink || (last ? !info.isFile : !info.isDirectory)) {
        return null;
      }
      if (exclude(parts.slice(0, k).join("/"), !last) !== null) return null;
      if (last && info.size > MAX_FILE_BYTES) return null;
    }
    const bytes = Deno.readFileSync(path);
    if (bytes.subarray(0, 8000).includes(0)) return null;
    return new TextDecoder().decode(bytes);
  } catch {
    return null;
  }
}
