/**
 * Starts one sandboxed Deno process:
 *
 * ```
 * sh (spawned as the sandbox's own host uid; opens the seccomp fd 3)
 *  └ exec prlimit (rlimits)
 *     └ exec bwrap (namespaces, mounts, seccomp from fd 3)
 *        └ [sh: egress bridges + wait] exec deno run [--preload /airlock/boot.js] <permissions> /airlock/main.js
 * ```
 *
 * With egress, two bridges run beside the program: socat carries the proxy
 * port (127.0.0.1:3128) to the injector's socket, and the transparent
 * egress bridge (a small Deno program, `injector/bridge.ts`) answers DNS
 * and carries connections made without the proxy.
 *
 * Every step is an `exec`: one host process (bwrap's monitor) plus the
 * sandbox's own pid namespace. The harness's environment is never passed on.
 * The uid drop is done by the spawn itself (setuid, setgid and an empty
 * supplementary group list, before exec), so no root-run helper exists.
 *
 * @module
 */

import { buildBwrapArgs, DEVICE_NODES, type Mount } from "./bwrap_args.ts";
import {
  COMMAND_LINK_DIR,
  commandLinkMounts,
  COMMON_COMMANDS,
  SANDBOX_PATH_VALUE,
} from "./command_path.ts";
import { type DenoGrants, denoPermissionFlags } from "./deno_permissions.ts";
import type { HostTools } from "./host_tools.ts";
import type { SandboxIdentity } from "./host_identity.ts";
import { prlimitArgs, type ResourceLimits, v8Flags } from "./limits.ts";
import { BOOT_FILE, PROGRAM_FILE } from "./warm_boot.ts";

/** Fixed paths inside every sandbox. */
export const SANDBOX_PATHS = {
  deno: "/usr/bin/deno",
  main: "/airlock/main.js",
  code: "/airlock",
  tmp: "/tmp",
  denoDir: "/tmp/.deno",
  scratch: "/scratch",
  inputs: "/inputs",
  egressSocket: "/run/airlock/egress.sock",
  bridge: "/run/airlock/bridge.js",
  bridgeDenoDir: "/tmp/.bridge",
  brokerSocket: "/run/airlock/broker.sock",
  socat: "/usr/bin/socat",
  sh: "/bin/sh",
} as const;

/** The launcher script's name (its `$0`): prefixes its error messages. */
export const LAUNCHER_NAME = "airlock-launch";

/** The uid and gid the program sees inside its namespace. */
export const SANDBOX_ID = 65534;

/** Loopback port of the in-sandbox egress bridge (the program's proxy). */
export const EGRESS_PORT = 3128;

/** Everything needed to start one sandboxed run. */
export interface LaunchOptions {
  /** Host programs and libraries. */
  tools: HostTools;
  /** The host uid to run as. */
  identity: SandboxIdentity;
  /** Host path of the seccomp BPF file (readable by the sandbox uid). */
  seccompFilterPath: string;
  /**
   * Host path where bwrap writes its JSON status (the sandbox's pid-1 host
   * pid), in a directory the sandbox uid can write: read it with
   * {@linkcode readSandboxPid} to kill the namespace.
   */
  statusPath: string;
  /**
   * Host directory holding the bundled program, mounted read-only at
   * `/airlock` (so the program is `/airlock/main.js`).
   */
  program: string;
  /**
   * Start Deno with the warm boot (`boot.js` in `program`) as its preload:
   * it waits for a header on stdin before Deno loads `main.js`, which the
   * harness may write after the launch (see `runtime/warm_boot.ts`).
   * Requires `stdin`.
   */
  warmBoot?: boolean;
  /** Arguments for the program (`Deno.args`). */
  args?: readonly string[];
  /** Resource limits. */
  limits: ResourceLimits;
  /** What the program may read, write and connect to. */
  grants: DenoGrants;
  /** Extra mounts: inputs and scratch. */
  mounts?: readonly Mount[];
  /** Working directory inside; default `/`. */
  cwd?: string;
  /** Extra environment for the program (proxy, CA trust). */
  env?: Readonly<Record<string, string>>;
  /**
   * When set, the program gets a loopback proxy at 127.0.0.1:{@link EGRESS_PORT}
   * bridged to this host unix socket (the injector). Without it, the sandbox
   * has no network path at all.
   */
  egressSocket?: string;
  /**
   * Transparent egress (needs `egressSocket`): the bridge's script (host
   * path, mounted read-only; `injector/bridge.ts`) and the ports it listens
   * on. The sandbox then keeps
   * CAP_NET_BIND_SERVICE (ports 53, 80 and 443 of its own loopback) and
   * gets a /dev of bound device nodes instead of bwrap's (see
   * `buildBwrapArgs`'s `capabilities`).
   */
  egressBridge?: { script: string; ports: readonly number[] };
  /** Extra `deno run` flags placed before the permissions (trusted input). */
  denoFlags?: readonly string[];
  /** Extra files the program can read (host path, sandbox path). */
  extraReadOnly?: readonly { source: string; dest: string }[];
  /** Give the program a stdin pipe (else /dev/null). */
  stdin?: boolean;
  /**
   * Host files kept across the runs of one sandbox, each bound read-write
   * over its `name` in DENO_DIR (`v8_code_cache_v2`, its `-wal`...; see
   * `harness/_run/code_cache.ts`). With them Deno reuses and writes V8's
   * code cache; without, DENO_DIR is empty in every run and Deno starts
   * with `--no-code-cache`.
   */
  denoCache?: readonly { name: string; source: string }[];
  /**
   * Command names that resolve on the sandbox's PATH, so a spawn of a bare
   * name reaches the permission check (see `command_path.ts`); default
   * {@linkcode COMMON_COMMANDS}.
   */
  commandNames?: readonly string[];
}

