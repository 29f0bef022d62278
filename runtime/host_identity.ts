/**
 * Which host uid a sandbox runs as.
 *
 * When the harness is root, each sandbox gets its own unused host uid
 * (the spawn drops to it before `bwrap` runs). Two reasons, both measured on our hosts:
 * - with root's uid, the namespace's uid 65534 maps to host root, and the
 *   kernel exempts root from RLIMIT_NPROC: a thread bomb is not stopped;
 * - a per-sandbox uid means an escape from one sandbox's mount namespace
 *   meets plain DAC walls: it owns nothing of the host or of other sandboxes.
 *
 * When the harness is not root, the sandbox runs as the harness's user (the
 * only possibility without privileges) and RLIMIT_NPROC is not applied,
 * because the kernel would count every process of that user against it.
 *
 * A uid belongs to one sandbox of one harness at a time, across every
 * harness process on the host (a CLI run beside a server): each is claimed
 * by an exclusive `flock` on a file named after it in a root-only directory
 * (`/run/airlock/uids`), held for the sandbox's life. The kernel drops the
 * lock when its holder dies, however it dies, so a dead harness never keeps
 * a uid; the file it leaves behind marks the uid as one whose processes may
 * have outlived it, and the next harness kills them before anything runs
 * as that uid again.
 *
 * @module
 */

/** Where root harnesses claim uids, host-wide (a tmpfs: cleared at boot). */
const DEFAULT_LOCK_DIR = "/run/airlock/uids";

/** The host identity of one sandbox. */
export interface SandboxIdentity {
  /** Host uid to drop to before bwrap, or null to keep the harness's. */
  hostUid: number | null;
  /** Host gid to drop to, or null. */
  hostGid: number | null;
  /** Whether RLIMIT_NPROC can be applied (only with a private host uid). */
  enforceProcesses: boolean;
  /**
   * Releases the uid for reuse. Idempotent. With a private uid, whatever
   * still runs as it is killed first; a uid whose processes survive that
   * (still exiting) is only handed out again after a later sweep.
   */
  release(): void;
}

/** Options for {@linkcode SandboxIdentityPool}. */
export interface IdentityPoolOptions {
  /** First uid of the pool. Default: chosen from `/proc/self/uid_map`. */
  first?: number;
  /** Number of uids in the pool. */
  size?: number;
  /** Force the harness-uid mode even as root (not recommended). */
  shareHarnessUid?: boolean;
  /**
   * Directory of the host-wide uid claims; default `/run/airlock/uids`.
   * Every harness on the host must use the same one: harnesses with
   * different directories can hand out the same uid.
   */
  lockDir?: string;
}

/**
 * Hands out distinct host uids to concurrent sandboxes, exclusive across
 * every harness process on the host.
 *
 * @example Usage
 * ```ts
 * import { SandboxIdentityPool } from "./host_identity.ts";
 * const pool = new SandboxIdentityPool({ shareHarnessUid: true });
 * const id = pool.acquire();
 * console.log(id.hostUid); // null: runs as the harness user
 * id.release();
 * ```
 */
export class SandboxIdentityPool {
  #inUse = new Set<number>();
  #first: number;
  #size: number;
  #private: boolean;
  #lockDir: string;
  #lockDirReady = false;
  /**
   * Uids a dead harness left processes running as, which the last sweep
   * could not clear yet (SIGKILLed processes still exiting on a busy host):
   * swept again on each `acquire()`.
   */
  #unswept = new Set<number>();

  /**
   * Builds a pool; nothing is claimed until `acquire()`.
   *
   * @param options Pool range; defaults suit a root harness.
   */
  constructor(options: IdentityPoolOptions = {}) {
    this.#private = !options.shareHarnessUid && isRoot();
    const range = options.first !== undefined
      ? { first: options.first, size: options.size ?? 65536 }
      : defaultRange();
    this.#first = range.first;
    this.#size = options.size ?? range.size;
    this.#lockDir = options.lockDir ?? DEFAULT_LOCK_DIR;
  }

