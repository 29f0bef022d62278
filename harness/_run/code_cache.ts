/**
 * Deno's caches, kept across the runs of one sandbox (and never shared with
 * another), so a program that runs again starts like it does under a bare
 * `deno run` with a warm DENO_DIR.
 *
 * Every run gets a fresh tmpfs `/tmp` with DENO_DIR in it. Two of Deno's
 * databases there decide how fast a bundled program starts: the module
 * analysis (`dep_analysis_cache_v2`: a 1.7 MB bundle is parsed again, ~0.2
 * s, when it is empty) and V8's code cache (`v8_code_cache_v2`: compiled
 * code of the program and of Deno's own lazily loaded modules). Both key
 * their entries by the module's URL and a hash of its text, so a program
 * changed in any way misses. This module keeps those two databases, with
 * their `-wal` and `-shm` files, as six host files in the workspace
 * (`<root>/deno-cache/`), bound over their names in each run's DENO_DIR;
 * everything else Deno writes stays in the run's tmpfs.
 *
 * What a run can do with them, and the bounds:
 * - **The directory is the harness's** (mode 0711), the six files the
 *   sandbox uid's: a run can write into those files and nothing else there.
 *   It cannot create a seventh file, or swap one for a link the harness
 *   would then write through (resets below).
 * - **Size.** Each file is bounded by RLIMIT_FSIZE while a run writes it
 *   (`fileSizeMb`); before each launch, when no process of the sandbox has
 *   them open, the harness empties all six if together they hold more than
 *   `tmpMb` (the policy's bound for Deno's own cache). So a sandbox holds at
 *   most `tmpMb` of them between runs, and at most six times `fileSizeMb`
 *   during one. A sandbox with a smaller `fileSizeMb` than
 *   {@linkcode MIN_FILE_SIZE_MB} keeps nothing (a code cache write past the
 *   limit would end the run as `file-size`).
 * - **Trust.** A run can write anything into them, and a later run of the
 *   same sandbox loads it: code one run leaves there can run in the next.
 *   Runs of one sandbox already share `/scratch`, so the sandbox is one
 *   trust domain; these files are never mounted into another sandbox, and
 *   the harness never parses them (it only measures and empties them).
 * - Without a host uid of its own (the harness is not root) a sandbox runs
 *   as the directory's owner and could add files: nothing is kept then.
 *
 * @module
 */

import type { SandboxIdentity } from "../../runtime/host_identity.ts";
import type { ResourceLimits } from "../../runtime/limits.ts";
import type { Workspace } from "../../runtime/workspace.ts";

/** The databases kept across runs, by their file name in DENO_DIR. */
export const KEPT_DATABASES = ["v8_code_cache_v2", "dep_analysis_cache_v2"];

/** A database's own file and SQLite's write-ahead log and shared index. */
const PARTS = ["", "-wal", "-shm"];

/** Below this `fileSizeMb`, nothing is kept (see the module doc). */
export const MIN_FILE_SIZE_MB = 16;

/** The directory's name in the workspace root. */
export const CACHE_DIR_NAME = "deno-cache";

/** One kept file: its name in DENO_DIR and its host path. */
export interface KeptFile {
  /** File name in DENO_DIR (`v8_code_cache_v2-wal`). */
  name: string;
  /** Host path. */
  source: string;
}

/** A launch's hold on the files; see {@linkcode SandboxDenoCache.acquire}. */
export interface DenoCacheLease {
  /** The files to bind into the launched sandbox's DENO_DIR. */
  readonly files: readonly KeptFile[];
  /** The launched process: the files are in use until it exits. */
  track(child: Deno.ChildProcess): void;
  /** Nothing was launched after all. */
  cancel(): void;
}

/**
 * The kept Deno caches of one sandbox.
 *
 * @example Usage
 * ```ts ignore
 * const cache = await SandboxDenoCache.open(workspace, identity, limits);
 * const lease = await cache!.acquire();
 * const child = launchSandbox({ ...options, denoCache: lease.files });
 * lease.track(child);
 * ```
 */
export class SandboxDenoCache {
  /** Host directory of the files. */
  readonly dir: string;
  /** The files, in a fixed order. */
  readonly files: readonly KeptFile[];
  #budgetBytes: number;
  #owner: { uid: number; gid: number };
  /** Launches in progress plus processes alive that have the files. */
  #users = 0;
  #resetting: Promise<void> | null = null;

  private constructor(
    dir: string,
    budgetBytes: number,
    owner: { uid: number; gid: number },
  ) {
    this.dir = dir;
    this.#owner = owner;
    this.files = KEPT_DATABASES.flatMap((db) =>
      PARTS.map((part) => ({
        name: `${db}${part}`,
        source: `${dir}/${db}${part}`,
      }))
    );
    this.#budgetBytes = budgetBytes;
  }