/** A command line ready for `Deno.Command`. */
export interface LaunchCommand {
  /** The program to execute on the host. */
  command: string;
  /** Its arguments. */
  args: string[];
}

/**
 * Builds the full host command line for a sandboxed run without starting it.
 *
 * @param options The run.
 * @returns The command.
 * @throws {Error} If networking is requested but socat is not installed.
 *
 * @example Usage
 * ```ts ignore
 * import { buildLaunchCommand } from "./launcher.ts";
 * const { command, args } = buildLaunchCommand(options);
 * console.log(command, args.join(" "));
 * ```
 */
export function buildLaunchCommand(options: LaunchOptions): LaunchCommand {
  const { tools, identity, limits } = options;
  if (options.warmBoot && !options.stdin) {
    throw new TypeError(
      "Cannot launch with 'warmBoot' and no 'stdin': the boot reads the run's header from stdin",
    );
  }
  const denoArgs = [
    SANDBOX_PATHS.deno,
    "run",
    // The program is one pre-bundled file: nothing may be resolved or fetched
    // at run time (no config, no lock file, no remote, no npm, no cache use).
    "--no-config",
    "--no-lock",
    "--no-remote",
    "--no-npm",
    "--cached-only",
    // A fresh tmpfs DENO_DIR per run: writing a code cache is wasted work.
    // With a kept one (denoCache), the sandbox's next run starts from it.
    ...(options.denoCache?.length ? [] : ["--no-code-cache"]),
    `--v8-flags=${v8Flags(limits)}`,
    ...(options.warmBoot
      ? ["--preload", `${SANDBOX_PATHS.code}/${BOOT_FILE}`]
      : []),
    ...(options.denoFlags ?? []),
    ...denoPermissionFlags(options.grants),
    `${SANDBOX_PATHS.code}/${PROGRAM_FILE}`,
    ...(options.args ?? []),
  ];
  const mounts: Mount[] = [
    { kind: "ro-bind", source: tools.deno, dest: SANDBOX_PATHS.deno },
    ...libraryMounts([
      ...tools.libraries.deno,
      ...(options.egressSocket ? tools.libraries.sh : []),
      ...(options.egressSocket ? tools.libraries.socat : []),
    ]),
    // A procfs of the sandbox's own pid namespace: no host process visible.
    { kind: "proc", dest: "/proc" },
    // Only the harmless device nodes; no /dev/kvm, /dev/vsock, disks.
    ...devMounts(options.egressBridge !== undefined),
    // bwrap's /dev is a tmpfs the sandbox user owns, without a size bound:
    // /dev/shm would be unbounded host RAM. Device nodes stay writable.
    { kind: "remount-ro", dest: "/dev" },
    // Private, bounded /tmp; Deno keeps its (empty) cache there.
    {
      kind: "tmpfs",
      dest: SANDBOX_PATHS.tmp,
      sizeBytes: limits.tmpMb * 1024 * 1024,
      mode: 0o1777,
    },
    // The sandbox's own kept caches over their names in DENO_DIR (the rest
    // of DENO_DIR stays in this run's tmpfs).
    ...(options.denoCache ?? []).map((file): Mount => {
      if (!/^[a-z0-9_]+(?:-wal|-shm)?$/.test(file.name)) {
        throw new TypeError(
          `Cannot bind '${file.name}' into DENO_DIR: not a cache database's file name`,
        );
      }
      return {
        kind: "bind",
        source: file.source,
        dest: `${SANDBOX_PATHS.denoDir}/${file.name}`,
      };
    }),
    // The program's directory, read-only: a warm-started process finds its
    // main.js here once the harness has written it.
    { kind: "ro-bind", source: options.program, dest: SANDBOX_PATHS.code },
    ...(options.extraReadOnly ?? []).map((m): Mount => ({
      kind: "ro-bind",
      source: m.source,
      dest: m.dest,
    })),
    ...(options.mounts ?? []),
    // Bare command names resolve (to links to Deno), so Deno asks the
    // broker `run <name>` instead of answering NotFound unrecorded.
    { kind: "dir", dest: COMMAND_LINK_DIR, mode: 0o755 },
    ...commandLinkMounts(
      options.commandNames ?? COMMON_COMMANDS,
      SANDBOX_PATHS.deno,
    ),
  ];
  let command: string[] = denoArgs;
  if (options.egressSocket) {
    if (!tools.socat) {
      throw new Error(
        "Cannot give the sandbox network access as 'socat' is not installed: run 'apt-get install -y socat'",
      );
    }
    mounts.push(
      { kind: "ro-bind", source: tools.sh, dest: SANDBOX_PATHS.sh },
      { kind: "ro-bind", source: tools.socat, dest: SANDBOX_PATHS.socat },
      // The injector's per-sandbox socket: the ONLY way out of the empty
      // network namespace. Its path, not a token, identifies the sandbox.
      {
        kind: "bind",
        source: options.egressSocket,
        dest: SANDBOX_PATHS.egressSocket,
      },
    );
    if (options.egressBridge) {
      mounts.push({
        kind: "ro-bind",
        source: options.egressBridge.script,
        dest: SANDBOX_PATHS.bridge,
      });
    }
    command = [
      SANDBOX_PATHS.sh,
      "-c",
      egressBridgeScript(
        egressBridgeChildren(limits),
        options.egressBridge &&
          transparentBridgeCommand(options.egressBridge, limits),
      ),
      SANDBOX_PATHS.socat,
      ...denoArgs,
    ];
  } else if (options.egressBridge) {
    throw new TypeError(
      "Cannot start the transparent egress bridge without 'egressSocket': it carries connections to the injector's socket",
    );
  }
  // Nothing else may be written outside /tmp and the granted binds.
  mounts.push({ kind: "remount-ro", dest: "/" });
  const bwrap = buildBwrapArgs({
    identity: { uid: SANDBOX_ID, gid: SANDBOX_ID },
    mounts,
    env: {
      DENO_DIR: SANDBOX_PATHS.denoDir,
      // The update check would try the network on every start.
      DENO_NO_UPDATE_CHECK: "1",
      NO_COLOR: "1",
      // Where bare command names are looked up (the links above first).
      PATH: SANDBOX_PATH_VALUE,
      ...options.env,
    },
    cwd: options.cwd ?? "/",
    seccompFd: 3,
    statusFd: 4,
    command,
    // The transparent bridge listens on 53, 80 and 443 of the sandbox's
    // own loopback; nothing else the capability allows exists there.
    ...(options.egressBridge
      ? { capabilities: ["CAP_NET_BIND_SERVICE" as const] }
      : {}),
  });
  return {
    command: launchShell(tools),
    args: [
      "-c",
      LAUNCH_SCRIPT,
      LAUNCHER_NAME,
      options.seccompFilterPath,
      options.statusPath,
      tools.prlimit,
      ...prlimitArgs(limits, { enforceProcesses: identity.enforceProcesses }),
      "--",
      tools.bwrap,
      ...bwrap,
    ],
  };
}

