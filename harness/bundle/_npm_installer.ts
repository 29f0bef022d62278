/**
 * Runs `deno install` for one package in a helper sandbox (see
 * `_sandbox.ts`): the registry's tarballs are hostile input, so the
 * installer can write only its staging directory, reads nothing of the host
 * but what Deno, DNS and TLS need (resolv.conf, hosts, nsswitch.conf, the CA
 * certificates), and gets an environment of its own: no harness secret, no
 * `${env:...}` value, no home directory. It keeps the host's network (it must
 * reach the registry); lifecycle scripts never run (no `--allow-scripts`).
 *
 * @module
 */

import type { Mount } from "../../runtime/bwrap_args.ts";
import { discoverHostTools } from "../../runtime/host_tools.ts";
import {
  HELPER_DENO,
  helperCommand,
  helperIdentity,
  type HelperSandbox,
} from "./_sandbox.ts";
import type { SandboxIdentity } from "../../runtime/host_identity.ts";

/** Where the staging directory is inside the installer's sandbox. */
const STAGING = "/install";

/** How long one install may take. */
export const INSTALL_TIMEOUT_MS = 120_000;

/**
 * Variables the installer needs to reach the registry the harness would
 * reach: which registry, which proxy, which CA certificates. Nothing else of
 * the harness's environment goes in.
 */
const PASSED_ENV = [
  "NPM_CONFIG_REGISTRY",
  "npm_config_registry",
  "HTTPS_PROXY",
  "https_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "NO_PROXY",
  "no_proxy",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
];

/** Host files DNS and TLS need, mounted read-only where they exist. */
const SYSTEM_FILES = [
  "/etc/resolv.conf",
  "/etc/hosts",
  "/etc/nsswitch.conf",
  "/etc/ssl",
  "/etc/ca-certificates",
  "/usr/share/ca-certificates",
];

/** What one install produced. */
export interface InstallOutcome {
  /** Whether `deno install` succeeded. */
  success: boolean;
  /** The end of its error output, when it failed. */
  why: string;
}

/**
 * Installs `name@range` into `staging` (which must hold nothing yet but a
 * package.json the caller wrote) inside the installer's sandbox. When the
 * harness is root the installer runs as a uid of its own, which owns the
 * staging directory while it works; everything in it is given back to the
 * harness's user afterwards (a uid later handed to a sandbox owns nothing
 * in the cache).
 *
 * @param staging Host path of the staging directory (written to).
 * @param options Timeout.
 * @returns Whether it worked, and why not.
 *
 * @example Usage
 * ```ts ignore
 * const outcome = await installInSandbox("/var/tmp/airlock-npm-0/.staging-x");
 * ```
 */
export async function installInSandbox(
  staging: string,
  options: { timeoutMs?: number } = {},
): Promise<InstallOutcome> {
  const identity = helperIdentity();
  try {
    if (identity.hostUid !== null) {
      await Deno.chown(staging, identity.hostUid, identity.hostGid);
    }
    return await install(staging, identity, options);
  } finally {
    await giveBack(staging);
    identity.release();
  }
}

/**
 * Hands every file and directory under `dir` back to the harness's user,
 * readable by all (the bundler reads them as a uid of its own; npm code is
 * public) and writable by none but the harness (no setuid bit survives).
 * Links are skipped, never followed (chown follows them: a link the
 * installer planted could name any host file); who owns a link does not
 * matter, its directory decides who may replace it. The installer's
 * processes are all gone by now (its pid namespace ended with it).
 */
async function giveBack(dir: string): Promise<void> {
  const uid = Deno.uid()!;
  const gid = Deno.gid()!;
  const walk = async (path: string): Promise<void> => {
    const info = await Deno.lstat(path).catch(() => null);
    if (!info || info.isSymlink) return;
    await Deno.chown(path, uid, gid).catch(() => {});
    const mode = info.isDirectory || ((info.mode ?? 0) & 0o111) !== 0
      ? 0o755
      : 0o644;
    await Deno.chmod(path, mode).catch(() => {});
    if (!info.isDirectory) return;
    for await (const entry of Deno.readDir(path)) {
      await walk(`${path}/${entry.name}`);
    }
  };
  await walk(dir);
}

