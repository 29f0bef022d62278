/**
 * `sandbox.fs.upload()` and `sandbox.fs.download()` of the
 * `@deno/sandbox`-compatible API: a host file or directory tree into the
 * sandbox's files, and back. A directory lands as `<dest>/<its name>`, as
 * the SDK lays it out; the destination directory is created when missing
 * (the SDK's own example uploads to a `./dest` that does not exist yet).
 *
 * Symlinks are refused on both sides, before anything is written: airlock
 * never makes one in the sandbox's files, and one a program made must not
 * land on the host, where the user's tools would follow it.
 *
 * @module
 */

import { unsupported } from "./errors.ts";
import type { FileInfo, WalkEntry, WalkOptions } from "./fs_types.ts";
import { join, toPath } from "./paths.ts";

const NO_LINKS =
  "airlock never creates, reads or follows symlinks in the sandbox's files (a program could point one anywhere on the host)";

/**
 * What a transfer uses of `sandbox.fs`.
 *
 * @example Usage
 * ```ts ignore
 * const fs: TransferFs = sandbox.fs;
 * await upload(fs, "./my-project", ".");
 * ```
 */
export interface TransferFs {
  /** Writes a file. */
  writeFile(path: string, data: Uint8Array): Promise<void>;
  /** Reads a file. */
  readFile(path: string): Promise<Uint8Array>;
  /** Creates a directory. */
  mkdir(path: string, options: { recursive: boolean }): Promise<void>;
  /** Describes a path without following a symlink. */
  stat(path: string): Promise<FileInfo>;
  /** The absolute sandbox path. */
  realPath(path: string): Promise<string>;
  /** Walks a tree (symlinks listed, never followed). */
  walk(path: string, options?: WalkOptions): AsyncIterable<WalkEntry>;
}

/**
 * Copies a host file to `sandboxPath`, or a host directory tree to
 * `sandboxPath/<its name>` (creating `sandboxPath` when missing, merging
 * into what is there).
 *
 * @param fs The sandbox's files.
 * @param localPath A host path (relative to this process's cwd) or file URL.
 * @param sandboxPath A sandbox path (relative ones start at /scratch).
 * @throws {AirlockUnsupportedError} When the host tree holds a symlink
 *   (nothing is written then).
 *
 * @example Usage
 * ```ts ignore
 * await upload(sandbox.fs, "./my-project", "./dest");
 * console.log(await sandbox.fs.readTextFile("dest/my-project/main.ts"));
 * ```
 */
export async function upload(
  fs: TransferFs,
  localPath: string | URL,
  sandboxPath: string | URL,
): Promise<void> {
  const local = await Deno.realPath(localPath);
  const target = toPath(sandboxPath);
  const info = await Deno.stat(local);
  if (info.isFile) {
    await fs.writeFile(target, await Deno.readFile(local));
    return;
  }
  if (!info.isDirectory) {
    throw new TypeError(
      `Cannot upload '${local}': it is neither a file nor a directory`,
    );
  }
  // Read first, write after: a symlink anywhere refuses the whole upload.
  const tree = await hostTree(local);
  const root = join(target, local.split("/").at(-1) || ".");
  await fs.mkdir(root, { recursive: true });
  for (const { relative, isDirectory } of tree) {
    const dest = join(root, relative);
    if (isDirectory) await fs.mkdir(dest, { recursive: true });
    else await fs.writeFile(dest, await Deno.readFile(`${local}/${relative}`));
  }
}

/**
 * Copies a sandbox file to `localPath`, or a sandbox directory tree to
 * `localPath/<its name>` (creating `localPath` when missing; existing host
 * files of the same names are overwritten, as the SDK does).
 *
 * @param fs The sandbox's files.
 * @param sandboxPath A sandbox path (relative ones start at /scratch).
 * @param localPath A host path (relative to this process's cwd) or file URL.
 * @throws {AirlockUnsupportedError} When the sandbox tree holds a symlink
 *   (nothing is written then).
 *
 * @example Usage
 * ```ts ignore
 * await download(sandbox.fs, "out", "./results");
 * console.log(await Deno.readTextFile("./results/out/report.txt"));
 * ```
 */
export async function download(
  fs: TransferFs,
  sandboxPath: string | URL,
  localPath: string | URL,
): Promise<void> {
  const source = await fs.realPath(toPath(sandboxPath));
  const local = toPath(localPath);
  const info = await fs.stat(source);
  if (info.isSymlink) refuseLink("download", source);
  if (info.isFile) {
    await Deno.writeFile(local, await fs.readFile(source));
    return;
  }
  // Read the listing first: a symlink anywhere refuses the whole download.
  const entries = await Array.fromAsync(fs.walk(source));
  for (const entry of entries) {
    if (entry.isSymlink) refuseLink("download", entry.path);
  }
  const parent = source.slice(0, source.lastIndexOf("/"));
  await Deno.mkdir(local, { recursive: true });
  for (const entry of entries) {
    const dest = `${local}/${entry.path.slice(parent.length + 1)}`;
    if (entry.isDirectory) await Deno.mkdir(dest, { recursive: true });
    else if (entry.isFile) {
      await Deno.writeFile(dest, await fs.readFile(entry.path));
    }
  }
}

/** A host directory's entries, each directory before its contents. */
async function hostTree(
  root: string,
): Promise<{ relative: string; isDirectory: boolean }[]> {
  const out: { relative: string; isDirectory: boolean }[] = [];
  const visit = async (relative: string): Promise<void> => {
    const dir = relative ? `${root}/${relative}` : root;
    const entries = await Array.fromAsync(Deno.readDir(dir));
    entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    for (const entry of entries) {
      const path = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isSymlink) refuseLink("upload", `${root}/${path}`);
      if (entry.isDirectory) {
        out.push({ relative: path, isDirectory: true });
        await visit(path);
      } else if (entry.isFile) out.push({ relative: path, isDirectory: false });
      // Sockets, FIFOs and devices are skipped, as the SDK skips them.
    }
  };
  await visit("");
  return out;
}

function refuseLink(op: "upload" | "download", path: string): never {
  return unsupported(`sandbox.fs.${op}() of the symlink '${path}'`, NO_LINKS);
}
