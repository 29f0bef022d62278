/**
 * Learn mode's view of the user's directory: a writable, throwaway copy
 * mounted at the directory's own path, so a program that writes where it
 * runs (`Deno.mkdir("out")`) goes on running and every write is recorded by
 * the broker, while the user's files stay untouched. The copy lives in the
 * run's directory (inside the sandbox's quota filesystem where there is
 * one) and is deleted with it.
 *
 * Why a copy and not an overlay: bubblewrap 0.8 has no overlay options, and
 * an overlay would not help the sandbox's own uid anyway (writing through
 * an overlay needs write permission on the user's files as they are, which
 * an unrelated uid does not have). `.git` and `node_modules` at the top are
 * shown read-only instead of copied: they are large and rarely written.
 *
 * The copy is made by `cp` running as the sandbox's own host uid, never as
 * root. Attack: a path component of the user's directory swapped for a
 * symbolic link while it is copied (by anyone who can write there) would
 * make a root copier read any host file into the sandbox; the sandbox's uid
 * reads only what every local user can read. `cp -P` copies links as links
 * (they are resolved inside the sandbox, where the host is not).
 *
 * @module
 */

import type { Mount } from "../../runtime/bwrap_args.ts";
import type { SandboxIdentity } from "../../runtime/host_identity.ts";
import { findOnPath } from "../../runtime/host_tools.ts";
import { SandboxSetupError } from "../errors.ts";

/** Top-level directories shown read-only instead of copied. */
export const READ_ONLY_NAMES: readonly string[] = [".git", "node_modules"];

/** Most entries copied (files, directories, links). */
const MAX_ENTRIES = 50_000;
/** Most cp error lines kept. */
const MAX_PROBLEMS = 20;
/** Top-level names per cp invocation (argv stays far below its limit). */
const CP_BATCH = 500;

/** Options for {@linkcode mirrorView}. */
export interface MirrorViewOptions {
  /** Most bytes the copy may hold (regular files' sizes). */
  maxBytes: number;
  /** The sandbox's host identity: the copy is made as, and owned by, it. */
  identity: SandboxIdentity;
}

/** A mirror ready to mount. */
export interface MirrorView {
  /** The bind of the copy at the source's path, then the read-only parts. */
  mounts: Mount[];
  /** Host path of the copy (measured by a walked quota). */
  copy: string;
  /** What was copied. */
  files: number;
  /** Bytes of the copied regular files. */
  bytes: number;
  /** Top-level names shown read-only instead of copied. */
  readOnly: string[];
  /** Entries `cp` could not copy (unreadable to the sandbox's uid...). */
  problems: string[];
}

/**
 * Copies `source` into `dest` as the sandbox's uid and returns the mounts
 * that show the copy at `source`'s own path.
 *
 * @param source The user's directory (absolute).
 * @param dest A fresh path in the run's directory.
 * @param options Size bound and identity.
 * @returns The view.
 * @throws {SandboxSetupError} When the directory is larger than the bound,
 *   is not a directory, or cannot be copied at all.
 *
 * @example Usage
 * ```ts ignore
 * const view = await mirrorView("/home/me/project", `${runDir}/mirror`, { maxBytes: 128 << 20, identity });
 * mounts.push(...view.mounts);
 * ```
 */
