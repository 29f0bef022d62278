/**
 * Option and result types of `sandbox.fs` in the `@deno/sandbox`-compatible
 * API, with the SDK's names and shapes; and `FsFile` (open files), which
 * airlock does not provide.
 *
 * @module
 */

import { unsupported } from "./errors.ts";

/**
 * What `stat` reports. airlock knows the kind, size and modification time;
 * the other fields are 0 (or false), and every time is the mtime.
 *
 * @example Usage
 * ```ts ignore
 * const info: FileInfo = await sandbox.fs.stat("main.ts");
 * console.log(info.isFile, info.size, info.mtime);
 * ```
 */
export interface FileInfo {
  /** A regular file. */
  isFile: boolean;
  /** A directory. */
  isDirectory: boolean;
  /** A symlink (never followed). */
  isSymlink: boolean;
  /** Size in bytes. */
  size: number;
  /** Last modification. */
  mtime: Date;
  /** The mtime (airlock does not track access). */
  atime: Date;
  /** The mtime. */
  birthtime: Date;
  /** The mtime. */
  ctime: Date;
  /** Always 0. */
  dev: number;
  /** Always 0. */
  ino: number;
  /** 0o100644 for a file, 0o40755 for a directory, 0o120777 for a symlink. */
  mode: number;
  /** Always 1. */
  nlink: number;
  /** Always 0 (the files belong to the sandbox's uid). */
  uid: number;
  /** Always 0. */
  gid: number;
  /** Always 0. */
  rdev: number;
  /** Always 0. */
  blksize: number;
  /** Always 0. */
  blocks: number;
  /** Always false. */
  isBlockDevice: boolean;
  /** Always false. */
  isCharDevice: boolean;
  /** Always false. */
  isFifo: boolean;
  /** Always false. */
  isSocket: boolean;
}

/**
 * One entry of `readDir`.
 *
 * @example Usage
 * ```ts ignore
 * const entries: DirEntry[] = await Array.fromAsync(sandbox.fs.readDir("."));
 * console.log(entries.map((entry) => entry.name));
 * ```
 */
export interface DirEntry {
  /** The name (not a path). */
  name: string;
  /** A regular file. */
  isFile: boolean;
  /** A directory. */
  isDirectory: boolean;
  /** A symlink (listed, never followed). */
  isSymlink: boolean;
}

/**
 * One entry of `walk`.
 *
 * @example Usage
 * ```ts ignore
 * const entries: WalkEntry[] = await Array.fromAsync(sandbox.fs.walk("src"));
 * console.log(entries.map((entry) => entry.path)); // ["src", "src/main.ts", ...]
 * ```
 */
export interface WalkEntry extends DirEntry {
  /** The path, joined to the root as given. */
  path: string;
}

/**
 * Options of `walk` (those of `@std/fs/walk`).
 *
 * @example Usage
 * ```ts
 * import type { WalkOptions } from "./mod.ts";
 * const options: WalkOptions = { exts: [".ts"], skip: [/node_modules/] };
 * console.log(options.exts);
 * ```
 */
export interface WalkOptions {
  /** How deep to go below the root (default: no limit). */
  maxDepth?: number;
  /** Yield files (default true). */
  includeFiles?: boolean;
  /** Yield directories, the root included (default true). */
  includeDirs?: boolean;
  /** Yield symlinks (default true). */
  includeSymlinks?: boolean;
  /** Must be false: airlock never follows symlinks. */
  followSymlinks?: boolean;
  /** Ignored (paths are never resolved through symlinks). */
  canonicalize?: boolean;
  /** Only files with one of these extensions (`".ts"` or `"ts"`). */
  exts?: string[];
  /** Only entries whose path matches one of these. */
  match?: RegExp[];
  /** Leave out entries whose path matches one of these (a directory with its contents). */
  skip?: RegExp[];
}

/**
 * Options of `expandGlob` (which is unsupported).
 *
 * @example Usage
 * ```ts
 * import type { ExpandGlobOptions } from "./mod.ts";
 * const options: ExpandGlobOptions = { root: "/scratch", globstar: true };
 * console.log(options.root);
 * ```
 */