/**
 * The launcher script (run as the sandbox's host uid, `$0` is
 * {@link LAUNCHER_NAME}, `$1` the seccomp filter, `$2` the status file, the
 * rest the command to exec).
 *
 * - fd 3 is the only way to hand bwrap the filter: open it, then exec on.
 *   Exit 125 (not a program code) if the filter cannot be read: no run.
 *   fd 4 receives bwrap's status.
 * - Every other descriptor above 2 is closed before exec. Attack: a
 *   descriptor the harness inherited without close-on-exec (a lock file, a
 *   socket, a root-owned file opened by whoever started the harness) passes
 *   through every exec into bwrap and the sandbox, where the program can
 *   read or write it (a root-owned file on fd 200 was writable once Deno's
 *   wall was lowered). Neither `Deno.Command` nor bwrap closes them. dash
 *   can only name descriptors 0-9, so bash runs this script when installed;
 *   under dash a higher inherited descriptor stops the launch (fail closed).
 * - PWD would carry the harness's working directory into bwrap's
 *   environment, readable as /proc/1/environ.
 */
const LAUNCH_SCRIPT = [
  "unset PWD OLDPWD",
  'exec 3<"$1" 4>"$2" || exit 125',
  "shift 2",
  "for fd in /proc/self/fd/*; do",
  "  fd=${fd##*/}",
  "  case $fd in",
  "    0|1|2|3|4) continue ;;",
  `    *[!0-9]*|"") echo "$0: Cannot list the open file descriptors in /proc/self/fd: mount /proc" >&2; exit 125 ;;`,
  "  esac",
  '  if [ -z "${BASH_VERSION-}" ] && [ "$fd" -gt 9 ]; then',
  `    echo "$0: Cannot close the inherited file descriptor $fd with /bin/sh, which names only 0-9: install bash, or start the harness without that descriptor" >&2`,
  "    exit 125",
  "  fi",
  '  eval "exec $fd<&-"',
  "done",
  'exec "$@"',
].join("\n");

