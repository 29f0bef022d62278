/**
 * `sandbox.fs` of the `@deno/sandbox`-compatible API, on airlock's
 * `SandboxFs` (the scratch directory, mounted at /scratch in the sandbox).
 *
 * Paths: relative ones are relative to /scratch, which stands in for the
 * SDK's working directory (it is the programs' cwd); absolute ones must be
 * under /scratch; one that climbs above `/` is refused (`paths.ts`). airlock never follows a symlink the sandbox made and
 * refuses file operations while a run of the sandbox is live; those rules
 * hold here too (so `stat` does not follow symlinks, and symlinks cannot be
 * made, read or uploaded).
 *
 * @module
 */

import type {
  SandboxFileInfo,
  SandboxFs as AirlockSandboxFs,
} from "../harness/sandbox_fs.ts";
import { rejectUnsupported, unsupported } from "./errors.ts";
import type {
  DirEntry,
  ExpandGlobOptions,
  FileInfo,
  FsFile,
  MkdirOptions,
  OpenOptions,
  ReadFileOptions,
  RemoveOptions,
  WalkEntry,
  WalkOptions,
  WriteFileOptions,
} from "./fs_types.ts";
import { walkTree } from "./fs_walk.ts";
import { download, upload } from "./fs_transfer.ts";
import { join, toAbsolute, toPath, WORKDIR } from "./paths.ts";

const NO_LINKS =
  "airlock never creates, reads or follows symlinks in the sandbox's files (a program could point one anywhere on the host)";
const WHOLE_FILES =
  "airlock's sandbox.fs works on whole files; use readFile/writeFile";
const OWNERSHIP =
  "airlock owns the files' mode, owner and times (they belong to the sandbox's uid)";

/**
 * The SDK's `SandboxFs` (`sandbox.fs`): the sandbox's files, which are
 * airlock's scratch directory, /scratch. Relative paths start there.
 *
 * @example Usage
 * ```ts ignore
 * await sandbox.fs.writeTextFile("hello.txt", "hi");
 * console.log(await sandbox.fs.readTextFile("/scratch/hello.txt"));
 * ```
 */
export class SandboxFs {
  #fs: () => AirlockSandboxFs;

  /**
   * Not for callers: use `sandbox.fs`.
   *
   * @param fs airlock's file API of the sandbox (the getter checks that the
   *   client is open on every call).
   */
  constructor(fs: () => AirlockSandboxFs) {
    this.#fs = fs;
  }

  /** Reads a file. */
  async readFile(
    path: string | URL,
    options: ReadFileOptions = {},
  ): Promise<Uint8Array<ArrayBuffer>> {
    options.signal?.throwIfAborted();
    const bytes = await this.#fs().readFile(toPath(path));
    options.signal?.throwIfAborted();
    return new Uint8Array(bytes);
  }

  /** Reads a file as UTF-8. */
  async readTextFile(
    path: string | URL,
    options: ReadFileOptions = {},
  ): Promise<string> {
    return new TextDecoder().decode(await this.readFile(path, options));
  }