  /** Whether sandboxes get their own host uid. */
  get privateUids(): boolean {
    return this.#private;
  }

  /**
   * Takes a free identity: a uid no sandbox of any harness on this host
   * holds. Any process still running as it (left by a harness that died)
   * is killed first; a uid whose leftovers are still alive after that is
   * skipped (never handed out) and swept again on a later call.
   *
   * @returns The identity; call `release()` when the sandbox is gone.
   * @throws {RangeError} If every uid of the pool is in use, or the only
   *   free ones still have a dead harness's processes running as them.
   * @throws {Error} If the claim directory is unusable (fail closed: an
   *   unclaimed uid could be another harness's).
   */
  acquire(): SandboxIdentity {
    if (!this.#private) {
      return {
        hostUid: null,
        hostGid: null,
        enforceProcesses: false,
        release() {},
      };
    }
    if (this.#inUse.size >= this.#size) {
      throw new RangeError(
        `Cannot start another sandbox as all ${this.#size} sandbox uids are in use`,
      );
    }
    this.#prepareLockDir();
    this.#sweepUnswept();
    const occupied: number[] = [];
    // From a random start: two harnesses starting together rarely contend.
    const start = Math.floor(Math.random() * this.#size);
    for (let i = 0; i < this.#size; i++) {
      const uid = this.#first + (start + i) % this.#size;
      if (this.#inUse.has(uid)) continue;
      const claim = claimUid(this.#lockDir, uid);
      if (claim === "held") continue; // another harness's sandbox has it
      // Attack: a uid a dead harness's sandbox still runs as would let the
      // new sandbox signal or ptrace that process, and share its process
      // budget. It is never handed out while one is alive.
      if (claim === "occupied") {
        occupied.push(uid);
        this.#unswept.add(uid);
        continue;
      }
      this.#unswept.delete(uid);
      this.#inUse.add(uid);
      const inUse = this.#inUse;
      const unswept = this.#unswept;
      let released = false;
      return {
        hostUid: uid,
        hostGid: uid,
        enforceProcesses: true,
        release() {
          if (released) return;
          released = true;
          inUse.delete(uid);
          // Attack: a process that outlived its sandbox (bwrap's pid 1
          // orphaned by a monitor killed mid-start, still waiting forever;
          // a double fork) would share its uid with the next sandbox given
          // it, which could then signal or ptrace it.
          let swept = false;
          try {
            swept = killLeftovers(uid);
          } catch {
            // could not even look: treat the uid as still occupied
          }
          if (swept) return claim.release();
          claim.abandon(); // the file stays: whoever claims it sweeps first
          unswept.add(uid);
        },
      };
    }
    if (occupied.length > 0) {
      const [uid] = occupied;
      throw new RangeError(
        `Cannot start another sandbox: the free sandbox uids (${occupied.length}) still have processes left by a dead harness running as them; kill them (e.g. 'pkill -KILL -U ${uid}') and retry`,
      );
    }
    throw new RangeError(
      `Cannot start another sandbox as all ${this.#size} sandbox uids are in use (by this harness or another on this host)`,
    );
  }

  /** Sweeps again the uids an earlier sweep left occupied. */
  #sweepUnswept(): void {
    for (const uid of this.#unswept) {
      const claim = claimUid(this.#lockDir, uid);
      if (claim === "occupied") continue; // still dying: next time
      this.#unswept.delete(uid);
      if (claim !== "held") claim.release();
    }
  }

  /**
   * Creates and checks the claim directory once, and sweeps the uids whose
   * holder died (their claim files are left, unlocked).
   */
  #prepareLockDir(): void {
    if (this.#lockDirReady) return;
    const dir = this.#lockDir;
    try {
      Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new Error(
        `Cannot claim sandbox uids in '${dir}': ${
          (error as Error).message
        }: give the harness a writable run directory or set 'lockDir'`,
      );
    }
    // Attack: a directory another user can write lets them plant claims
    // (starving the pool) or symlinks the harness would open as root.
    const info = Deno.lstatSync(dir);
    if (
      !info.isDirectory || info.uid !== Deno.uid() ||
      ((info.mode ?? 0) & 0o022) !== 0
    ) {
      throw new Error(
        `Cannot claim sandbox uids in '${dir}': it must be a directory owned by the harness's user and writable by no one else; remove it or set 'lockDir'`,
      );
    }
    for (const entry of Deno.readDirSync(dir)) {
      const uid = Number(entry.name);
      if (
        !entry.isFile || !/^[1-9]\d*$/.test(entry.name) || this.#inUse.has(uid)
      ) continue;
      // A claim nobody holds: its harness died. Taking it sweeps the uid;
      // releasing deletes the file. Leftovers still dying keep the file
      // (the mark) and are swept again later.
      const claim = claimUid(dir, uid);
      if (claim === "occupied") this.#unswept.add(uid);
      else if (claim !== "held") claim.release();
    }
    this.#lockDirReady = true;
  }
}

/** A held claim on one uid. */
interface UidClaim {
  /** Deletes the claim file, then drops the lock. */
  release(): void;
  /**
   * Drops the lock and leaves the file: the uid stays marked as one whose
   * processes may still run, so its next claimer sweeps it first.
   */
  abandon(): void;
}

const encoder = new TextEncoder();

/**
 * Why a uid could not be claimed: `"held"` when another sandbox holds it
 * (or its holder is releasing it), `"occupied"` when a dead harness's
 * processes still run as it after the sweep (the claim file stays, marking
 * the uid for the next sweep).
 */
type ClaimRefusal = "held" | "occupied";

/**
 * Claims `uid` for this process: an exclusive lock on `dir/uid`, held until
 * `release()` (or until the process dies).
 *
 * Protocol: a holder deletes the file before it unlocks, so a lock taken on
 * a file that is no longer at the path (deleted between our open and our
 * lock) claims nothing and is dropped. A file found existing means its last
 * holder died without releasing: processes of that uid may still run
 * (orphaned bwrap monitors, their sandboxes), so they are killed before the
 * uid is handed out.
 */
function claimUid(dir: string, uid: number): UidClaim | ClaimRefusal {
  const path = `${dir}/${uid}`;
  let file: Deno.FsFile;
  let created = true;
  try {
    file = Deno.openSync(path, {
      read: true,
      write: true,
      createNew: true,
      mode: 0o600,
    });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) {
      throw claimError(uid, error);
    }
    created = false;
    try {
      file = Deno.openSync(path, { read: true, write: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return "held"; // just released
      throw claimError(uid, error);
    }
  }
  try {
    if (!file.tryLockSync(true)) {
      file.close();
      return "held";
    }
    const held = file.statSync();
    let current: Deno.FileInfo | null = null;
    try {
      current = Deno.lstatSync(path);
    } catch {
      // deleted by its last holder after our open
    }
    if (current?.ino !== held.ino || current?.dev !== held.dev) {
      file.close();
      return "held";
    }
    if (!created && !killLeftovers(uid)) {
      file.close(); // unlocked, not deleted: the uid stays marked
      return "occupied";
    }
    file.truncateSync(0);
    file.writeSync(encoder.encode(`${Deno.pid}\n`));
  } catch (error) {
    file.close();
    throw claimError(uid, error);
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      try {
        Deno.removeSync(path);
      } catch {
        // already gone: nothing to delete
      }
      file.close();
    },
    abandon() {
      if (released) return;
      released = true;
      file.close();
    },
  };
}

function claimError(uid: number, error: unknown): Error {
  return new Error(
    `Cannot claim sandbox uid ${uid}: ${(error as Error).message}`,
  );
}

/**
 * Kills every process running as `uid`: a shell running as that uid sends
 * SIGKILL to every process it may signal (`kill -1`: all of the uid's but
 * itself), then the harness checks `/proc` that none is left alive, a few
 * rounds at most (a process may fork while the first round runs). Only
 * safe because the uid is claimed: no live harness has a sandbox under it.
 * False when some are still alive (killed processes still exiting on a busy
 * host, or one the uid may not signal): the caller must not use the uid.
 *
 * `kill -1` is only ever sent by a process that has checked it runs as
 * `uid` (real and effective): sent as root it would kill every process on
 * the host. The kernel's own permission check is what limits it to the
 * uid; killing pids found in `/proc` as root instead could hit a reused
 * pid of another user.
 */
function killLeftovers(uid: number): boolean {
  if (!Number.isSafeInteger(uid) || uid <= 0) {
    throw new RangeError(`Cannot sweep uid ${uid}: not a sandbox uid`);
  }
  for (let round = 0; round < 10; round++) {
    if (liveProcessesOf(uid) === 0) return true;
    const out = new Deno.Command("/bin/sh", {
      args: ["-c", SWEEP_SCRIPT, "airlock-sweep", String(uid)],
      uid,
      gid: uid,
      clearEnv: true,
      cwd: "/",
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).outputSync();
    if (out.code === 2) break; // the guard refused: never kill as another uid
  }
  return liveProcessesOf(uid) === 0;
}

/** `$1` is the uid the script must run as; it kills nothing otherwise. */
const SWEEP_SCRIPT = [
  "ok=",
  "while read -r key real effective _; do",
  '  if [ "$key" = "Uid:" ]; then',
  '    [ "$real" = "$1" ] && [ "$effective" = "$1" ] && ok=1',
  "    break",
  "  fi",
  "done </proc/self/status",
  '[ -n "$ok" ] || exit 2',
  "kill -KILL -1 2>/dev/null",
  "exit 0",
].join("\n");

/** How many processes (not zombies) have `uid` as real, effective or saved uid. */
function liveProcessesOf(uid: number): number {
  let count = 0;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let status: string;
    try {
      status = Deno.readTextFileSync(`/proc/${entry.name}/status`);
    } catch {
      continue; // exited meanwhile
    }
    const uids = status.match(/^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m);
    const state = status.match(/^State:\s+(\S)/m)?.[1];
    if (
      uids && uids.slice(1).map(Number).includes(uid) && state !== "Z" &&
      state !== "X"
    ) {
      count++;
    }
  }
  return count;
}

function isRoot(): boolean {
  try {
    return Deno.uid() === 0;
  } catch {
    return false;
  }
}

/**
 * Picks a uid range no real account uses. On a host with the full identity
 * map, 2,000,000,000 and up (far above login and subuid ranges, below 2^31,
 * which bwrap cannot map); inside a
 * user-namespaced container only the mapped range exists, so take the top of
 * it, below nobody (65534).
 */
function defaultRange(): { first: number; size: number } {
  const FULL = { first: 2_000_000_000, size: 1_000_000 };
  const rows = readUidMap();
  if (rows.length === 0) return FULL;
  const [first] = rows;
  if (rows.length === 1 && first![0] === 0 && first![2] >= 4294967295) {
    return FULL;
  }
  const top = Math.max(...rows.map(([inside, , count]) => inside + count - 1));
  const last = Math.min(top, 65533);
  return { first: Math.max(1000, last - 4095), size: 4096 };
}

/**
 * The rows of this process's uid map. Deno opens /proc/self only to
 * --allow-all (which the harness has: see host_tools.ts); otherwise a
 * `cat` (same user namespace) reads it for us.
 */
function readUidMap(): [number, number, number][] {
  let text = "";
  try {
    text = Deno.readTextFileSync("/proc/self/uid_map");
  } catch {
    // not readable directly: ask cat below
  }
  if (!text) text = catUidMap();
  const rows: [number, number, number][] = [];
  for (const line of text.trim().split("\n")) {
    const nums = line.trim().split(/\s+/).map(Number);
    if (nums.length === 3 && nums.every(Number.isSafeInteger)) {
      rows.push(nums as [number, number, number]);
    }
  }
  return rows;
}

function catUidMap(): string {
  let text = "";
  try {
    const out = new Deno.Command("cat", {
      args: ["/proc/self/uid_map"],
      clearEnv: true,
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    text = new TextDecoder().decode(out.stdout);
  } catch {
    return "";
  }
  return text;
}
