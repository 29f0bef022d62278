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
 * @module
 */

/** The host identity of one sandbox. */
export interface SandboxIdentity {
  /** Host uid to drop to before bwrap, or null to keep the harness's. */
  hostUid: number | null;
  /** Host gid to drop to, or null. */
  hostGid: number | null;
  /** Whether RLIMIT_NPROC can be applied (only with a private host uid). */
  enforceProcesses: boolean;
  /** Releases the uid for reuse. Idempotent. */
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
}

/**
 * Hands out distinct host uids to concurrent sandboxes.
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

  /** @param options Pool range; defaults suit a root harness. */
  constructor(options: IdentityPoolOptions = {}) {
    this.#private = !options.shareHarnessUid && isRoot();
    const range = options.first !== undefined
      ? { first: options.first, size: options.size ?? 65536 }
      : defaultRange();
    this.#first = range.first;
    this.#size = options.size ?? range.size;
  }

  /** Whether sandboxes get their own host uid. */
  get privateUids(): boolean {
    return this.#private;
  }

  /**
   * Takes a free identity.
   *
   * @returns The identity; call `release()` when the sandbox is gone.
   * @throws {RangeError} If every uid of the pool is in use.
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
    let uid: number;
    do {
      uid = this.#first + Math.floor(Math.random() * this.#size);
    } while (this.#inUse.has(uid));
    this.#inUse.add(uid);
    const inUse = this.#inUse;
    let released = false;
    return {
      hostUid: uid,
      hostGid: uid,
      enforceProcesses: true,
      release() {
        if (!released) inUse.delete(uid);
        released = true;
      },
    };
  }
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
 * The rows of this process's uid map. Deno requires --allow-all to read
 * /proc/self, so a `cat` (same user namespace) reads it for us.
 */
function readUidMap(): [number, number, number][] {
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
    return [];
  }
  const rows: [number, number, number][] = [];
  for (const line of text.trim().split("\n")) {
    const nums = line.trim().split(/\s+/).map(Number);
    if (nums.length === 3 && nums.every(Number.isSafeInteger)) {
      rows.push(nums as [number, number, number]);
    }
  }
  return rows;
}
