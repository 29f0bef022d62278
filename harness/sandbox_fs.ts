/**
 * The harness's view of a sandbox's scratch directory (`sandbox.fs`), with
 * the `Deno.*` file API shapes `@deno/sandbox` uses.
 *
 * The harness runs with more rights than the sandbox (root, here), and the
 * scratch directory is written by untrusted code. Two rules keep the harness
 * from being used as a confused deputy:
 * - no symlink is ever followed: a program could leave `out.txt ->
 *   /etc/shadow` (read) or `-> /etc/cron.d/x` (write) behind;
 * - no access while a run of the sandbox is live: a running program could
 *   swap a checked directory for a symlink between our check and our open.
 *   When no run is live, no process of the sandbox exists, so nothing can
 *   change the tree under us. The check and the whole operation hold the
 *   sandbox's lock (`_sandbox_lock.ts`), which a run's start also takes:
 *   no run can start while an operation is under way, however long it
 *   takes.
 *
 * Writes stay within the scratch quota: the same filesystem holds them
 * where the quota is one (`runtime/scratch_volume.ts`), and they are
 * checked against the room left before writing.
 *
 * @module
 */

import type { SandboxLock } from "./_sandbox_lock.ts";
import type { ScratchQuota } from "./_run/scratch_quota.ts";
import { SandboxFsError } from "./errors.ts";
import { normalisePath } from "./paths.ts";

// Defined with the harness's other errors; re-exported for existing imports.
export { SandboxFsError };

/** What `stat` reports. */
export interface SandboxFileInfo {
  /** A regular file. */
  isFile: boolean;
  /** A directory. */
  isDirectory: boolean;
  /** A symbolic link (never followed). */
  isSymlink: boolean;
  /** Size in bytes. */
  size: number;
  /** Last modification, if known. */
  mtime: Date | null;
}

/** One directory entry. */
export interface SandboxDirEntry {
  /** The entry's name. */
  name: string;
  /** A regular file. */
  isFile: boolean;
  /** A directory. */
  isDirectory: boolean;
  /** A symbolic link. */
  isSymlink: boolean;
}

/** How the API reaches its sandbox. */
export interface SandboxFsHost {
  /** Host path of the scratch directory. */
  root: string;
  /** Sandbox path it is mounted at (`/scratch`). */
  mountPoint: string;
  /** Host uid/gid new files are given to (null: keep). */
  owner: { uid: number; gid: number } | null;
  /** Whether a run is live (then every operation is refused). */
  running(): boolean;
  /** Held across each operation; a run's start takes it too. */
  lock: SandboxLock;
  /** The scratch quota. */
  quota: ScratchQuota;
}

/**
 * File operations on a sandbox's scratch directory.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Sandbox } from "./sandbox.ts";
 * await using sandbox = await Sandbox.create({ policy: { scratch: true } });
 * await sandbox.fs.writeTextFile("/scratch/input.json", JSON.stringify([1, 2]));
 * await sandbox.run({
 *   code: "const n = JSON.parse(await Deno.readTextFile('input.json')); await Deno.writeTextFile('out.txt', String(n[0] + n[1]))",
 * });
 * assert.equal(await sandbox.fs.readTextFile("out.txt"), "3");
 * ```
 */
export class SandboxFs {
  #host: SandboxFsHost;

  /**
   * Builds the file operations of one sandbox (`Sandbox.fs` does this).
   *
   * @param host The sandbox's scratch directory and state.
   */
  constructor(host: SandboxFsHost) {
    this.#host = host;
  }

  /**
   * Reads a file as UTF-8.
   *
   * @param path Sandbox path (`/scratch/x` or relative to it).
   * @returns The text.
   */
  async readTextFile(path: string): Promise<string> {
    return new TextDecoder().decode(await this.readFile(path));
  }

