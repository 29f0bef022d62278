/**
 * The scratch quota, enforced by the kernel: a filesystem of exactly the
 * quota's size, mounted where a sandbox's writable files live (its
 * workspace's `box/`: the scratch directory, each run's TMPDIR and code).
 * Whatever a program does (files nested past PATH_MAX, files unlinked and
 * held open, millions of empty files), a write past the quota fails with
 * ENOSPC ("No space left on device"), as on a full disk: the program sees
 * the error and the run goes on. The host disk never holds more than the
 * quota for it.
 *
 * Modes, in the order "auto" tries them:
 * - `"loop"`: a sparse image file of `quotaBytes`, formatted ext4 (no
 *   journal) and loop-mounted. Needs root, loop devices and mkfs.ext4. The
 *   image's host blocks are the scratch's whole host cost; they are never
 *   handed back before the sandbox closes (no `discard`), so they are also
 *   the most it ever used.
 * - `"walk"`: no filesystem of its own; the harness measures the
 *   directories (`harness/_run/scratch_quota.ts`) and stops the run. Used where
 *   the harness cannot mount (not root, no loop devices: most containers).
 *   Files unlinked while held open escape it (see SECURITY.md).
 * - `"tmpfs"` (only when asked for): a sized tmpfs. It costs RAM, not disk,
 *   up to the quota per sandbox (256 MiB by default), which is why "auto"
 *   never picks it.
 *
 * Every mount is `nosuid,nodev,noexec`, owned by the sandbox's uid, and
 * unmounted (the loop device detaches with it) on close, by the workspace's
 * watchdog when the harness dies, or by {@linkcode sweepLeftoverWorkspaces}
 * when the watchdog died too.
 *
 * @module
 */

import { statfs } from "node:fs/promises";
import { findOnPath } from "./host_tools.ts";

/** How a sandbox's scratch quota is enforced. */
export type ScratchQuotaMode = "loop" | "tmpfs" | "walk";

/** What an operator asks for: a mode, or "auto" (loop where possible, else walk). */
export type ScratchFsRequest = "auto" | ScratchQuotaMode;

/** Where system tools are looked up: never `$PATH` (they run as root). */
const SYSTEM_PATH =
  "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const KIB = 1024;
const MIB = 1024 * KIB;

/** Smallest quota a filesystem is made for (mkfs.ext4 needs some room). */
export const MIN_VOLUME_BYTES = MIB;

/** Bytes of the filesystem per inode (mkfs.ext4 `-i`): 64 per MiB. */
const BYTES_PER_INODE = 16 * KIB;

/**
 * Free inodes below which no new run starts: the harness needs a few for
 * the run's own directories, files and sockets.
 */
export const INODE_MARGIN = 16;

/**
 * Blocks only root (the harness) may use: room for the harness's own files
 * (a run's code and status) when the program has filled its share. Inodes
 * have no such reserve (see {@linkcode INODE_MARGIN}).
 */
function rootReserve(quotaBytes: number): number {
  return Math.min(4 * MIB, Math.max(64 * KIB, Math.floor(quotaBytes / 64)));
}

/** What a scratch filesystem holds. */
export interface VolumeUsage {
  /** Size of the filesystem (after its own metadata). */
  totalBytes: number;
  /** Bytes in use. */
  usedBytes: number;
  /** Bytes the sandbox may still write (root's reserve excluded). */
  freeBytes: number;
  /** Inodes left. */
  freeInodes: number;
}

/** Options for {@linkcode ScratchVolume.mount}. */
export interface ScratchVolumeOptions {
  /** The mount point: an existing, empty directory. */
  dir: string;
  /** The quota in bytes (the filesystem's size, image included). */
  quotaBytes: number;
  /** "loop" or "tmpfs". */
  mode: "loop" | "tmpfs";
  /** Where the loop image goes (a harness-only directory). */
  imagePath: string;
  /** Owner of the filesystem's root directory (null: the harness). */
  owner: { uid: number; gid: number } | null;
}

