/**
 * The sandbox's `PATH`, so that every spawn attempt reaches the permission
 * check. Deno resolves a bare command name (`new Deno.Command("sh")`) on
 * `PATH` before it asks for the `run` permission, and answers `NotFound`
 * without any check when nothing is found: in an empty sandbox such an
 * attempt would leave no trace in the audit. So the sandbox gets a `PATH`
 * whose first directory holds one symbolic link per command name
 * ({@linkcode COMMON_COMMANDS}, and in learn mode the host's own command
 * names), each pointing at the sandbox's Deno binary: Deno finds the name,
 * asks the broker `run <name>`, and the broker records and refuses it.
 *
 * The links never run anything on their own: `run` is refused by the broker
 * and by `--deny-run`, and a link leads only to the Deno binary that is
 * already in the sandbox (no host program is mounted by them).
 *
 * @module
 */

import type { Mount } from "./bwrap_args.ts";

/** The directory of the command links inside the sandbox (first on PATH). */
export const COMMAND_LINK_DIR = "/usr/local/bin";

/** The sandbox's PATH. */
export const SANDBOX_PATH_VALUE = `${COMMAND_LINK_DIR}:/usr/bin:/bin`;

/**
 * Command names every sandbox resolves: the shells, the common Unix tools,
 * network clients, interpreters and package managers generated code tends
 * to reach for. A fixed list, so a program cannot learn from it which
 * tools the host has.
 *
 * @example Usage
 * ```ts
 * import { COMMON_COMMANDS } from "./command_path.ts";
 * console.log(COMMON_COMMANDS.includes("sh")); // true
 * ```
 */
export const COMMON_COMMANDS: readonly string[] = Object.freeze([
  ...["sh", "bash", "dash", "zsh", "fish", "ksh", "csh", "busybox", "env"],
  ...["cat", "ls", "cp", "mv", "rm", "mkdir", "rmdir", "chmod", "chown"],
  ...["ln", "touch", "echo", "printf", "grep", "egrep", "sed", "awk", "find"],
  ...["xargs", "sort", "uniq", "head", "tail", "wc", "tr", "cut", "tee"],
  ...["date", "sleep", "kill", "pkill", "ps", "id", "whoami", "uname"],
  ...["hostname", "which", "file", "stat", "du", "df", "mount", "tar"],
  ...["gzip", "gunzip", "zip", "unzip", "xz", "base64", "xxd", "od", "dd"],
  ...["curl", "wget", "ssh", "scp", "sftp", "rsync", "nc", "ncat", "netcat"],
  ...["telnet", "ftp", "socat", "nslookup", "dig", "ping", "ip", "ifconfig"],
  ...["git", "hg", "svn", "node", "npm", "npx", "yarn", "pnpm", "bun"],
  ...["deno", "tsc", "esbuild", "python", "python3", "pip", "pip3", "ruby"],
  ...["gem", "perl", "php", "java", "go", "cargo", "rustc", "gcc", "cc"],
  ...["make", "cmake", "docker", "podman", "kubectl", "aws", "gcloud", "az"],
  ...["openssl", "gpg", "sudo", "su", "crontab", "systemctl", "service"],
  ...["ffmpeg", "convert", "magick", "pandoc", "sqlite3", "psql", "mysql"],
  ...["redis-cli", "xdg-open", "open", "code", "vim", "vi", "nano", "less"],
]);

/** Most names a sandbox resolves (each is a bwrap argument triple). */
const MAX_NAMES = 4096;

/** A command name that is safe as one path component of a link. */
const COMMAND_NAME = /^[A-Za-z0-9_+][A-Za-z0-9_.+-]{0,127}$/;

/**
 * The names on a host `PATH` (for learn mode: a program learned on this host
 * may run any of them under plain `deno run`). Only absolute entries count;
 * names that are not plain file names are left out.
 *
 * @param searchPath A `PATH` value.
 * @returns The distinct names, sorted, at most 4,096.
 *
 * @example Usage
 * ```ts ignore
 * import { hostCommandNames } from "./command_path.ts";
 * console.log(hostCommandNames("/usr/bin:/bin").includes("sh"));
 * ```
 */
export function hostCommandNames(searchPath: string): string[] {
  const names = new Set<string>();
  for (const dir of searchPath.split(":")) {
    // A relative entry would be resolved against the harness's cwd.
    if (!dir.startsWith("/")) continue;
    try {
      for (const entry of Deno.readDirSync(dir)) {
        if (!entry.isDirectory && COMMAND_NAME.test(entry.name)) {
          names.add(entry.name);
        }
      }
    } catch {
      // missing or unreadable: nothing to add
    }
  }
  return [...names].sort().slice(0, MAX_NAMES);
}

/**
 * The mounts that make `names` resolvable on {@linkcode SANDBOX_PATH_VALUE}:
 * one symbolic link per name to `target` (the sandbox's Deno binary).
 * Names that are not plain file names, and duplicates, are skipped.
 *
 * @param names Command names.
 * @param target The sandbox path every link points at.
 * @returns bwrap symlink mounts.
 *
 * @example Usage
 * ```ts
 * import { commandLinkMounts } from "./command_path.ts";
 * const [link] = commandLinkMounts(["sh", "../etc"], "/usr/bin/deno");
 * console.log(link); // { kind: "symlink", target: "/usr/bin/deno", dest: "/usr/local/bin/sh" }
 * ```
 */
export function commandLinkMounts(
  names: readonly string[],
  target: string,
): Mount[] {
  const seen = new Set<string>();
  const mounts: Mount[] = [];
  for (const name of names) {
    // A name such as "../x" or "a/b" would place a link outside the
    // directory (bwrap creates the parents it needs).
    if (!COMMAND_NAME.test(name) || seen.has(name)) continue;
    seen.add(name);
    mounts.push({
      kind: "symlink",
      target,
      dest: `${COMMAND_LINK_DIR}/${name}`,
    });
    if (seen.size >= MAX_NAMES) break;
  }
  return mounts;
}

let learnNames: readonly string[] | undefined;

/**
 * The names a learn-mode sandbox resolves: {@linkcode COMMON_COMMANDS} and
 * every name on the harness's `PATH` (found once per process). A program
 * learned on this host can run any of those under plain `deno run`, so each
 * attempt must be recorded.
 *
 * @returns The names, at most 4,096.
 *
 * @example Usage
 * ```ts
 * import { learnCommandNames } from "./command_path.ts";
 * console.log(learnCommandNames().includes("sh")); // true
 * ```
 */
export function learnCommandNames(): readonly string[] {
  if (learnNames === undefined) {
    let searchPath = "";
    try {
      searchPath = Deno.env.get("PATH") ?? "";
    } catch {
      // no env permission: the common names only
    }
    learnNames = Object.freeze(
      [...new Set([...COMMON_COMMANDS, ...hostCommandNames(searchPath)])]
        .slice(0, MAX_NAMES),
    );
  }
  return learnNames;
}