  /** Writes a file (created unless `create: false`; `createNew` refuses an existing one). */
  async writeFile(
    path: string | URL,
    data: Uint8Array | ReadableStream<Uint8Array>,
    options: WriteFileOptions = {},
  ): Promise<void> {
    options.signal?.throwIfAborted();
    const bytes = data instanceof Uint8Array
      ? data
      : new Uint8Array(await new Response(data).arrayBuffer());
    options.signal?.throwIfAborted();
    const target = toPath(path);
    if (options.createNew || options.create === false) {
      const exists = await this.#exists(target);
      if (options.createNew && exists) {
        throw new Deno.errors.AlreadyExists(
          `File exists: writeFile '${target}'`,
        );
      }
      if (!options.createNew && !exists) {
        throw new Deno.errors.NotFound(
          `No such file or directory: writeFile '${target}'`,
        );
      }
    }
    await this.#fs().writeFile(target, bytes, {
      append: options.append ?? false,
    });
  }

  /** Writes text as UTF-8 (same options as `writeFile`). */
  async writeTextFile(
    path: string | URL,
    data: string | ReadableStream<string>,
    options: WriteFileOptions = {},
  ): Promise<void> {
    let text = "";
    if (typeof data === "string") text = data;
    else for await (const part of data) text += part;
    await this.writeFile(path, new TextEncoder().encode(text), options);
  }

  /** Lists a directory (symlinks listed, not followed). */
  async *readDir(path: string | URL): AsyncIterable<DirEntry> {
    for (const entry of await this.#fs().readDir(toPath(path))) yield entry;
  }

  /** Removes a file, a symlink or a directory (`recursive` for a non-empty one). */
  async remove(path: string | URL, options: RemoveOptions = {}): Promise<void> {
    await this.#fs().remove(toPath(path), {
      recursive: options.recursive ?? false,
    });
  }

  /** Creates a directory (`recursive` creates parents and accepts an existing one). */
  async mkdir(path: string | URL, options: MkdirOptions = {}): Promise<void> {
    await this.#fs().mkdir(toPath(path), {
      recursive: options.recursive ?? false,
    });
  }

  /** Moves a file or directory (copy, then remove; symlinks refused). */
  async rename(oldPath: string | URL, newPath: string | URL): Promise<void> {
    const from = toPath(oldPath);
    const to = toPath(newPath);
    const info = await this.lstat(from);
    if (info.isSymlink) {
      unsupported("sandbox.fs.rename() of a symlink", NO_LINKS);
    }
    const target = await this.#fs().stat(to).catch(() => null);
    if (target?.isDirectory) {
      throw new Deno.errors.AlreadyExists(
        `Directory exists: rename '${from}' -> '${to}'`,
      );
    }
    if (info.isDirectory) await this.#copyTree(from, to);
    else await this.copyFile(from, to);
    await this.remove(from, { recursive: true });
  }

  /** Describes a path. Symlinks are not followed (airlock never follows them). */
  async stat(path: string | URL): Promise<FileInfo> {
    return toFileInfo(await this.#fs().stat(toPath(path)));
  }

  /** Describes a path without following a symlink. */
  lstat(path: string | URL): Promise<FileInfo> {
    return this.stat(path);
  }

  /** Copies a file's contents. */
  async copyFile(fromPath: string | URL, toPath_: string | URL): Promise<void> {
    const bytes = await this.readFile(fromPath);
    await this.writeFile(toPath_, bytes);
  }

  /** Walks a tree, as `@std/fs/walk` (without following symlinks). */
  async *walk(
    path: string,
    options: WalkOptions = {},
  ): AsyncIterableIterator<WalkEntry> {
    if (options.followSymlinks) {
      unsupported("sandbox.fs.walk({ followSymlinks: true })", NO_LINKS);
    }
    yield* walkTree(this, path, options);
  }

  /** Unsupported (no glob matcher without JSR's `@std/path`). */
  expandGlob(
    _glob: string,
    _options?: ExpandGlobOptions,
  ): AsyncIterableIterator<WalkEntry> {
    return unsupported(
      "sandbox.fs.expandGlob()",
      "use sandbox.fs.walk() with match: [RegExp]",
    );
  }

  /** Truncates (or extends with zeros) a file to `len` bytes. */
  async truncate(name: string | URL, len = 0): Promise<void> {
    const bytes = await this.readFile(name);
    const out = new Uint8Array(len);
    out.set(bytes.subarray(0, len));
    await this.writeFile(name, out);
  }

  /** Resolves a path to its absolute sandbox form (no symlink can be on it). */
  async realPath(path: string | URL): Promise<string> {
    const absolute = toAbsolute(toPath(path));
    await this.#fs().stat(absolute);
    return absolute;
  }

  /** Creates a directory under `dir` (default /scratch/.tmp: the sandbox's /tmp does not outlive a run). */
  async makeTempDir(
    options: { dir?: string; prefix?: string; suffix?: string } = {},
  ): Promise<string> {
    const path = await this.#tempName(options);
    await this.mkdir(path);
    return path;
  }

  /** Creates an empty file under `dir` (default /scratch/.tmp). */
  async makeTempFile(
    options: { dir?: string; prefix?: string; suffix?: string } = {},
  ): Promise<string> {
    const path = await this.#tempName(options);
    await this.writeFile(path, new Uint8Array(), { createNew: true });
    return path;
  }

  /**
   * Copies a host file to `sandboxPath`, or a host directory tree to
   * `sandboxPath/<its name>` (the SDK's layout; `sandboxPath` is created
   * when missing). A symlink in the tree refuses the upload before anything
   * is written.
   */
  upload(localPath: string | URL, sandboxPath: string | URL): Promise<void> {
    return upload(this, localPath, sandboxPath);
  }

  /**
   * Copies a sandbox file to `localPath`, or a sandbox directory tree to
   * `localPath/<its name>` (the SDK's layout; `localPath` is created when
   * missing). A symlink in the tree refuses the download before anything is
   * written.
   */
  download(sandboxPath: string | URL, localPath: string | URL): Promise<void> {
    return download(this, sandboxPath, localPath);
  }

  /** Unsupported. */
  chmod(_path: string | URL, _mode: number): Promise<void> {
    return rejectUnsupported("sandbox.fs.chmod()", OWNERSHIP);
  }
  /** Unsupported. */
  chown(
    _path: string | URL,
    _uid: number | null,
    _gid: number | null,
  ): Promise<void> {
    return rejectUnsupported("sandbox.fs.chown()", OWNERSHIP);
  }
  /** Unsupported. */
  utime(
    _path: string | URL,
    _atime: number | Date,
    _mtime: number | Date,
  ): Promise<void> {
    return rejectUnsupported("sandbox.fs.utime()", OWNERSHIP);
  }
  /** Unsupported. */
  umask(_mask?: number): Promise<number> {
    return rejectUnsupported("sandbox.fs.umask()", OWNERSHIP);
  }
  /** Unsupported. */
  link(_target: string | URL, _path: string | URL): Promise<void> {
    return rejectUnsupported("sandbox.fs.link()", NO_LINKS);
  }
  /** Unsupported. */
  symlink(
    _target: string | URL,
    _path: string | URL,
    _options?: unknown,
  ): Promise<void> {
    return rejectUnsupported("sandbox.fs.symlink()", NO_LINKS);
  }
  /** Unsupported. */
  readLink(_path: string | URL): Promise<string> {
    return rejectUnsupported("sandbox.fs.readLink()", NO_LINKS);
  }
  /** Unsupported. */
  open(_path: string | URL, _options?: OpenOptions): Promise<FsFile> {
    return rejectUnsupported("sandbox.fs.open()", WHOLE_FILES);
  }
  /** Unsupported. */
  create(_path: string | URL): Promise<FsFile> {
    return rejectUnsupported("sandbox.fs.create()", WHOLE_FILES);
  }

  async #exists(path: string): Promise<boolean> {
    try {
      await this.#fs().stat(path);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }

  async #copyTree(from: string, to: string): Promise<void> {
    await this.mkdir(to);
    for await (const entry of this.readDir(from)) {
      if (entry.isSymlink) {
        unsupported("sandbox.fs.rename() of a symlink", NO_LINKS);
      }
      const source = join(from, entry.name);
      const dest = join(to, entry.name);
      if (entry.isDirectory) await this.#copyTree(source, dest);
      else await this.copyFile(source, dest);
    }
  }

  async #tempName(
    options: { dir?: string; prefix?: string; suffix?: string },
  ): Promise<string> {
    const dir = options.dir ?? `${WORKDIR}/.tmp`;
    if (options.dir === undefined) await this.mkdir(dir, { recursive: true });
    const random = Array.from(
      crypto.getRandomValues(new Uint8Array(4)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    return toAbsolute(
      join(dir, `${options.prefix ?? ""}${random}${options.suffix ?? ""}`),
    );
  }
}

function toFileInfo(info: SandboxFileInfo): FileInfo {
  const time = info.mtime ?? new Date(0);
  return {
    isFile: info.isFile,
    isDirectory: info.isDirectory,
    isSymlink: info.isSymlink,
    size: info.size,
    mtime: time,
    atime: time,
    birthtime: time,
    ctime: time,
    dev: 0,
    ino: 0,
    mode: info.isDirectory ? 0o40755 : info.isSymlink ? 0o120777 : 0o100644,
    nlink: 1,
    uid: 0,
    gid: 0,
    rdev: 0,
    blksize: 0,
    blocks: 0,
    isBlockDevice: false,
    isCharDevice: false,
    isFifo: false,
    isSocket: false,
  };
}
