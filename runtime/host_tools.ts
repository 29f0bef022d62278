/**
 * Finds the host programs a sandbox is built from (bwrap, prlimit, sh,
 * socat, the Deno binary) and the shared libraries the in-sandbox ones
 * link against, so the sandbox can mount exactly those files and nothing else.
 *
 * Missing tools are errors that say how to install them (fail closed: there is
 * no "run without bwrap" fallback).
 *
 * @module
 */

import { readableCopy } from "./_readable_copy.ts";

/**
 * A host program is missing or unusable; `fix` is the command to run.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { MissingHostToolError } from "./host_tools.ts";
 * const error = new MissingHostToolError("bwrap", "apt-get install -y bubblewrap");
 * assert.equal(error.fix, "apt-get install -y bubblewrap");
 * assert.match(error.message, /^Cannot start a sandbox as 'bwrap' is not available/);
 * ```
 */
export class MissingHostToolError extends Error {
  /** The missing program. */
  readonly tool: string;
  /** What to run to fix it. */
  readonly fix: string;
  /**
   * Builds the error; its message names the program and the fix.
   *
   * @param tool The missing program.
   * @param fix The command that installs it.
   * @param detail Extra context.
   */
  constructor(tool: string, fix: string, detail = "") {
    super(
      `Cannot start a sandbox as '${tool}' is not available${
        detail ? ` (${detail})` : ""
      }: run '${fix}'`,
    );
    this.name = "MissingHostToolError";
    this.tool = tool;
    this.fix = fix;
  }
}

/** Absolute host paths of everything a sandbox launch needs. */
export interface HostTools {
  /** bubblewrap. */
  bwrap: string;
  /** util-linux prlimit: sets the rlimits before bwrap starts. */
  prlimit: string;
  /** A POSIX shell: opens the seccomp fd, and starts the egress bridge. */
  sh: string;
  /** socat for the in-sandbox egress bridge; null when not installed. */
  socat: string | null;
  /** The Deno binary mounted into the sandbox. */
  deno: string;
  /** Deno's version string, e.g. "2.9.6". */
  denoVersion: string;
  /** Shared libraries (host paths) the in-sandbox programs load. */
  libraries: { deno: string[]; sh: string[]; socat: string[] };
}

const APT_FIX: Record<string, string> = {
  bwrap: "apt-get install -y bubblewrap",
  prlimit: "apt-get install -y util-linux",
  sh: "apt-get install -y dash",
  socat: "apt-get install -y socat",
  ldd: "apt-get install -y libc-bin",
};

/** Options for {@linkcode discoverHostTools}. */
export interface DiscoverOptions {
  /** The Deno binary to run inside sandboxes; default: the running one. */
  denoPath?: string;
  /** Search path; default: `$PATH` plus the usual system directories. */
  path?: string;
}

const cache = new Map<string, Promise<HostTools>>();

/**
 * Locates the host tools, memoised per (deno path, search path): discovery
 * runs `ldd`, which costs a few milliseconds.
 *
 * @param options Where to look.
 * @returns The tools.
 * @throws {MissingHostToolError} If bwrap, prlimit, sh or ldd is
 *   missing, or the Deno binary cannot be inspected.
 *
 * @example Usage
 * ```ts ignore
 * import { discoverHostTools } from "./host_tools.ts";
 * const tools = await discoverHostTools();
 * console.log(tools.bwrap);
 * ```
 */
export function discoverHostTools(
  options: DiscoverOptions = {},
): Promise<HostTools> {
  try {
    assertHarnessAccess();
  } catch (error) {
    return Promise.reject(error);
  }
  const denoPath = options.denoPath ?? Deno.execPath();
  const searchPath = options.path ?? defaultSearchPath();
  const key = `${denoPath}\0${searchPath}`;
  let found = cache.get(key);
  if (!found) {
    found = discover(denoPath, searchPath);
    cache.set(key, found);
    // A failed discovery (tool installed meanwhile) is retried next time.
    found.catch(() => cache.delete(key));
  }
  return found;
}

