/**
 * Test helpers that find a sandbox's host processes and runs from the
 * outside, through /proc and the workspace, without asking the harness.
 *
 * A sandbox keeps its next run's process waiting while idle (warm start),
 * so "no process under the workspace" is not what an ended run leaves;
 * these helpers follow one run: its directory gets `code/main.js` when the
 * run is handed its program, and its bwrap names that directory.
 *
 * @module
 */

/**
 * Host processes whose command line mentions `text`.
 *
 * @param text A path (or any text) to look for.
 * @returns Their pids.
 *
 * @example Usage
 * ```ts
 * import { processesMentioning } from "./sandbox_processes.ts";
 * console.log(processesMentioning("/nonexistent/").length); // 0
 * ```
 */
export function processesMentioning(text: string): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    try {
      if (Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).includes(text)) {
        found.push(Number(entry.name));
      }
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/**
 * The bwrap processes of sandboxes under `root` (each names its run's
 * directory): live runs and waiting warm-start processes alike.
 *
 * @param root A workspace (or workspace parent) directory.
 * @returns Their pids.
 *
 * @example Usage
 * ```ts
 * import { bwrapProcesses } from "./sandbox_processes.ts";
 * console.log(bwrapProcesses("/nonexistent")); // []
 * ```
 */
export function bwrapProcesses(root: string): number[] {
  return processesMentioning(`${root}/`).filter((pid) => {
    try {
      const argv0 =
        Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0")[0];
      return argv0?.endsWith("bwrap") ?? false;
    } catch {
      return false; // exited while we looked
    }
  });
}

/**
 * One pid per launched sandbox under `root`: bwrap's monitor (a bwrap
 * process whose parent is not bwrap). A sandbox has two bwrap processes
 * once it is up (the monitor and the namespace's pid 1, which the monitor
 * forks a moment after it starts), so counting bwrap processes sees one
 * sandbox as one or two depending on when it looks; counting monitors does
 * not.
 *
 * @param root A workspace (or workspace parent) directory.
 * @returns The monitors' pids.
 *
 * @example Usage
 * ```ts
 * import { sandboxMonitors } from "./sandbox_processes.ts";
 * console.log(sandboxMonitors("/nonexistent")); // []
 * ```
 */
export function sandboxMonitors(root: string): number[] {
  const bwraps = bwrapProcesses(root);
  return bwraps.filter((pid) => {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      // Fields after the command's closing parenthesis: state, ppid, ...
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      return !bwraps.includes(ppid);
    } catch {
      return false; // exited while we looked
    }
  });
}

/**
 * Run directories under `root` whose program has been delivered (they hold
 * `code/main.js`): runs that have started, as opposed to waiting processes.
 *
 * @param root A workspace parent directory.
 * @returns Host paths of those run directories.
 *
 * @example Usage
 * ```ts
 * import { startedRunDirs } from "./sandbox_processes.ts";
 * console.log(startedRunDirs("/nonexistent")); // []
 * ```
 */
export function startedRunDirs(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      return; // removed while we looked
    }
    for (const entry of entries) {
      if (!entry.isDirectory) continue;
      const path = `${dir}/${entry.name}`;
      if (/^run-\d+$/.test(entry.name)) {
        try {
          Deno.statSync(`${path}/code/main.js`);
          found.push(path);
        } catch {
          // not started (or already cleaned up)
        }
      } else if (depth < 4) {
        walk(path, depth + 1);
      }
    }
  };
  walk(root, 0);
  return found;
}

/**
 * Waits until some run under `root` has started and returns the pids of its
 * host processes (bwrap names the run's directory).
 *
 * @param root A workspace parent directory.
 * @param timeoutMs How long to wait.
 * @returns The run's directory and its host process ids.
 * @throws {Error} If no run starts in time.
 *
 * @example Usage
 * ```ts ignore
 * const run = await startedRun(parent);
 * ```
 */
export async function startedRun(
  root: string,
  timeoutMs = 60_000,
): Promise<{ dir: string; pids: number[] }> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const dir of startedRunDirs(root)) {
      const pids = processesMentioning(`${dir}/`);
      if (pids.length > 0) return { dir, pids };
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`No run started under '${root}' in ${timeoutMs} ms`);
}

/**
 * Whether any of `pids` is still a live process.
 *
 * @param pids Process ids.
 * @returns True while one of them exists.
 *
 * @example Usage
 * ```ts
 * import { anyAlive } from "./sandbox_processes.ts";
 * console.log(anyAlive([Deno.pid])); // true
 * ```
 */
export function anyAlive(pids: readonly number[]): boolean {
  return pids.some((pid) => {
    try {
      Deno.statSync(`/proc/${pid}`);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Whether anything (a file, directory, socket or dangling symlink) is at
 * `path`: what a sandbox may leave behind in its workspace.
 *
 * @param path The path.
 * @returns True if an entry exists there.
 *
 * @example Usage
 * ```ts
 * import { pathExists } from "./sandbox_processes.ts";
 * console.log(pathExists("/nonexistent/x")); // false
 * ```
 */
export function pathExists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Polls `check` every 100 ms until it holds or `ms` pass: processes and
 * files a closed sandbox leaves go away asynchronously.
 *
 * @param check The condition.
 * @param ms How long to wait at most.
 * @returns Whether it held in time.
 *
 * @example Usage
 * ```ts
 * import { pollUntil } from "./sandbox_processes.ts";
 * console.log(await pollUntil(() => true)); // true
 * ```
 */
export async function pollUntil(
  check: () => boolean,
  ms = 30_000,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return true;
}

/**
 * Removes a test's workspace parent once nothing is mounted under it. A
 * harness killed by a failing test leaves its scratch filesystems to the
 * workspace watchdog, which unmounts them a moment after the harness died;
 * removing before then fails with EBUSY, and that error would hide the
 * test's own failure. After `ms` the last error is thrown.
 *
 * @param dir The directory to remove.
 * @param ms How long to wait for the watchdogs at most.
 *
 * @example Usage
 * ```ts
 * import { removeWhenUnmounted } from "./sandbox_processes.ts";
 * const dir = await Deno.makeTempDir();
 * await removeWhenUnmounted(dir);
 * ```
 */
export async function removeWhenUnmounted(
  dir: string,
  ms = 30_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (true) {
    try {
      await Deno.remove(dir, { recursive: true });
      return;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      if (!(error instanceof Deno.errors.Busy) || Date.now() > deadline) {
        throw error;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
