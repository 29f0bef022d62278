/**
 * Option and result types of `sandbox.fs` in the `@deno/sandbox`-compatible
 * API, with the SDK's names and shapes; and `FsFile` (open files), which
 * airlock does not provide.
 *
 * @module
 */

import { unsupported } from "./errors.ts";

/** What `stat` reports (fields airlock does not know are 0, times the mtime). */
export interface FileInfo {
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
  size: number;
  mtime: Date;
  atime: Date;
  birthtime: Date;
  ctime: Date;
  dev: number;
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
  blocks: number;
  isBlockDevice: boolean;
  isCharDevice: boolean;
  isFifo: boolean;
  isSocket: boolean;
}

/** One directory entry. */
export interface DirEntry {
  name: string;
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
}

/** One entry of `walk`. */
export interface WalkEntry extends DirEntry {
  /** The path, joined to the root as given. */
  path: string;
}

/** Options of `walk` (those of `@std/fs/walk`). */
export interface WalkOptions {
  maxDepth?: number;
  includeFiles?: boolean;
  includeDirs?: boolean;
  includeSymlinks?: boolean;
  /** Must be false: airlock never follows symlinks. */
  followSymlinks?: boolean;
  canonicalize?: boolean;
  exts?: string[];
  match?: RegExp[];
  skip?: RegExp[];
}

/** Options of `expandGlob` (unsupported). */
export type ExpandGlobOptions = Omit<WalkOptions, "match" | "skip"> & {
  root?: string;
  exclude?: string[];
  globstar?: boolean;
  caseInsensitive?: boolean;
};

/** Options of `readFile`/`readTextFile`. */
export interface ReadFileOptions {
  signal?: AbortSignal;
}

/** Options of `writeFile`/`writeTextFile` (`mode` is ignored: airlock sets 0644). */
export interface WriteFileOptions {
  append?: boolean;
  create?: boolean;
  createNew?: boolean;
  mode?: number;
  signal?: AbortSignal;
}

/** Options of `mkdir` (`mode` is ignored: airlock sets 0755). */
export interface MkdirOptions {
  recursive?: boolean;
  mode?: number;
}

/** Options of `remove`. */
export interface RemoveOptions {
  recursive?: boolean;
}

/** Options of `open` (unsupported). */
export interface OpenOptions {
  read?: boolean;
  write?: boolean;
  append?: boolean;
  truncate?: boolean;
  create?: boolean;
  createNew?: boolean;
  mode?: number;
}

/** An open file: unsupported locally (see `sandbox.fs.open`). */
export class FsFile {
  constructor() {
    unsupported(
      "FsFile",
      "airlock's sandbox.fs works on whole files; use readFile/writeFile",
    );
  }
}

/** Seek origins (for `FsFile`, which is unsupported). */
export enum SeekMode {
  Start = 0,
  Current = 1,
  End = 2,
}