/**
 * The harness runs without the Deno permissions it needs (`--allow-all`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { HarnessAccessError } from "./host_tools.ts";
 * const error = new HarnessAccessError("Cannot manage sandboxes: run with --allow-all");
 * assert.equal(error.name, "HarnessAccessError");
 * ```
 */
export class HarnessAccessError extends Error {
  /**
   * Builds the error.
   *
   * @param message What is missing and how to run the harness instead.
   */
  constructor(message: string) {
    super(message);
    this.name = "HarnessAccessError";
  }
}

/**
 * The harness manages sandboxes through `/proc` (a sandbox's working
 * directory for the broker, leftover processes of a sandbox uid, mounts of
 * scratch volumes), which Deno opens only to `--allow-all`. Without it
 * those reads would fail one by one, each as a quietly weaker behaviour
 * (a relative path denied, a leftover not found): refuse up front instead.
 * Spawning bwrap (`--allow-run`) is full host access anyway.
 *
 * @throws {HarnessAccessError} When the harness runs without `--allow-all`.
 *
 * @example Usage
 * ```ts ignore
 * import { assertHarnessAccess } from "./host_tools.ts";
 * assertHarnessAccess();
 * ```
 */
export function assertHarnessAccess(): void {
  try {
    Deno.readTextFileSync("/proc/self/status");
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw new HarnessAccessError(
        "Cannot start sandboxes: the harness needs Deno's --allow-all (-A) to manage them through /proc (spawning bwrap is full host access anyway); run it with 'deno run -A'",
      );
    }
    // No /proc at all is a host problem the tools check reports.
  }
}

function defaultSearchPath(): string {
  let env = "";
  try {
    env = Deno.env.get("PATH") ?? "";
  } catch {
    // No env permission: the system directories below still apply.
  }
  return [env, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    .filter(Boolean).join(":");
}

/**
 * Finds `name` on `searchPath` like `which`.
 *
 * @param name Program name.
 * @param searchPath Colon-separated directories.
 * @returns The absolute path, or null.
 *
 * @example Usage
 * ```ts
 * import { findOnPath } from "./host_tools.ts";
 * console.log(findOnPath("sh", "/usr/bin:/bin"));
 * ```
 */
export function findOnPath(name: string, searchPath: string): string | null {
  for (const dir of searchPath.split(":")) {
    if (!dir.startsWith("/")) continue; // a relative PATH entry is a hijack
    const candidate = `${dir}/${name}`;
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) {
        return Deno.realPathSync(candidate);
      }
    } catch {
      // not here
    }
  }
  return null;
}

async function discover(
  denoPath: string,
  searchPath: string,
): Promise<HostTools> {
  const need = (name: string): string => {
    const found = findOnPath(name, searchPath);
    if (!found) throw new MissingHostToolError(name, APT_FIX[name] ?? name);
    return found;
  };
  const bwrap = need("bwrap");
  const prlimit = need("prlimit");
  const sh = Deno.realPathSync(findOnPath("sh", "/bin:/usr/bin") ?? need("sh"));
  const ldd = need("ldd");
  const socat = findOnPath("socat", searchPath);
  let deno: string;
  try {
    deno = Deno.realPathSync(denoPath);
  } catch (error) {
    throw new MissingHostToolError(
      "deno",
      "npm install -g deno@2.9.6",
      `cannot resolve '${denoPath}': ${(error as Error).message}`,
    );
  }
  const [denoLibs, shLibs, socatLibs, denoVersion] = await Promise.all([
    sharedLibraries(ldd, deno),
    sharedLibraries(ldd, sh),
    socat ? sharedLibraries(ldd, socat) : Promise.resolve([]),
    versionOf(deno),
  ]);
  // Sandboxes run as unprivileged uids: anything mounted must be readable by
  // them (a Deno under /root, from npx, is copied to a shared cache once).
  const cacheParent = "/var/tmp";
  return {
    bwrap,
    prlimit,
    sh: await readableCopy(sh, cacheParent),
    socat: socat ? await readableCopy(socat, cacheParent) : null,
    deno: await readableCopy(deno, cacheParent),
    denoVersion,
    libraries: { deno: denoLibs, sh: shLibs, socat: socatLibs },
  };
}

