/**
 * The scratch directory's size quota. The scratch directory is a host
 * directory (it outlives each run), and without cgroups or filesystem quotas
 * nothing in the kernel bounds a directory's total size. RLIMIT_FSIZE bounds
 * each file; this watcher bounds the sum by measuring while a run is live
 * and stopping the run when it passes the quota.
 *
 * @module
 */

/** What an entry costs at the least (one filesystem block). */
export const MIN_ENTRY_BYTES = 4096;

async function blocksOf(path: string): Promise<number> {
  try {
    const info = await Deno.lstat(path);
    return Math.max(
      MIN_ENTRY_BYTES,
      info.blocks !== null ? info.blocks * 512 : info.size,
    );
  } catch {
    return 0;
  }
}

/**
 * Sums the allocated size of everything under `root`, without following
 * symlinks (a link to a large host file must not count, nor be read).
 *
 * @param root Directory to measure.
 * @returns Bytes used (from block counts, so sparse files count their real
 *   use), charging the directory itself and each entry at least
 *   {@linkcode MIN_ENTRY_BYTES}.
 *
 * @example Usage
 * ```ts ignore
 * import { directorySize } from "./_scratch_quota.ts";
 * console.log(await directorySize("/tmp"));
 * ```
 */
export async function directorySize(root: string): Promise<number> {
  // Every entry costs at least one block: thousands of empty files take
  // inodes and directory space the block counts alone would not show.
  let total = await blocksOf(root);
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let entries: AsyncIterable<Deno.DirEntry>;
    try {
      entries = Deno.readDir(dir);
      for await (const entry of entries) {
        const path = `${dir}/${entry.name}`;
        try {
          const info = await Deno.lstat(path);
          total += Math.max(
            MIN_ENTRY_BYTES,
            info.blocks !== null ? info.blocks * 512 : info.size,
          );
          if (info.isDirectory) stack.push(path);
        } catch {
          // deleted while we looked
        }
      }
    } catch {
      // directory vanished mid-walk
    }
  }
  return total;
}

/**
 * Polls `root` (or several roots, summed) every `intervalMs` and calls
 * `onExceeded` once when the size passes `quotaBytes`.
 *
 * @param root The scratch directory.
 * @param quotaBytes The quota.
 * @param onExceeded Called once on the first overflow.
 * @param intervalMs Poll period.
 * @returns A function that stops watching.
 *
 * @example Usage
 * ```ts ignore
 * const stop = watchQuota("/scratch-host", 1 << 20, () => console.log("full"));
 * stop();
 * ```
 */
export function watchQuota(
  root: string | readonly string[],
  quotaBytes: number,
  onExceeded: () => void,
  intervalMs = 100,
): () => void {
  let busy = false;
  let done = false;
  const timer = setInterval(async () => {
    if (busy || done) return;
    busy = true;
    try {
      const roots = typeof root === "string" ? [root] : root;
      let used = 0;
      for (const dir of roots) used += await directorySize(dir);
      if (used > quotaBytes && !done) {
        done = true;
        onExceeded();
      }
    } finally {
      busy = false;
    }
  }, intervalMs);
  return () => {
    done = true;
    clearInterval(timer);
  };
}