export async function mirrorView(
  source: string,
  dest: string,
  options: MirrorViewOptions,
): Promise<MirrorView> {
  const info = await Deno.lstat(source).catch((error) => {
    throw new SandboxSetupError(
      `Cannot mirror '${source}' into the learn sandbox: ${
        (error as Error).message
      }`,
    );
  });
  if (!info.isDirectory) {
    throw new SandboxSetupError(
      `Cannot mirror '${source}' into the learn sandbox: it is not a directory (run from your project's directory)`,
    );
  }
  const copied: string[] = [];
  const readOnly: string[] = [];
  for await (const entry of Deno.readDir(source)) {
    if (entry.isDirectory && READ_ONLY_NAMES.includes(entry.name)) {
      readOnly.push(entry.name);
    } else copied.push(entry.name);
  }
  copied.sort();
  readOnly.sort();
  const size = await measure(source, copied, options.maxBytes);
  await Deno.mkdir(dest, { mode: 0o755 });
  await Deno.chmod(dest, 0o755);
  const { hostUid, hostGid } = options.identity;
  if (hostUid !== null) await Deno.chown(dest, hostUid, hostGid ?? hostUid);
  const problems: string[] = [];
  const cp = findOnPath("cp", "/usr/bin:/bin");
  if (cp === null && copied.length > 0) {
    throw new SandboxSetupError(
      "Cannot mirror the directory into the learn sandbox: 'cp' is not installed (apt-get install -y coreutils)",
    );
  }
  for (let i = 0; i < copied.length; i += CP_BATCH) {
    const batch = copied.slice(i, i + CP_BATCH).map((name) =>
      `${source}/${name}`
    );
    const out = await new Deno.Command(cp!, {
      // -P: links stay links; modes and times as they were (no owner: the
      // copy belongs to the sandbox's uid, which may then write it).
      args: ["-R", "-P", "--preserve=mode,timestamps", "--", ...batch, dest],
      ...(hostUid !== null ? { uid: hostUid, gid: hostGid ?? hostUid } : {}),
      clearEnv: true,
      env: { LC_ALL: "C" },
      cwd: "/",
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (out.code === 0) continue;
    const lines = new TextDecoder().decode(out.stderr).split("\n")
      .map((line) => line.replace(/^[^:]*cp: /, "").trim())
      .filter((line) => line !== "");
    if (lines.some((line) => /No space left on device/.test(line))) {
      throw new SandboxSetupError(
        `Cannot mirror '${source}' into the learn sandbox: the sandbox's scratch quota is full (raise limits.scratchMb)`,
      );
    }
    for (const line of lines) {
      if (problems.length < MAX_PROBLEMS) problems.push(line);
    }
  }
  const mounts: Mount[] = [{ kind: "bind", source: dest, dest: source }];
  for (const name of readOnly) {
    // The mount point inside the copy; the user's own directory on top of
    // it, read-only (a write there fails as on a read-only disk).
    await Deno.mkdir(`${dest}/${name}`, { mode: 0o755 });
    mounts.push({
      kind: "ro-bind",
      source: `${source}/${name}`,
      dest: `${source}/${name}`,
    });
  }
  return {
    mounts,
    copy: dest,
    files: size.entries,
    bytes: size.bytes,
    readOnly,
    problems,
  };
}

/**
 * Sizes what will be copied (lstat only: no link is followed, no content
 * read) and refuses a directory past the bound before anything is copied.
 */
async function measure(
  source: string,
  names: readonly string[],
  maxBytes: number,
): Promise<{ entries: number; bytes: number }> {
  let entries = 0;
  let bytes = 0;
  const tooBig = (what: string) =>
    new SandboxSetupError(
      `Cannot mirror '${source}' into the learn sandbox: it holds more than ${what}, and learning copies it for the program to write in; run from a smaller directory, or raise limits.scratchMb in a --policy file (the copy may use half of it)`,
    );
  const stack = names.map((name) => `${source}/${name}`);
  while (stack.length > 0) {
    const path = stack.pop()!;
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch {
      continue; // gone meanwhile: cp reports it if it matters
    }
    if (++entries > MAX_ENTRIES) throw tooBig(`${MAX_ENTRIES} entries`);
    if (info.isFile) {
      bytes += info.size;
      if (bytes > maxBytes) {
        throw tooBig(`${Math.floor(maxBytes / 2 ** 20)} MiB`);
      }
    } else if (info.isDirectory) {
      try {
        for await (const entry of Deno.readDir(path)) {
          stack.push(`${path}/${entry.name}`);
        }
      } catch {
        // unreadable: cp reports it
      }
    }
  }
  return { entries, bytes };
}