/**
 * A mounted, size-capped scratch filesystem.
 *
 * @example Usage
 * ```ts ignore
 * import { ScratchVolume } from "./scratch_volume.ts";
 * const volume = await ScratchVolume.mount({
 *   dir: "/tmp/ws/box",
 *   quotaBytes: 16 << 20,
 *   mode: "loop",
 *   imagePath: "/tmp/ws/private/scratch.img",
 *   owner: { uid: 2000000000, gid: 2000000000 },
 * });
 * console.log((await volume.usage()).freeBytes);
 * await volume.unmount();
 * ```
 */
export class ScratchVolume {
  /** "loop" or "tmpfs". */
  readonly mode: "loop" | "tmpfs";
  /** The mount point. */
  readonly dir: string;
  /** The quota (the filesystem's size). */
  readonly quotaBytes: number;
  /** The loop image, or null for tmpfs. */
  readonly imagePath: string | null;
  #mounted = true;

  private constructor(options: ScratchVolumeOptions) {
    this.mode = options.mode;
    this.dir = options.dir;
    this.quotaBytes = options.quotaBytes;
    this.imagePath = options.mode === "loop" ? options.imagePath : null;
  }

  /**
   * Creates the filesystem and mounts it on `dir` (nosuid, nodev, noexec,
   * its root owned by `owner`, mode 0700).
   *
   * @param options Where, how big, which mode, whose.
   * @returns The mounted volume.
   * @throws {Error} When a tool is missing or the mount fails (the image is
   *   deleted again).
   */
  static async mount(options: ScratchVolumeOptions): Promise<ScratchVolume> {
    const { dir, quotaBytes, owner } = options;
    if (!Number.isSafeInteger(quotaBytes) || quotaBytes < MIN_VOLUME_BYTES) {
      throw new RangeError(
        `Cannot make a scratch filesystem of ${quotaBytes} bytes: it must be a whole number of at least ${MIN_VOLUME_BYTES}`,
      );
    }
    const mount = systemTool("mount");
    // nosuid, nodev: a set-uid binary or a device node a program leaves in
    // its scratch must never mean anything (the mount is on the host).
    // noexec: nothing in a sandbox executes its own files.
    const flags = "nosuid,nodev,noexec,noatime";
    if (options.mode === "tmpfs") {
      const inodes = Math.max(64, Math.floor(quotaBytes / BYTES_PER_INODE));
      const ids = owner ? `,uid=${owner.uid},gid=${owner.gid}` : "";
      await run(mount, [
        "-t",
        "tmpfs",
        "-o",
        `${flags},size=${quotaBytes},nr_inodes=${inodes},mode=0700${ids}`,
        "airlock-scratch",
        dir,
      ], "mount the scratch tmpfs");
      return new ScratchVolume(options);
    }
    const mkfs = systemTool("mkfs.ext4");
    const image = options.imagePath;
    try {
      // Sparse: the image takes host blocks only as the program writes.
      const file = await Deno.open(image, {
        write: true,
        createNew: true,
        mode: 0o600,
      });
      try {
        await file.truncate(quotaBytes);
      } finally {
        file.close();
      }
      const reservePercent = (rootReserve(quotaBytes) / quotaBytes) * 100;
      await run(mkfs, [
        "-q",
        "-F",
        // No journal (nothing survives a crash anyway), no room kept for
        // growing it: the quota goes to files.
        "-O",
        "^has_journal,^resize_inode",
        "-i",
        String(BYTES_PER_INODE),
        "-m",
        reservePercent.toFixed(4),
        "-E",
        `nodiscard${owner ? `,root_owner=${owner.uid}:${owner.gid}` : ""}`,
        "-L",
        "airlock-scratch",
        image,
      ], "format the scratch image");
      // noinit_itable: the fresh image reads as zeros, so the kernel need
      // not write its inode tables (which would spend host disk and I/O).
      await run(mount, [
        "-o",
        `loop,${flags},noinit_itable`,
        "-t",
        "ext4",
        image,
        dir,
      ], "mount the scratch image");
    } catch (error) {
      await Deno.remove(image).catch(() => {});
      throw error;
    }
    const volume = new ScratchVolume(options);
    try {
      // The program never sees the filesystem's root, but keep it tidy.
      await Deno.remove(`${dir}/lost+found`).catch(() => {});
      await Deno.chmod(dir, 0o700);
    } catch (error) {
      await volume.unmount();
      throw error;
    }
    return volume;
  }

