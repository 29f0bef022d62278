/**
 * The host-side directory tree of one sandbox session, and the guarantee that
 * it disappears: on `close()`, and also when the harness dies without
 * cleaning up (SIGKILL, OOM kill), through a watchdog process that deletes
 * the tree as soon as the harness's end of a pipe closes.
 *
 * Layout (`root` is `$TMPDIR/airlock-<random>`):
 * - `root/` (harness, 0711): only traversable, so the sandbox uid can reach
 *   `box/` for its bind mounts but cannot list anything.
 * - `root/private/` (harness, 0700): files only the harness reads, e.g. the
 *   seccomp filter.
 * - `root/box/` (sandbox uid, 0700): bundled code of each run, the scratch
 *   directory, sockets the sandbox connects to. With a scratch quota
 *   enforced by a filesystem (`scratch_volume.ts`), `box/` is that
 *   filesystem's mount point, so everything a sandbox can write on the host
 *   is inside it; its loop image is `root/private/scratch.img`.
 * - `root/private/owner`: who created the workspace, so that a later
 *   harness can sweep it if this one and its watchdog both died.
 *
 * @module
 */

import type { SandboxIdentity } from "./host_identity.ts";
import { findOnPath } from "./host_tools.ts";
import {
  chooseScratchFs,
  currentOwner,
  mountAuto,
  type ScratchFsRequest,
  type ScratchQuotaMode,
  ScratchVolume,
  sweepLeftoverWorkspaces,
} from "./scratch_volume.ts";

/** Options for {@linkcode Workspace.create}. */
export interface WorkspaceOptions {
  /** The sandbox's host identity; its uid owns `box/`. */
  identity: SandboxIdentity;
  /** Parent directory; default `$TMPDIR` or `/tmp`. */
  tmpDir?: string;
  /**
   * A scratch quota: `box/` becomes a filesystem of `quotaBytes` when `fs`
   * allows (see `scratch_volume.ts`); default: no scratch, no filesystem.
   */
  scratch?: { quotaBytes: number; fs?: ScratchFsRequest };
}

/**
 * A sandbox session's temporary files.
 *
 * @example Usage
 * ```ts ignore
 * import { Workspace } from "./workspace.ts";
 * import { SandboxIdentityPool } from "./host_identity.ts";
 * const ws = await Workspace.create({ identity: new SandboxIdentityPool().acquire() });
 * console.log(ws.boxDir);
 * await ws.close();
 * ```
 */
export class Workspace {
  /** The session's top directory. */
  readonly root: string;
  /** Harness-only files. */
  readonly privateDir: string;
  /** Files the sandbox's bind mounts come from. */
  readonly boxDir: string;
  /** The size-capped filesystem mounted on `boxDir`, if any. */
  readonly volume: ScratchVolume | null;
  /** How the scratch quota is enforced (null: no scratch was asked for). */
  readonly quotaMode: ScratchQuotaMode | null;
  #identity: SandboxIdentity;
  #watchdog: Deno.ChildProcess | null;
  #watchdogPipe: WritableStreamDefaultWriter<Uint8Array> | null;
  #runCounter = 0;
  #closed = false;

  private constructor(
    root: string,
    identity: SandboxIdentity,
    watchdog: Deno.ChildProcess | null,
    volume: ScratchVolume | null,
    quotaMode: ScratchQuotaMode | null,
  ) {
    this.root = root;
    this.privateDir = `${root}/private`;
    this.boxDir = `${root}/box`;
    this.volume = volume;
    this.quotaMode = quotaMode;
    this.#identity = identity;
    this.#watchdog = watchdog;
    this.#watchdogPipe = watchdog?.stdin.getWriter() ?? null;
  }