/**
 * The shell that runs the launcher script on the host: bash when installed
 * (it can close any descriptor), else the POSIX sh. Found once.
 */
function launchShell(tools: HostTools): string {
  if (bashPath === undefined) {
    bashPath = null;
    for (const candidate of ["/bin/bash", "/usr/bin/bash"]) {
      try {
        if (Deno.statSync(candidate).isFile) {
          bashPath = candidate;
          break;
        }
      } catch {
        // not here
      }
    }
  }
  return bashPath ?? tools.sh;
}

let bashPath: string | null | undefined;

/**
 * How many connections the in-sandbox bridge carries to the injector at
 * once: half the sandbox's process cap. Each one is a forked socat process
 * of the sandbox uid, so without a bound a connection flood (slowloris)
 * spends the whole RLIMIT_NPROC budget: socat's next fork fails and it
 * exits (the run loses its egress), or Deno cannot start a thread and
 * aborts. With it, the rest of the budget stays Deno's, and connections
 * past the bound wait in the bridge's listen backlog, inside the sandbox's
 * own network namespace, until one ends: they never reach the injector.
 *
 * @param limits The run's limits.
 * @returns The bridge's `max-children`.
 *
 * @example Usage
 * ```ts
 * import { egressBridgeChildren } from "./launcher.ts";
 * import { DEFAULT_LIMITS } from "./limits.ts";
 * console.log(egressBridgeChildren(DEFAULT_LIMITS)); // 32
 * ```
 */
export function egressBridgeChildren(
  limits: Pick<ResourceLimits, "processes">,
): number {
  return Math.max(1, Math.floor(limits.processes / 2));
}

/**
 * The in-sandbox bridges: socat listens on loopback and forwards each
 * connection to the injector's socket. Deno starts once the port is listening
 * (read from /proc/net/tcp with shell builtins only, ~4 ms), so the first
 * request never races the bridge. 0100007F:0C38 is 127.0.0.1:3128. The
 * transparent bridge, when given, starts first and is waited for by the
 * harness instead (it says so on the injector's socket; the program is
 * handed over after that), so its start overlaps Deno's.
 */
function egressBridgeScript(
  maxChildren: number,
  transparent: string | undefined,
): string {
  return (
    (transparent ?? "") +
    // socat's own log lines (e.g. a broken pipe when the injector drops a
    // connection) are not the program's output: they go nowhere. A deep
    // backlog: bursts of connects must not stall in SYN retransmits while
    // socat forks for the previous ones. max-children: see
    // egressBridgeChildren (a flood must not spend the process cap).
    `"$0" TCP-LISTEN:${EGRESS_PORT},bind=127.0.0.1,fork,reuseaddr,nodelay,backlog=256,max-children=${maxChildren} UNIX-CONNECT:${SANDBOX_PATHS.egressSocket} 2>/dev/null & ` +
    'n=0; while [ "$n" -lt 5000 ]; do up=; ' +
    'while read -r _ local _; do [ "$local" = "0100007F:0C38" ] && up=1; done </proc/net/tcp; ' +
    '[ -n "$up" ] && break; n=$((n+1)); done; exec "$@"'
  );
}