  /** Whether it is still mounted. */
  get mounted(): boolean {
    return this.#mounted;
  }

  /**
   * What the filesystem holds, from one statfs (about 80 µs): files
   * unlinked but still open count too.
   *
   * @returns Sizes and free space.
   */
  async usage(): Promise<VolumeUsage> {
    const s = await statfs(this.dir);
    return {
      totalBytes: s.blocks * s.bsize,
      usedBytes: (s.blocks - s.bfree) * s.bsize,
      freeBytes: s.bavail * s.bsize,
      freeInodes: s.ffree,
    };
  }

  /**
   * What the scratch costs the host: the image's allocated blocks (loop,
   * at most the quota, and never less than the most it ever held), or the
   * tmpfs's used bytes (RAM).
   *
   * @returns Bytes.
   */
  async hostBytes(): Promise<number> {
    if (this.imagePath === null) return (await this.usage()).usedBytes;
    const info = await Deno.lstat(this.imagePath);
    return (info.blocks ?? 0) * 512;
  }

  /**
   * Unmounts (lazily if something still holds it: it goes once released);
   * a loop mount's device detaches with it. The image file stays for the
   * caller to delete with its directory. Idempotent.
   */
  async unmount(): Promise<void> {
    if (!this.#mounted) return;
    this.#mounted = false;
    await unmountDir(this.dir);
  }
}

/**
 * Unmounts `dir`, lazily when it is busy.
 *
 * @param dir A mount point.
 */
async function unmountDir(dir: string): Promise<void> {
  const umount = systemTool("umount");
  const first = await output(umount, [dir]);
  if (first.code === 0) return;
  // Busy (a process still has a file open in it): detach now, free later.
  const lazy = await output(umount, ["-l", dir]);
  if (lazy.code !== 0 && !/not mounted|no mount point/i.test(lazy.text)) {
    throw new Error(
      `Cannot unmount the scratch filesystem at '${dir}': ${lazy.text.trim()}; unmount it by hand (umount -l '${dir}')`,
    );
  }
}

// ---------------------------------------------------------------------------
// Choosing a mode

/** Why a mode cannot work here, or null when it can. */
export interface ScratchFsSupport {
  /** Why a loop-mounted image cannot be used, or null. */
  loop: string | null;
  /** Why a sized tmpfs cannot be used, or null. */
  tmpfs: string | null;
}

let tried: { worked: boolean; why: string | null } | null = null;

/**
 * What this host offers, from what is installed and who the harness is
 * (no mount is tried: {@linkcode chooseScratchFs} tries the first one).
 *
 * @returns Why each mode cannot work, or null when it can.
 *
 * @example Usage
 * ```ts
 * import { scratchFsSupport } from "./scratch_volume.ts";
 * const support = scratchFsSupport();
 * console.log(support.loop ?? "loop-mounted scratch images work here");
 * ```
 */
export function scratchFsSupport(): ScratchFsSupport {
  let root = false;
  try {
    root = Deno.uid() === 0;
  } catch { /* no permission to ask: treat as not root */ }
  const mountTools = ["mount", "umount"].filter((t) =>
    !findOnPath(t, SYSTEM_PATH)
  );
  const notRoot = "the harness is not root (mounting needs root)";
  const tmpfs = !root
    ? notRoot
    : mountTools.length > 0
    ? `${mountTools.join(", ")} not installed (apt-get install -y mount)`
    : null;
  let loop = tmpfs;
  if (loop === null && !findOnPath("mkfs.ext4", SYSTEM_PATH)) {
    loop = "mkfs.ext4 is not installed (apt-get install -y e2fsprogs)";
  }
  if (loop === null && !exists("/dev/loop-control") && !exists("/dev/loop0")) {
    loop = "no loop devices (/dev/loop-control is missing)";
  }
  if (loop === null && tried && !tried.worked) loop = tried.why;
  return { loop, tmpfs };
}

/**
 * Resolves an operator's request to a mode. "auto" picks "loop" when this
 * host supports it, else "walk"; an explicit "loop" or "tmpfs" that cannot
 * work is an error (fail closed: never a silently weaker quota).
 *
 * @param request The operator's choice.
 * @returns The mode to use.
 * @throws {Error} When the requested mode is not available here.
 *
 * @example Usage
 * ```ts
 * import { chooseScratchFs } from "./scratch_volume.ts";
 * console.log(chooseScratchFs("walk")); // "walk"
 * ```
 */
export function chooseScratchFs(request: ScratchFsRequest): ScratchQuotaMode {
  if (request === "walk") return "walk";
  const support = scratchFsSupport();
  if (request === "auto") return support.loop === null ? "loop" : "walk";
  const why = support[request];
  if (why !== null) {
    throw new Error(
      `Cannot enforce the scratch quota with a ${request} filesystem: ${why}; choose scratchFs "auto" or "walk", or fix the host ('deno task doctor')`,
    );
  }
  return request;
}

/**
 * Mounts a volume for an "auto" choice: the first loop mount of a process
 * is the real probe. If it fails before any has worked, the host cannot
 * do it (a container without mount rights), and "auto" means "walk" from
 * then on; once one worked, a failure is an error like any other.
 *
 * @param options The volume (its mode is "loop").
 * @returns The volume, or null to fall back to "walk".
 * @throws {Error} When a loop mount fails after one has worked.
 *
 * @example Usage
 * ```ts ignore
 * const volume = await mountAuto({ dir, quotaBytes, mode: "loop", imagePath, owner });
 * console.log(volume ? volume.mode : "walk");
 * ```
 */
export async function mountAuto(
  options: ScratchVolumeOptions,
): Promise<ScratchVolume | null> {
  try {
    const volume = await ScratchVolume.mount(options);
    tried = { worked: true, why: null };
    return volume;
  } catch (error) {
    if (tried?.worked) throw error;
    tried = {
      worked: false,
      why: `a trial loop mount failed (${(error as Error).message})`,
    };
    return null;
  }
}

/**
 * Mounts, writes past and unmounts a 1 MiB loop volume in a throwaway
 * directory: whether "auto" will give sandboxes a scratch filesystem here
 * (for `deno task doctor`).
 *
 * @param tmpDir Where to try (default `/tmp`).
 * @returns Null when it works, else why not.
 *
 * @example Usage
 * ```ts ignore
 * import { trialScratchFs } from "./scratch_volume.ts";
 * console.log((await trialScratchFs()) ?? "loop-mounted scratch works");
 * ```
 */
export async function trialScratchFs(tmpDir = "/tmp"): Promise<string | null> {
  const why = scratchFsSupport().loop;
  if (why !== null) return why;
  const dir = await Deno.makeTempDir({ dir: tmpDir, prefix: "airlock-fs-" });
  try {
    await Deno.mkdir(`${dir}/mnt`);
    const volume = await ScratchVolume.mount({
      dir: `${dir}/mnt`,
      quotaBytes: MIN_VOLUME_BYTES,
      mode: "loop",
      imagePath: `${dir}/image`,
      owner: null,
    });
    try {
      const refused = await Deno.writeFile(
        `${dir}/mnt/fill`,
        new Uint8Array(2 * MIN_VOLUME_BYTES),
      ).then(() => false, () => true);
      return refused ? null : "a 1 MiB scratch filesystem took 2 MiB";
    } finally {
      await volume.unmount();
    }
  } catch (error) {
    return (error as Error).message;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// Leftovers of dead harnesses

/** Who created a workspace, to tell later whether it is still alive. */
export interface WorkspaceOwner {
  /** The harness's pid. */
  pid: number;
  /** Its start time (clock ticks since boot, /proc/pid/stat field 22). */
  start: string;
  /** The kernel's boot id (a reboot ends every harness). */
  boot: string;
  /** Its pid namespace (pids are only comparable within one). */
  pidns: string;
}

/**
 * The current process as a workspace owner.
 *
 * @returns Its pid, start time, boot id and pid namespace.
 *
 * @example Usage
 * ```ts
 * import { currentOwner } from "./scratch_volume.ts";
 * console.log(currentOwner().pid === Deno.pid);
 * ```
 */
export function currentOwner(): WorkspaceOwner {
  return {
    pid: Deno.pid,
    start: startTime(Deno.pid) ?? "",
    boot: readText("/proc/sys/kernel/random/boot_id"),
    pidns: readLink("/proc/self/ns/pid"),
  };
}

/** Whether `owner` is provably gone (false when it cannot be told). */
function ownerDead(owner: WorkspaceOwner): boolean {
  const me = currentOwner();
  if (!owner.boot || !me.boot) return false;
  if (owner.boot !== me.boot) return true; // created before a reboot
  if (!owner.pidns || owner.pidns !== me.pidns) return false; // not ours to judge
  const start = startTime(owner.pid);
  return start === null || start !== owner.start;
}

/**
 * Deletes the workspaces of harnesses that are gone (their watchdog died
 * with them: a SIGKILL to the whole process group, a container stop):
 * unmounts their scratch filesystems (detaching the loop devices) and
 * deletes the trees with their images. Only workspaces whose owner file
 * proves the owner dead are touched; anything else is left alone.
 *
 * @param tmpDir The directory holding `airlock-*` workspaces.
 * @returns How many workspaces were removed.
 *
 * @example Usage
 * ```ts ignore
 * import { sweepLeftoverWorkspaces } from "./scratch_volume.ts";
 * console.log(await sweepLeftoverWorkspaces("/tmp"));
 * ```
 */
export async function sweepLeftoverWorkspaces(tmpDir: string): Promise<number> {
  const roots = new Set<string>();
  try {
    for await (const entry of Deno.readDir(tmpDir)) {
      if (entry.isDirectory && /^airlock-[A-Za-z0-9_]+$/.test(entry.name)) {
        roots.add(`${tmpDir}/${entry.name}`);
      }
    }
  } catch {
    return 0;
  }
  const mounts = mountPoints();
  let removed = 0;
  for (const root of roots) {
    let owner: WorkspaceOwner;
    try {
      owner = JSON.parse(await Deno.readTextFile(`${root}/private/owner`));
    } catch {
      continue; // no owner file: not ours to judge (or being created)
    }
    if (!ownerDead(owner)) continue;
    try {
      for (const mount of mounts) {
        if (mount === `${root}/box`) await unmountDir(mount);
      }
      await Deno.remove(root, { recursive: true });
      removed++;
    } catch {
      // Still busy: the next sweep tries again.
    }
  }
  return removed;
}

/** Every mount point of this mount namespace. */
function mountPoints(): string[] {
  try {
    return readText("/proc/self/mountinfo").split("\n").filter(Boolean).map(
      (line) =>
        (line.split(" ")[4] ?? "").replace(
          /\\([0-7]{3})/g,
          (_, octal) => String.fromCharCode(parseInt(octal, 8)),
        ),
    );
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------
// Helpers

function systemTool(name: string): string {
  const path = findOnPath(name, SYSTEM_PATH);
  if (!path) {
    throw new Error(
      `Cannot make a scratch filesystem as '${name}' is not installed: run 'apt-get install -y ${
        name === "mkfs.ext4" ? "e2fsprogs" : "mount"
      }' or choose scratchFs "walk"`,
    );
  }
  return path;
}

async function output(
  cmd: string,
  args: string[],
): Promise<{ code: number; text: string }> {
  const out = await new Deno.Command(cmd, {
    args,
    clearEnv: true,
    env: { PATH: SYSTEM_PATH, LC_ALL: "C" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    text: decoder.decode(out.stderr) + decoder.decode(out.stdout),
  };
}

async function run(cmd: string, args: string[], what: string): Promise<void> {
  const { code, text } = await output(cmd, args);
  if (code !== 0) {
    throw new Error(
      `Cannot ${what}: ${cmd.split("/").pop()} exited with ${code} (${
        text.trim().split("\n")[0] ?? ""
      }); run 'deno task doctor', or choose scratchFs "walk"`,
    );
  }
}

function startTime(pid: number): string | null {
  try {
    const stat = readText(`/proc/${pid}/stat`);
    // The command name (field 2) may hold spaces: count after its ')'.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

function readText(path: string): string {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return "";
  }
}

function readLink(path: string): string {
  try {
    return Deno.readLinkSync(path);
  } catch {
    return "";
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