  /**
   * Reads a file.
   *
   * @param path Sandbox path.
   * @returns The bytes.
   */
  readFile(path: string): Promise<Uint8Array> {
    return this.#locked(path, "read", (host) => Deno.readFile(host));
  }

  /**
   * Writes text to a file (created if missing).
   *
   * @param path Sandbox path.
   * @param text Contents.
   * @param options `append` to add to the end.
   */
  async writeTextFile(
    path: string,
    text: string,
    options: { append?: boolean } = {},
  ): Promise<void> {
    await this.writeFile(path, new TextEncoder().encode(text), options);
  }

  /**
   * Writes bytes to a file (created if missing), within the scratch quota.
   *
   * @param path Sandbox path.
   * @param data Contents.
   * @param options `append` to add to the end.
   */
  async writeFile(
    path: string,
    data: Uint8Array,
    options: { append?: boolean } = {},
  ): Promise<void> {
    await this.#locked(path, "write", async (host) => {
      // The harness writes as root: without this check it could go past
      // what the sandbox itself may write (its share of the filesystem).
      const { roomBytes, quotaBytes } = await this.#host.quota.usage();
      if (data.length > roomBytes) {
        throw new SandboxFsError(
          `Cannot write '${path}' as the scratch quota would be exceeded: ${data.length} bytes to write, ${roomBytes} left of ${quotaBytes}; delete files first`,
        );
      }
      await Deno.writeFile(host, data, {
        append: options.append ?? false,
        mode: 0o644,
      });
      await this.#give(host);
    });
  }

  /**
   * Creates a directory.
   *
   * @param path Sandbox path.
   * @param options `recursive` creates parents.
   */
  async mkdir(
    path: string,
    options: { recursive?: boolean } = {},
  ): Promise<void> {
    await this.#locked(path, "write", async (host) => {
      if (!options.recursive) {
        await Deno.mkdir(host, { mode: 0o755 });
        await this.#give(host);
        return;
      }
      // Every existing component was checked by #resolve: none is a symlink.
      let current = this.#host.root;
      for (
        const part of host.slice(this.#host.root.length).split("/").filter(
          Boolean,
        )
      ) {
        current += `/${part}`;
        try {
          await Deno.mkdir(current, { mode: 0o755 });
          await this.#give(current);
        } catch (error) {
          if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
        }
      }
    });
  }

  /**
   * Lists a directory (symlinks are listed, not followed).
   *
   * @param path Sandbox path.
   * @returns The entries.
   */
  readDir(path: string): Promise<SandboxDirEntry[]> {
    return this.#locked(path, "read", async (host) => {
      const entries: SandboxDirEntry[] = [];
      for await (const entry of Deno.readDir(host)) {
        entries.push({
          name: entry.name,
          isFile: entry.isFile,
          isDirectory: entry.isDirectory,
          isSymlink: entry.isSymlink,
        });
      }
      return entries.sort((a, b) => a.name.localeCompare(b.name));
    });
  }

  /**
   * Removes a file, a symlink (not its target) or a directory.
   *
   * @param path Sandbox path.
   * @param options `recursive` removes a non-empty directory.
   */
  async remove(
    path: string,
    options: { recursive?: boolean } = {},
  ): Promise<void> {
    await this.#locked(path, "remove", async (host) => {
      if (host === this.#host.root) {
        throw new SandboxFsError("Cannot remove the scratch directory itself");
      }
      // Deno.remove never follows a symlink: it removes the link.
      await Deno.remove(host, { recursive: options.recursive ?? false });
    });
  }

  /**
   * Describes a path without following symlinks.
   *
   * @param path Sandbox path.
   * @returns Its type, size and time.
   */
  stat(path: string): Promise<SandboxFileInfo> {
    return this.#locked(path, "stat", async (host) => {
      const info = await Deno.lstat(host);
      return {
        isFile: info.isFile,
        isDirectory: info.isDirectory,
        isSymlink: info.isSymlink,
        size: info.size,
        mtime: info.mtime,
      };
    });
  }

  /**
   * Runs one operation with the sandbox's lock held: the "no run is live"
   * check, the path checks and the operation itself, so a run cannot start
   * between them (a program could otherwise swap a checked directory for a
   * symlink, or read a half-written file).
   */
  #locked<T>(
    path: string,
    op: "read" | "write" | "remove" | "stat",
    fn: (host: string) => Promise<T>,
  ): Promise<T> {
    return this.#host.lock.hold(async () => {
      try {
        return await fn(await this.#resolve(path, op));
      } catch (error) {
        if (isNoSpace(error)) {
          // The scratch filesystem itself refused (ENOSPC).
          throw new SandboxFsError(
            `Cannot ${op} '${path}' as the scratch quota is used up: delete files first`,
          );
        }
        // Deno's errors name the host path they failed on: the caller (a
        // remote client, through the HTTP API) would learn where the harness
        // keeps workspaces. It reads the sandbox path instead.
        throw withSandboxPaths(error, this.#host.root, this.#host.mountPoint);
      }
    });
  }

  /**
   * Maps a sandbox path to a host path, refusing anything outside the scratch
   * directory and any symlink on the way (the last component too, except for
   * stat and remove, which act on the link itself).
   */
  async #resolve(
    path: string,
    op: "read" | "write" | "remove" | "stat",
  ): Promise<string> {
    if (this.#host.running()) {
      throw new SandboxFsError(
        `Cannot ${op} '${path}' while a run of this sandbox is live (it could swap files for symlinks meanwhile): await its status first`,
      );
    }
    if (typeof path !== "string" || /[\0]/.test(path)) {
      throw new SandboxFsError(`Cannot ${op} an invalid path`);
    }
    const mount = this.#host.mountPoint;
    let relative: string;
    if (path === mount || path.startsWith(`${mount}/`)) {
      relative = path.slice(mount.length);
    } else if (path.startsWith("/")) {
      throw new SandboxFsError(
        `Cannot ${op} '${path}': only paths under ${mount} are reachable`,
      );
    } else relative = `/${path}`;
    // Normalised from the mount point as the root: climbing above it is
    // refused, never clamped back into it.
    const normal = normalisePath(relative);
    if (normal === null) {
      throw new SandboxFsError(
        `Cannot ${op} '${path}': it leaves ${mount}`,
      );
    }
    const parts = normal.split("/").filter(Boolean);
    let current = this.#host.root;
    for (const [i, part] of parts.entries()) {
      current += `/${part}`;
      const last = i === parts.length - 1;
      let info: Deno.FileInfo;
      try {
        info = await Deno.lstat(current);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) break; // created later, or a clear NotFound
        throw error;
      }
      if (info.isSymlink && !(last && (op === "stat" || op === "remove"))) {
        // Never follow a link the sandbox made: it could point anywhere on
        // the host, and the harness has the rights to go there.
        throw new SandboxFsError(
          `Cannot ${op} '${path}': '${mount}/${
            parts.slice(0, i + 1).join("/")
          }' is a symlink, which airlock never follows`,
        );
      }
    }
    return parts.length === 0
      ? this.#host.root
      : `${this.#host.root}/${parts.join("/")}`;
  }

  async #give(path: string): Promise<void> {
    const owner = this.#host.owner;
    if (owner) await Deno.chown(path, owner.uid, owner.gid);
  }
}

function withSandboxPaths(
  error: unknown,
  root: string,
  mount: string,
): unknown {
  if (!(error instanceof Error) || !error.message.includes(root)) return error;
  const stack = error.stack;
  error.message = error.message.replaceAll(root, mount);
  if (stack !== undefined) error.stack = stack.replaceAll(root, mount);
  return error;
}

function isNoSpace(error: unknown): boolean {
  return error instanceof Error &&
    ((error as { code?: string }).code === "ENOSPC" ||
      /\(os error 28\)/.test(error.message));
}