  /**
   * Creates the directory tree and starts its watchdog.
   *
   * @param options Owner identity and location.
   * @returns The workspace.
   */
  static async create(options: WorkspaceOptions): Promise<Workspace> {
    const parent = options.tmpDir ?? tmpDir();
    if (options.identity.hostUid !== null) {
      // bwrap runs as the sandbox's uid and opens its mount sources: every
      // directory above the workspace must be traversable by "others".
      const blocked = untraversable(parent);
      if (blocked) {
        throw new Error(
          `Cannot create a sandbox workspace in '${parent}' as '${blocked}' is not traversable by the sandbox's uid: use a directory with o+x (e.g. chmod 0711 '${blocked}')`,
        );
      }
    }
    const scratch = options.scratch;
    // Fails before anything exists when an explicit mode cannot work here.
    let mode = scratch ? chooseScratchFs(scratch.fs ?? "auto") : null;
    if (!swept.has(parent)) {
      // Once per process and directory: workspaces (and mounted images) of
      // harnesses that died with their watchdog.
      swept.add(parent);
      await sweepLeftoverWorkspaces(parent);
    }
    const root = await Deno.makeTempDir({ dir: parent, prefix: "airlock-" });
    let watchdog: Deno.ChildProcess | null = null;
    let volume: ScratchVolume | null = null;
    try {
      watchdog = startWatchdog(root, mode === "loop" || mode === "tmpfs");
      await Deno.chmod(root, 0o711);
      await Deno.mkdir(`${root}/private`, { mode: 0o700 });
      await Deno.writeTextFile(
        `${root}/private/owner`,
        JSON.stringify(currentOwner()),
        { mode: 0o600 },
      );
      await Deno.mkdir(`${root}/box`, { mode: 0o700 });
      const { hostUid, hostGid } = options.identity;
      if (scratch && (mode === "loop" || mode === "tmpfs")) {
        const volumeOptions = {
          dir: `${root}/box`,
          quotaBytes: scratch.quotaBytes,
          mode,
          imagePath: `${root}/private/scratch.img`,
          owner: hostUid === null
            ? null
            : { uid: hostUid, gid: hostGid ?? hostUid },
        };
        volume = (scratch.fs ?? "auto") === "auto"
          ? await mountAuto(volumeOptions)
          : await ScratchVolume.mount(volumeOptions);
        if (volume === null) mode = "walk";
      }
      if (hostUid !== null) await Deno.chown(`${root}/box`, hostUid, hostGid);
      return new Workspace(root, options.identity, watchdog, volume, mode);
    } catch (error) {
      await volume?.unmount().catch(() => {});
      await Deno.remove(root, { recursive: true }).catch(() => {});
      watchdog?.stdin.close();
      throw error;
    }
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The scratch directory (created on first use, owned by the sandbox uid).
   *
   * @returns Its host path.
   */
  async scratchDir(): Promise<string> {
    const dir = `${this.boxDir}/scratch`;
    await this.#ensureOwnedDir(dir);
    return dir;
  }

  /**
   * A fresh directory for one run's files (bundled code).
   *
   * @returns Its host path.
   */
  async newRunDir(): Promise<string> {
    this.#assertOpen();
    const dir = `${this.boxDir}/run-${++this.#runCounter}`;
    await Deno.mkdir(dir, { mode: 0o755 });
    return dir;
  }

  /**
   * Writes a file the sandbox uid may read but not change (harness-owned,
   * mode 0644, in the 0711 root: readable only by whoever knows the name).
   *
   * @param name File name inside the root directory.
   * @param data Contents.
   * @returns Its host path.
   */
  async writeShared(name: string, data: Uint8Array): Promise<string> {
    this.#assertOpen();
    const path = `${this.root}/${name}`;
    await Deno.writeFile(path, data, { mode: 0o644 });
    await Deno.chmod(path, 0o644); // mode is subject to the umask
    return path;
  }

  /**
   * Writes a harness-only file (mode 0600).
   *
   * @param name File name inside `private/`.
   * @param data Contents.
   * @returns Its host path.
   */
  async writePrivate(name: string, data: Uint8Array): Promise<string> {
    this.#assertOpen();
    const path = `${this.privateDir}/${name}`;
    await Deno.writeFile(path, data, { mode: 0o600 });
    return path;
  }

  /**
   * Gives `path` to the sandbox uid (for files the sandbox must write).
   *
   * @param path A path inside `box/`.
   */
  async giveToSandbox(path: string): Promise<void> {
    const { hostUid, hostGid } = this.#identity;
    if (hostUid !== null) await Deno.chown(path, hostUid, hostGid);
  }

  /**
   * Unmounts the scratch filesystem (its loop device detaches with it),
   * deletes the whole tree (the image too) and stops the watchdog.
   * Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // A failed unmount is retried lazily by the watchdog (its pipe closes
    // here) before its rm: never an rm through a mounted filesystem.
    const unmounted = this.volume
      ? await this.volume.unmount().then(() => true, () => false)
      : true;
    if (!unmounted) {
      await this.#watchdogPipe?.close().catch(() => {});
      this.#watchdog = null;
      return;
    }
    await Deno.remove(this.root, { recursive: true }).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    // Everything is gone: tell the watchdog so (it exits without cleaning
    // up) and wait for it, so nothing of the workspace outlives close().
    const watchdog = this.#watchdog;
    this.#watchdog = null;
    await this.#watchdogPipe?.write(DONE).catch(() => {});
    await this.#watchdogPipe?.close().catch(() => {});
    // Awaited, so it must hold the event loop open meanwhile.
    watchdog?.ref();
    await watchdog?.status;
  }

  async #ensureOwnedDir(dir: string): Promise<void> {
    this.#assertOpen();
    try {
      await Deno.mkdir(dir, { mode: 0o700 });
      await this.giveToSandbox(dir);
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new Error("Cannot use a workspace after close(): create a new one");
    }
  }
}

/** The first directory of `path` (itself included) lacking o+x, or null. */
function untraversable(path: string): string | null {
  const parts = path.split("/").filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const dir = "/" + parts.slice(0, i).join("/");
    try {
      if (((Deno.statSync(dir).mode ?? 0) & 0o001) === 0) return dir;
    } catch {
      return dir;
    }
  }
  return null;
}

/** Parent directories already swept by this process. */
const swept = new Set<string>();

function tmpDir(): string {
  try {
    return Deno.env.get("TMPDIR") || "/tmp";
  } catch {
    return "/tmp";
  }
}

/** What close() tells the watchdog: nothing is left to clean up. */
const DONE = new TextEncoder().encode("done\n");

/**
 * A shell that blocks reading a pipe from the harness. When the harness exits
 * for any reason, the kernel closes the pipe, `read` returns and the shell
 * deletes the tree. It ignores the terminal's signals so a Ctrl-C that kills
 * the harness's process group does not also kill the cleanup. The second rm
 * catches files a dying sandbox wrote while the first one ran. With a
 * scratch filesystem mounted on `box/`, it first unmounts it lazily (a
 * dying sandbox may still hold it; the loop device detaches once it is
 * released), so rm never deletes through a mount and the image goes too.
 */
function startWatchdog(root: string, mounted: boolean): Deno.ChildProcess {
  const umount = mounted
    ? findOnPath("umount", "/usr/sbin:/usr/bin:/sbin:/bin") ?? ""
    : "";
  const script = 'trap "" INT TERM HUP QUIT; read line; ' +
    // "done": the harness cleaned up itself (close()).
    '[ "$line" = done ] && exit 0; ' +
    'if [ -n "$1" ]; then "$1" -l -- "$0/box" 2>/dev/null; fi; ' +
    'rm -rf -- "$0"; sleep 1; rm -rf -- "$0"';
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", script, root, umount],
    clearEnv: true,
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  // The watchdog must not keep the harness's event loop alive.
  child.unref();
  return child;
}