export type ExpandGlobOptions = Omit<WalkOptions, "match" | "skip"> & {
  /** The directory the glob is relative to. */
  root?: string;
  /** Globs to leave out. */
  exclude?: string[];
  /** Whether `**` matches any depth. */
  globstar?: boolean;
  /** Match case-insensitively. */
  caseInsensitive?: boolean;
};

/**
 * Options of `readFile` and `readTextFile`.
 *
 * @example Usage
 * ```ts ignore
 * const options: ReadFileOptions = { signal: AbortSignal.timeout(1_000) };
 * console.log(await sandbox.fs.readTextFile("out.txt", options));
 * ```
 */
export interface ReadFileOptions {
  /** Aborting rejects the read. */
  signal?: AbortSignal;
}

/**
 * Options of `writeFile` and `writeTextFile`.
 *
 * @example Usage
 * ```ts ignore
 * const options: WriteFileOptions = { append: true };
 * await sandbox.fs.writeTextFile("log.txt", "one more line\n", options);
 * ```
 */
export interface WriteFileOptions {
  /** Add to the end instead of replacing the contents. */
  append?: boolean;
  /** Create the file when missing (default true); false refuses a missing one. */
  create?: boolean;
  /** Refuse a file that exists. */
  createNew?: boolean;
  /** Ignored: airlock sets 0644. */
  mode?: number;
  /** Aborting rejects the write before it starts. */
  signal?: AbortSignal;
}

/**
 * Options of `mkdir`.
 *
 * @example Usage
 * ```ts ignore
 * const options: MkdirOptions = { recursive: true };
 * await sandbox.fs.mkdir("data/raw", options);
 * ```
 */
export interface MkdirOptions {
  /** Create missing parents, and accept a directory that exists. */
  recursive?: boolean;
  /** Ignored: airlock sets 0755. */
  mode?: number;
}

/**
 * Options of `remove`.
 *
 * @example Usage
 * ```ts ignore
 * const options: RemoveOptions = { recursive: true };
 * await sandbox.fs.remove("data", options);
 * ```
 */
export interface RemoveOptions {
  /** Remove a non-empty directory with its contents. */
  recursive?: boolean;
}

/**
 * Options of `open` (which is unsupported).
 *
 * @example Usage
 * ```ts
 * import type { OpenOptions } from "./mod.ts";
 * const options: OpenOptions = { read: true, write: true, create: true };
 * console.log(options.create);
 * ```
 */
export interface OpenOptions {
  /** Open for reading. */
  read?: boolean;
  /** Open for writing. */
  write?: boolean;
  /** Write at the end. */
  append?: boolean;
  /** Empty the file first. */
  truncate?: boolean;
  /** Create the file when missing. */
  create?: boolean;
  /** Refuse a file that exists. */
  createNew?: boolean;
  /** Permission bits of a new file. */
  mode?: number;
}

/**
 * An open file: unsupported locally (`sandbox.fs.open` and `create`
 * reject). Exported so that imports keep working; constructing one throws.
 *
 * @example Usage
 * ```ts
 * import { AirlockUnsupportedError, FsFile } from "./mod.ts";
 * import assert from "node:assert/strict";
 * assert.throws(() => new FsFile(), AirlockUnsupportedError);
 * ```
 */
export class FsFile {
  /** Throws: airlock's `sandbox.fs` works on whole files. */
  constructor() {
    unsupported(
      "FsFile",
      "airlock's sandbox.fs works on whole files; use readFile/writeFile",
    );
  }
}

/**
 * Seek origins (for `FsFile`, which is unsupported).
 *
 * @example Usage
 * ```ts
 * import { SeekMode } from "./mod.ts";
 * console.log(SeekMode.End); // 2
 * ```
 */
export enum SeekMode {
  /** From the start of the file. */
  Start = 0,
  /** From the current position. */
  Current = 1,
  /** From the end of the file. */
  End = 2,
}