/**
 * The shell line that starts the transparent bridge in the background: its
 * own Deno, with grants for its listeners and the injector's socket only,
 * without the program's permission broker (its checks are not the
 * program's), its own DENO_DIR, and no output (its errors are not the
 * program's either).
 */
function transparentBridgeCommand(
  bridge: NonNullable<LaunchOptions["egressBridge"]>,
  limits: ResourceLimits,
): string {
  for (const port of bridge.ports) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(
        `Cannot start the egress bridge as a port must be an integer in 1..65535: current value is ${port}`,
      );
    }
  }
  const net = [
    "127.0.0.53:53",
    // Answers go back to the asker's port (Deno checks each send).
    "127.0.0.1",
    ...bridge.ports.map((port) => `0.0.0.0:${port}`),
    // Deno checks a unix socket as net, read and write of its path.
    `unix:${SANDBOX_PATHS.egressSocket}`,
  ];
  const argv = [
    SANDBOX_PATHS.deno,
    "run",
    "--no-config",
    "--no-lock",
    "--no-remote",
    "--no-npm",
    "--cached-only",
    "--no-code-cache",
    // Deno.listenDatagram (the DNS listener).
    "--unstable-net",
    // A small heap and no V8 helper threads: the bridge holds little, and
    // its threads count against the sandbox's process cap.
    "--v8-flags=--max-old-space-size=32,--single-threaded",
    `--allow-net=${net.join(",")}`,
    `--allow-read=${SANDBOX_PATHS.egressSocket}`,
    `--allow-write=${SANDBOX_PATHS.egressSocket}`,
    "--deny-env",
    "--deny-run",
    "--deny-ffi",
    "--deny-sys",
    "--no-prompt",
    SANDBOX_PATHS.bridge,
    // The bridge's arguments: the most connections it carries at once,
    // then its ports.
    String(transparentBridgeConnections(limits)),
    ...new Set(bridge.ports.map(String)),
  ];
  return `(unset DENO_PERMISSION_BROKER_PATH; DENO_DIR=${SANDBOX_PATHS.bridgeDenoDir} exec ${
    argv.map(shellQuote).join(" ")
  }) </dev/null >/dev/null 2>&1 & `;
}

/**
 * How many connections the transparent bridge carries at once: as many as
 * socat's bound ({@linkcode egressBridgeChildren}), and never more than
 * its open-file limit holds (two descriptors each). Connections past it
 * wait in the listen backlog inside the sandbox's own network namespace.
 *
 * @param limits The run's limits.
 * @returns The bound.
 *
 * @example Usage
 * ```ts
 * import { transparentBridgeConnections } from "./launcher.ts";
 * import { DEFAULT_LIMITS } from "./limits.ts";
 * console.log(transparentBridgeConnections(DEFAULT_LIMITS)); // 32
 * ```
 */
export function transparentBridgeConnections(
  limits: Pick<ResourceLimits, "processes" | "openFiles">,
): number {
  return Math.max(
    1,
    Math.min(
      egressBridgeChildren(limits),
      Math.floor((limits.openFiles - 16) / 2),
    ),
  );
}

/** Quotes one word for sh (single quotes; a quote inside is closed and escaped). */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The sandbox's /dev: bwrap's own (`--dev`), or, when the sandbox keeps a
 * capability, a tmpfs holding bound device nodes only (bwrap nests a user
 * namespace to mount devpts for `--dev`, and the capability would then
 * not hold in the network namespace). Neither has /dev/pts, a tty or shm
 * the program could use (both are read-only after the launch).
 */
function devMounts(kept: boolean): Mount[] {
  if (!kept) return [{ kind: "dev", dest: "/dev" }];
  return [
    { kind: "tmpfs", dest: "/dev", sizeBytes: 64 * 1024, mode: 0o755 },
    ...DEVICE_NODES.map((node): Mount => ({
      kind: "dev-bind",
      source: node,
      dest: node,
    })),
    { kind: "symlink", target: "/proc/self/fd", dest: "/dev/fd" },
    { kind: "symlink", target: "/proc/self/fd/0", dest: "/dev/stdin" },
    { kind: "symlink", target: "/proc/self/fd/1", dest: "/dev/stdout" },
    { kind: "symlink", target: "/proc/self/fd/2", dest: "/dev/stderr" },
  ];
}