async function versionOf(deno: string): Promise<string> {
  if (deno === safeRealPath(Deno.execPath())) return Deno.version.deno;
  const out = await new Deno.Command(deno, {
    args: ["--version"],
    env: { DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "null",
  }).output();
  const match = new TextDecoder().decode(out.stdout).match(/deno (\S+)/);
  if (!out.success || !match?.[1]) {
    throw new MissingHostToolError(
      "deno",
      "npm install -g deno@2.9.6",
      `'${deno} --version' failed`,
    );
  }
  return match[1];
}

function safeRealPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

/**
 * The shared libraries (and ELF interpreter) `binary` loads, as host paths,
 * from `ldd`. A statically linked binary yields an empty list.
 *
 * @param ldd Path of ldd.
 * @param binary The executable.
 * @returns Library paths, as the dynamic loader will look them up.
 * @throws {MissingHostToolError} If a library cannot be found.
 *
 * @example Usage
 * ```ts ignore
 * import { sharedLibraries } from "./host_tools.ts";
 * console.log(await sharedLibraries("/usr/bin/ldd", "/bin/sh"));
 * ```
 */
export async function sharedLibraries(
  ldd: string,
  binary: string,
): Promise<string[]> {
  // `ldd` is a bash script that asks the ELF interpreter to list what it
  // would load; asking the interpreter directly gives the same list without
  // starting bash (~30 ms a binary). Anything unusual goes through ldd.
  const interpreter = elfInterpreter(binary);
  const out = await new Deno.Command(interpreter ?? ldd, {
    args: interpreter ? ["--list", binary] : [binary],
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin", LC_ALL: "C" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (/not a dynamic executable|statically linked/.test(text)) return [];
  if (!out.success && interpreter) return await sharedLibraries(ldd, binary);
  if (!out.success) {
    throw new MissingHostToolError(
      "ldd",
      APT_FIX.ldd!,
      `'ldd ${binary}' failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  const libs: string[] = [];
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith("linux-vdso")) continue;
    if (trimmed.includes("=> not found")) {
      throw new MissingHostToolError(
        binary,
        "reinstall the package that provides it",
        `library missing: ${trimmed}`,
      );
    }
    const arrow = trimmed.match(/=>\s+(\/\S+)/);
    const direct = trimmed.match(/^(\/\S+)/);
    const path = arrow?.[1] ?? direct?.[1];
    if (path) libs.push(path);
  }
  return [...new Set(libs)];
}

/**
 * The ELF interpreter (`PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`) a
 * 64-bit little-endian binary names, when it is an executable file; null
 * for anything else (ldd then decides).
 */
function elfInterpreter(binary: string): string | null {
  let file: Deno.FsFile | undefined;
  try {
    file = Deno.openSync(binary, { read: true });
    const head = new Uint8Array(4096);
    const read = file.readSync(head) ?? 0;
    const view = new DataView(head.buffer, 0, read);
    // "\x7fELF", 64-bit, little-endian.
    if (
      read < 64 || view.getUint32(0) !== 0x7f454c46 || head[4] !== 2 ||
      head[5] !== 1
    ) {
      return null;
    }
    const phoff = Number(view.getBigUint64(0x20, true));
    const phentsize = view.getUint16(0x36, true);
    const phnum = view.getUint16(0x38, true);
    for (let i = 0; i < phnum; i++) {
      const at = phoff + i * phentsize;
      if (at + 0x28 > read) return null;
      if (view.getUint32(at, true) !== 3) continue; // PT_INTERP
      const offset = Number(view.getBigUint64(at + 0x08, true));
      const size = Number(view.getBigUint64(at + 0x20, true));
      if (size < 2 || offset + size > read) return null;
      const path = new TextDecoder().decode(
        head.subarray(offset, offset + size - 1),
      );
      const info = Deno.statSync(path);
      return path.startsWith("/") && info.isFile ? path : null;
    }
    return null;
  } catch {
    return null;
  } finally {
    file?.close();
  }
}
