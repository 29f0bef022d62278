/**
 * Walks a project for the flag audit: which files are read (not links
 * inside the project, not dependencies or VCS data) and which are skipped
 * as data (big or binary).
 *
 * @module
 */

import { join } from "node:path";

/** Directories never walked: dependencies and VCS data, not the project's commands. */
const SKIP_DIRS = new Set(["node_modules", ".git", "vendor"]);
/** Larger files are data, not scripts. */
const MAX_FILE_BYTES = 1024 * 1024;

/**
 * The files of a project, sorted, for the flag audit to read: a directory
 * is walked without following the symlinks inside it and skipping
 * node_modules, .git and vendor; a file is itself. The path given is
 * followed even when it is a link.
 *
 * @param path The directory or file (absolute).
 * @param excluded Absolute paths to skip, with everything under them.
 * @returns The files' absolute paths.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { projectFiles } from "./walk.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/node_modules`);
 * await Deno.writeTextFile(`${dir}/node_modules/x.sh`, "deno run -A x.ts");
 * await Deno.writeTextFile(`${dir}/deno.json`, "{}");
 * assert.deepEqual(await projectFiles(dir), [`${dir}/deno.json`]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function projectFiles(
  path: string,
  excluded: readonly string[] = [],
): Promise<string[]> {
  const files: string[] = [];
  await walk(path, excluded, files, true);
  return files;
}

async function walk(
  path: string,
  excluded: readonly string[],
  out: string[],
  top = false,
): Promise<void> {
  if (excluded.some((e) => path === e || path.startsWith(`${e}/`))) return;
  // The path given is followed; symlinks inside it are not (a link to / or
  // to a loop would walk forever, and its files are not the project's).
  const info = top ? await Deno.stat(path) : await Deno.lstat(path);
  if (info.isFile) {
    out.push(path);
    return;
  }
  if (!info.isDirectory) return;
  const names: string[] = [];
  for await (const entry of Deno.readDir(path)) {
    if (!(entry.isDirectory && SKIP_DIRS.has(entry.name))) {
      names.push(entry.name);
    }
  }
  for (const name of names.sort()) await walk(join(path, name), excluded, out);
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