function libraryMounts(paths: readonly string[]): Mount[] {
  return [...new Set(paths)].map((path) => ({
    kind: "ro-bind",
    source: path,
    dest: path,
  }));
}

/**
 * Reads the host pid of the sandbox's pid-1 process from bwrap's status
 * file. Killing that process takes the whole pid namespace down, and bwrap
 * (the launched process) exits only after every process in it is gone.
 *
 * @param statusPath The `statusPath` the run was launched with.
 * @returns The pid, or null if bwrap has not started the sandbox yet.
 *
 * @example Usage
 * ```ts ignore
 * const pid = readSandboxPid(statusPath);
 * if (pid !== null) Deno.kill(pid, "SIGKILL");
 * ```
 */
export function readSandboxPid(statusPath: string): number | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(statusPath);
  } catch {
    return null;
  }
  const match = text.match(/"child-pid"\s*:\s*(\d+)/);
  return match ? Number(match[1]) : null;
}

/**
 * Kills a launched sandbox and every process in it, whatever stage its
 * start has reached.
 *
 * The namespace's pid 1 is the handle: killing it makes the kernel kill
 * everything in the namespace. Before bwrap has written that pid, this
 * waits for it (bwrap writes it right after creating the namespace) or for
 * bwrap to exit, and does not kill bwrap's monitor instead: bwrap's pid 1
 * sets its `--die-with-parent` signal only after it starts, so a monitor
 * killed in that window left pid 1 and whatever it had started running as
 * orphans (seen: sandboxes of a closed harness still holding their bridge
 * and their uid's process budget). Past `graceMs` without either, the
 * monitor is killed as a last resort.
 *
 * @param child The launched process (bwrap's monitor).
 * @param statusPath The `statusPath` the run was launched with.
 * @param options `graceMs`: how long to wait for bwrap's pid (default 5 s).
 * @returns Once the kill was sent (or bwrap was found gone).
 *
 * @example Usage
 * ```ts ignore
 * import { killSandbox } from "./launcher.ts";
 * await killSandbox(child, statusPath);
 * await child.status;
 * ```
 */
export async function killSandbox(
  child: Deno.ChildProcess,
  statusPath: string,
  options: { graceMs?: number } = {},
): Promise<void> {
  let exited = false;
  const status = child.status.then(
    () => (exited = true),
    () => (exited = true),
  );
  const deadline = performance.now() + (options.graceMs ?? 5_000);
  for (let wait = 1;; wait = Math.min(wait * 2, 20)) {
    const pid = readSandboxPid(statusPath);
    if (pid !== null) {
      // The pid cannot have been reused: bwrap, its parent, has not exited
      // (we would have seen it) and so has not reaped it unseen for long.
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
      return;
    }
    if (exited) return;
    if (performance.now() > deadline) {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited meanwhile
      }
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      status,
      new Promise((resolve) => (timer = setTimeout(resolve, wait))),
    ]);
    clearTimeout(timer);
  }
}

/**
 * Starts a sandboxed run. The process has no environment of the harness's.
 *
 * @param options The run.
 * @returns The child process (its pid is bwrap's monitor).
 *
 * @example Usage
 * ```ts ignore
 * import { launchSandbox } from "./launcher.ts";
 * const child = launchSandbox(options);
 * console.log((await child.status).code);
 * ```
 */
export function launchSandbox(options: LaunchOptions): Deno.ChildProcess {
  const { command, args } = buildLaunchCommand(options);
  const { hostUid, hostGid } = options.identity;
  return new Deno.Command(command, {
    args,
    // The sandbox's own host uid from the first exec on: root's
    // supplementary groups are dropped too (setgroups(0) before exec).
    ...(hostUid !== null ? { uid: hostUid, gid: hostGid ?? hostUid } : {}),
    // The harness's environment (its secrets) never reaches bwrap, whose
    // pid-1 process the sandbox could otherwise read via /proc/1/environ.
    clearEnv: true,
    env: {},
    // Nothing of the harness's working directory follows the sandbox.
    cwd: "/",
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}