async function install(
  staging: string,
  identity: SandboxIdentity,
  options: { timeoutMs?: number },
): Promise<InstallOutcome> {
  const { command, args, ...ids } = await helperCommand(
    await installerSandbox(staging, [
      HELPER_DENO,
      "install",
      "--quiet",
      "--node-modules-dir=auto",
    ], identity),
  );
  const child = new Deno.Command(command, {
    args,
    ...ids,
    clearEnv: true,
    cwd: "/", // nothing of the harness's working directory follows
    env: {},
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
  }, options.timeoutMs ?? INSTALL_TIMEOUT_MS);
  let stderr = "";
  const reader = child.stderr.getReader();
  const reading = (async () => {
    const decoder = new TextDecoder();
    while (true) {
      const { done, value } = await reader.read();
      if (done) return;
      stderr = (stderr + decoder.decode(value)).slice(-4096);
    }
  })();
  try {
    const status = await child.status;
    // A monitor killed before its child armed --die-with-parent leaves
    // that child holding the pipe (swept with the uid on release): what a
    // killed install would still say is moot.
    if (killed) await reader.cancel().catch(() => {});
    await reading.catch(() => {});
    const tail = stderr.trim().split("\n").slice(-3).join(" ");
    const limit = `deno install took longer than ${
      (options.timeoutMs ?? INSTALL_TIMEOUT_MS) / 1000
    } s`;
    return {
      success: status.success,
      why: status.success
        ? ""
        : killed
        ? `${limit}${tail ? ` (${tail})` : ""}`
        : tail || `deno install failed (exit code ${status.code})`,
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The installer's sandbox for `staging`, running `command` (tests run
 * probes in it to show what an install can reach).
 *
 * @param staging Host path of the staging directory (the one writable place).
 * @param command The command, as seen inside.
 * @returns The sandbox description for `helperCommand`.
 *
 * @example Usage
 * ```ts ignore
 * const sandbox = await installerSandbox(staging, ["/usr/bin/deno", "--version"]);
 * ```
 */
export async function installerSandbox(
  staging: string,
  command: readonly string[],
  identity?: SandboxIdentity,
): Promise<HelperSandbox> {
  const tools = await discoverHostTools();
  const env: Record<string, string> = {
    DENO_DIR: `${STAGING}/.deno-dir`,
    HOME: STAGING,
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
    // Deno's bundled roots, and the system's (hosts that intercept TLS
    // install their CA there).
    DENO_TLS_CA_STORE: "mozilla,system",
  };
  for (const name of PASSED_ENV) {
    const value = envValue(name);
    if (value !== undefined && !/[\0\n\r]/.test(value)) env[name] = value;
  }
  const mounts: Mount[] = [];
  const mounted: string[] = [];
  const mountIfThere = (path: string) => {
    // One mount per place: a file under an already mounted directory is
    // already there.
    if (mounted.some((m) => path === m || path.startsWith(`${m}/`))) return;
    try {
      Deno.statSync(path);
    } catch {
      return;
    }
    mounts.push({ kind: "ro-bind", source: path, dest: path });
    mounted.push(path);
  };
  for (const path of SYSTEM_FILES) mountIfThere(path);
  for (const name of ["SSL_CERT_FILE", "SSL_CERT_DIR"]) {
    const path = env[name];
    if (path?.startsWith("/") && !path.split("/").includes("..")) {
      mountIfThere(path);
    }
  }
  mounts.push({ kind: "bind", source: staging, dest: STAGING });
  return {
    tools,
    mounts,
    env,
    cwd: STAGING,
    network: "host",
    command,
    ...(identity ? { identity } : {}),
  };
}

function envValue(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no env permission: nothing passed on
  }
}
