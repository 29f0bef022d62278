/**
 * `sandbox.fs.walk()` of the `@deno/sandbox`-compatible API: `@std/fs/walk`'s
 * options over the sandbox's files, never following a symlink (airlock's
 * file API lists symlinks and never resolves them).
 *
 * @module
 */

import type { DirEntry, FileInfo, WalkEntry, WalkOptions } from "./fs_types.ts";
import { join, normalise } from "./paths.ts";

/**
 * What a walk reads: `sandbox.fs`'s `stat` and `readDir`.
 *
 * @example Usage
 * ```ts ignore
 * const fs: WalkableFs = sandbox.fs;
 * for await (const entry of walkTree(fs, ".", { maxDepth: 1 })) console.log(entry.name);
 * ```
 */
export interface WalkableFs {
  /** Describes a path (without following a symlink). */
  stat(path: string): Promise<FileInfo>;
  /** Lists a directory. */
  readDir(path: string): AsyncIterable<DirEntry>;
}

/**
 * Walks a tree as `@std/fs/walk` does: the root first, then each entry
 * depth-first, filtered by `options`; symlinks are listed, never followed
 * (`followSymlinks` is refused by the caller).
 *
 * @param fs Where to read.
 * @param path The root (relative paths start at /scratch).
 * @param options `@std/fs/walk`'s options.
 * @returns The entries, paths joined to the root as given.
 *
 * @example Usage
 * ```ts ignore
 * for await (const entry of walkTree(sandbox.fs, "src", { exts: [".ts"] })) {
 *   console.log(entry.path);
 * }
 * ```
 */
export async function* walkTree(
  fs: WalkableFs,
  path: string,
  options: WalkOptions,
): AsyncGenerator<WalkEntry> {
  const {
    maxDepth = Infinity,
    includeFiles = true,
    includeDirs = true,
    includeSymlinks = true,
    exts,
    match,
    skip,
  } = options;
  const wanted = (entry: WalkEntry): boolean =>
    (entry.isFile
      ? includeFiles
      : entry.isDirectory
      ? includeDirs
      : includeSymlinks) &&
    (!exts || !entry.isFile ||
      exts.some((e) => entry.path.endsWith(e.startsWith(".") ? e : `.${e}`))) &&
    (!match || match.some((r) => r.test(entry.path))) &&
    !(skip?.some((r) => r.test(entry.path)));
  const root = normalise(path);
  const rootInfo = await fs.stat(root);
  const top: WalkEntry = {
    path: root,
    name: root.split("/").filter(Boolean).at(-1) ?? root,
    isFile: rootInfo.isFile,
    isDirectory: rootInfo.isDirectory,
    isSymlink: rootInfo.isSymlink,
  };
  if (maxDepth < 0) return;
  if (wanted(top)) yield top;
  if (!top.isDirectory || maxDepth < 1) return;
  const visit = async function* (
    fs: WalkableFs,
    dir: string,
    depth: number,
  ): AsyncGenerator<WalkEntry> {
    for await (const entry of fs.readDir(dir)) {
      const item = { ...entry, path: join(dir, entry.name) };
      if (skip?.some((r) => r.test(item.path))) continue;
      if (wanted(item)) yield item;
      if (item.isDirectory && depth < maxDepth) {
        yield* visit(fs, item.path, depth + 1);
      }
    }
  };
  yield* visit(fs, root, 1);
}