  /**
   * Creates the sandbox's files (empty databases), or returns null when
   * nothing may be kept (no host uid of its own, or a `fileSizeMb` below
   * {@linkcode MIN_FILE_SIZE_MB}).
   *
   * @param workspace The sandbox's workspace (the files go in its root).
   * @param identity The sandbox's host identity (it owns the files).
   * @param limits The sandbox's limits (`tmpMb` bounds the files between
   *   runs).
   * @returns The cache, or null.
   */
  static async open(
    workspace: Workspace,
    identity: SandboxIdentity,
    limits: ResourceLimits,
  ): Promise<SandboxDenoCache | null> {
    if (identity.hostUid === null || limits.fileSizeMb < MIN_FILE_SIZE_MB) {
      return null;
    }
    const dir = `${workspace.root}/${CACHE_DIR_NAME}`;
    // The harness's: the sandbox uid may traverse it (bwrap opens the
    // files as that uid) but not add, remove or rename an entry.
    await Deno.mkdir(dir, { mode: 0o711 });
    await Deno.chmod(dir, 0o711);
    const cache = new SandboxDenoCache(dir, limits.tmpMb * 1024 * 1024, {
      uid: identity.hostUid,
      gid: identity.hostGid ?? identity.hostUid,
    });
    await cache.#reset();
    return cache;
  }

  /**
   * Holds the files for one launch: waits for a reset in progress, and
   * empties the files first when they are over the budget and nothing else
   * of the sandbox has them open. Track the launched process, or cancel.
   *
   * @returns The lease.
   */
  async acquire(): Promise<DenoCacheLease> {
    // Counted from here: no reset starts while this launch is under way.
    this.#users++;
    let held = true;
    const release = () => {
      if (held) this.#users--;
      held = false;
    };
    try {
      await this.#resetting;
      if (this.#users === 1 && (await this.#overBudget())) {
        this.#resetting = this.#reset().finally(() => this.#resetting = null);
        await this.#resetting;
      }
    } catch (error) {
      release();
      throw error;
    }
    return {
      files: this.files,
      track: (child) => {
        child.status.finally(release).catch(() => {});
      },
      cancel: release,
    };
  }

  /** Bytes the six files hold now. */
  async bytes(): Promise<number> {
    let total = 0;
    for (const file of this.files) {
      const info = await Deno.lstat(file.source);
      total += info.isFile ? info.size : Infinity;
    }
    return total;
  }

  async #overBudget(): Promise<boolean> {
    try {
      return (await this.bytes()) > this.#budgetBytes;
    } catch {
      return true; // a file gone missing: make them again
    }
  }

  /**
   * Every database back to empty. Only with no process of the sandbox
   * holding them; the directory is the harness's, so each name is still
   * the regular file it made (checked anyway: never write through a link).
   */
  async #reset(): Promise<void> {
    for (const file of this.files) {
      const info = await Deno.lstat(file.source).catch(() => null);
      if (info !== null && !info.isFile) {
        throw new Error(
          `Cannot reset the sandbox's Deno cache: '${file.source}' is not a regular file`,
        );
      }
      await Deno.writeFile(
        file.source,
        file.name.endsWith("-wal") || file.name.endsWith("-shm")
          ? new Uint8Array()
          : emptyWalDatabase(),
        { mode: 0o600 },
      );
      // Made anew if it was missing: the sandbox uid must own it again.
      await Deno.chown(file.source, this.#owner.uid, this.#owner.gid);
    }
  }
}

const opened = new WeakMap<Workspace, Promise<SandboxDenoCache | null>>();

/**
 * The kept caches of the sandbox `workspace` belongs to, made on first use.
 *
 * @param workspace The sandbox's workspace.
 * @param identity Its host identity.
 * @param limits Its limits.
 * @returns The cache, or null when nothing is kept.
 *
 * @example Usage
 * ```ts ignore
 * const cache = await denoCacheFor(setup.workspace, setup.identity, setup.limits);
 * ```
 */
export function denoCacheFor(
  workspace: Workspace,
  identity: SandboxIdentity,
  limits: ResourceLimits,
): Promise<SandboxDenoCache | null> {
  let cache = opened.get(workspace);
  if (cache === undefined) {
    cache = SandboxDenoCache.open(workspace, identity, limits);
    opened.set(workspace, cache);
    // A failure is retried at the next launch.
    cache.catch(() => opened.delete(workspace));
  }
  return cache;
}

/**
 * An empty SQLite database in write-ahead-log mode (one 4 KiB page, as
 * `PRAGMA journal_mode=WAL` leaves a new file). Deno's caches are WAL
 * databases; SQLite can only switch a database to WAL by way of a rollback
 * journal, a file it would have to create beside it, which the harness's
 * directory does not allow: so the file starts in WAL mode.
 *
 * @returns The file's bytes.
 *
 * @example Usage
 * ```ts
 * import { emptyWalDatabase } from "./code_cache.ts";
 * console.log(new TextDecoder().decode(emptyWalDatabase().subarray(0, 15))); // "SQLite format 3"
 * ```
 */
export function emptyWalDatabase(): Uint8Array<ArrayBuffer> {
  const page = new Uint8Array(4096);
  const view = new DataView(page.buffer);
  page.set(new TextEncoder().encode("SQLite format 3\0"), 0);
  view.setUint16(16, 4096); // page size
  page[18] = 2; // file format write version: 2 is WAL
  page[19] = 2; // read version: WAL
  page[21] = 64; // maximum embedded payload fraction
  page[22] = 32; // minimum embedded payload fraction
  page[23] = 32; // leaf payload fraction
  view.setUint32(24, 1); // file change counter
  view.setUint32(28, 1); // database size in pages
  view.setUint32(92, 1); // version-valid-for: the change counter
  view.setUint32(96, 3053002); // SQLite version that wrote it (3.53.2)
  page[100] = 13; // page 1: an empty table leaf (sqlite_schema)
  view.setUint16(105, 4096); // its cell content area starts at the end
  return page;
}
