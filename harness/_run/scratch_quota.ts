/**
 * The scratch quota as the harness sees it: how much a sandbox's scratch
 * holds, how much a harness write may add, whether a new run may start,
 * and (where the kernel does not enforce it) a watcher that ends a run past
 * the quota.
 *
 * Two implementations behind one interface:
 * - {@linkcode volumeQuota}: the scratch is a size-capped filesystem
 *   (`runtime/scratch_volume.ts`). The kernel refuses writes past the quota
 *   (ENOSPC) and the run goes on, so there is nothing to watch; this only
 *   reads statfs.
 * - {@linkcode walkQuota}: the fallback where the harness cannot mount.
 *   Nothing in the kernel bounds the directories, so the harness measures
 *   them (a walk every 100 ms) and ends the run past the quota
 *   ("disk-limit"). What it cannot measure counts as over the quota (fail
 *   closed); files unlinked while held open are invisible to any walk (a
 *   known limit, see SECURITY.md).
 *
 * @module
 */

import {
  INODE_MARGIN,
  type ScratchQuotaMode,
  type ScratchVolume,
} from "../../runtime/scratch_volume.ts";

/** What an entry costs at the least (one filesystem block). */
export const MIN_ENTRY_BYTES = 4096;

/** A sandbox's scratch usage. */
export interface ScratchUsage {
  /** How the quota is enforced. */
  mode: ScratchQuotaMode;
  /** The quota in bytes. */
  quotaBytes: number;
  /**
   * Bytes in use. "walk": what the walk measured (Infinity when part of the
   * tree cannot be measured); filesystem modes: what statfs reports, files
   * unlinked but still open included.
   */
  usedBytes: number;
  /** Bytes the sandbox (or a harness write for it) may still add. */
  roomBytes: number;
  /**
   * Whether the scratch is full, so no new run starts: "walk", past the
   * quota; filesystem modes, no room or no inode left for a run's files.
   */
  full: boolean;
  /**
   * What the scratch costs the host right now: the loop image's allocated
   * blocks (which never shrink before close, so this is also the most it
   * ever cost), the tmpfs's used RAM, or the walk's measure.
   */
  hostBytes: number;
}

/** A scratch quota, however it is enforced. */
export interface ScratchQuota {
  /** How it is enforced. */
  readonly mode: ScratchQuotaMode;
  /** The quota in bytes. */
  readonly quotaBytes: number;
  /** The whole picture. */
  usage(): Promise<ScratchUsage>;
  /**
   * Calls `onOver` once, the first time a poll finds the scratch past its
   * quota ("walk" only: a filesystem never goes past it).
   *
   * @returns A function that stops watching.
   */
  watch(onOver: () => void, intervalMs?: number): () => void;
}

/**
 * The quota of a scratch that is a size-capped filesystem.
 *
 * @param volume The mounted filesystem.
 * @returns Its quota view.
 *
 * @example Usage
 * ```ts ignore
 * import { volumeQuota } from "./scratch_quota.ts";
 * const quota = volumeQuota(workspace.volume!);
 * console.log((await quota.usage()).roomBytes);
 * ```
 */
export function volumeQuota(volume: ScratchVolume): ScratchQuota {
  return {
    mode: volume.mode,
    quotaBytes: volume.quotaBytes,
    usage: async () => {
      const [u, hostBytes] = await Promise.all([
        volume.usage(),
        volume.hostBytes(),
      ]);
      return {
        mode: volume.mode,
        quotaBytes: volume.quotaBytes,
        usedBytes: u.usedBytes,
        roomBytes: u.freeBytes,
        full: u.freeBytes === 0 || u.freeInodes < INODE_MARGIN,
        hostBytes,
      };
    },
    // The kernel refuses every write past the quota: nothing to watch.
    watch: () => () => {},
  };
}

/**
 * The quota of plain directories, measured by walking them (the fallback
 * where no filesystem can be mounted).
 *
 * @param roots The directories under the quota (summed).
 * @param quotaBytes The quota.
 * @returns Its quota view.
 *
 * @example Usage
 * ```ts
 * import { walkQuota } from "./scratch_quota.ts";
 * const quota = walkQuota(["/nonexistent"], 1 << 20);
 * console.log((await quota.usage()).full); // false
 * ```
 */
export function walkQuota(
  roots: readonly string[],
  quotaBytes: number,
): ScratchQuota {
  const measure = async () => {
    let used = 0;
    for (const dir of roots) used += await directorySize(dir);
    return used;
  };
  return {
    mode: "walk",
    quotaBytes,
    usage: async () => {
      const used = await measure();
      return {
        mode: "walk",
        quotaBytes,
        usedBytes: used,
        roomBytes: Math.max(0, quotaBytes - used),
        full: used > quotaBytes,
        hostBytes: used,
      };
    },
    watch: (onOver, intervalMs) =>
      poll(async () => (await measure()) > quotaBytes, onOver, intervalMs),
  };
}

function poll(
  full: () => Promise<boolean>,
  onFull: () => void,
  intervalMs = 100,
): () => void {
  let busy = false;
  let done = false;
  const timer = setInterval(async () => {
    if (busy || done) return;
    busy = true;
    try {
      if (await full() && !done) {
        done = true;
        onFull();
      }
    } catch {
      // The directory is gone (the sandbox is closing): nothing to watch.
    } finally {
      busy = false;
    }
  }, intervalMs);
  return () => {
    done = true;
    clearInterval(timer);
  };
}

/** An entry's cost; NotFound (deleted meanwhile) is 0, anything else throws. */
async function costOf(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

function bytesOf(info: Deno.FileInfo): number {
  return Math.max(
    MIN_ENTRY_BYTES,
    info.blocks !== null ? info.blocks * 512 : info.size,
  );
}

/**
 * Sums the allocated size of everything under `root`, without following
 * symlinks (a link to a large host file must not count, nor be read).
 * Fails closed: an entry that exists but cannot be measured (a path past
 * PATH_MAX, ENAMETOOLONG; a directory the harness cannot read) makes the
 * size Infinity, so a program cannot hide data from the quota by nesting
 * it deeper than a walk can reach.
 *
 * @param root Directory to measure.
 * @returns Bytes used (from block counts, so sparse files count their real
 *   use), charging the directory itself and each entry at least
 *   {@linkcode MIN_ENTRY_BYTES}; 0 when `root` does not exist; Infinity
 *   when part of the tree cannot be measured.
 *
 * @example Usage
 * ```ts
 * import { directorySize } from "./scratch_quota.ts";
 * console.log(await directorySize("/nonexistent")); // 0
 * ```
 */
export async function directorySize(root: string): Promise<number> {
  try {
    const top = await costOf(root);
    if (top === null) return 0;
    // Every entry costs at least one block: thousands of empty files take
    // inodes and directory space the block counts alone would not show.
    let total = bytesOf(top);
    const stack = [root];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      try {
        for await (const entry of Deno.readDir(dir)) {
          const info = await costOf(`${dir}/${entry.name}`);
          if (info === null) continue; // deleted while we looked
          total += bytesOf(info);
          if (info.isDirectory) stack.push(`${dir}/${entry.name}`);
        }
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        // the directory vanished mid-walk
      }
    }
    return total;
  } catch {
    // ENAMETOOLONG (nested past PATH_MAX), EACCES, ELOOP...: unmeasurable
    // means over the quota, never "skipped".
    return Infinity;
  }
}
