/**
 * A typed, validated builder for bubblewrap command lines: airlock's own
 * "bwrap bindings".
 *
 * Isolation is not optional here: every sandbox gets every namespace, a new
 * session, no capabilities and an empty environment; the options only say
 * what to put INTO that empty world (mounts, variables, the command). A
 * caller cannot build a weaker sandbox by forgetting a flag.
 *
 * @module
 */

/** A filesystem entry of the sandbox, applied in order. */
export type Mount =
  /** Host path visible read-only (code, inputs, the Deno binary). */
  | { kind: "ro-bind"; source: string; dest: string }
  /** Host path visible read-write (the granted scratch directory, sockets). */
  | { kind: "bind"; source: string; dest: string }
  /** A fresh tmpfs of at most `sizeBytes` (bounded so it cannot fill RAM). */
  | { kind: "tmpfs"; dest: string; sizeBytes: number; mode?: number }
  /** A fresh procfs for the sandbox's own pid namespace. */
  | { kind: "proc"; dest: string }
  /** A minimal /dev (null, zero, full, random, urandom, tty, pts, shm). */
  | { kind: "dev"; dest: string }
  /**
   * One host device node (`/dev/null`...), usable as a device inside; only
   * the harmless nodes in {@linkcode DEVICE_NODES}.
   */
  | { kind: "dev-bind"; source: string; dest: string }
  /** An empty directory. */
  | { kind: "dir"; dest: string; mode?: number }
  /** A symbolic link `dest -> target`. */
  | { kind: "symlink"; target: string; dest: string }
  /** Re-mount an earlier mount read-only (e.g. a tmpfs after populating). */
  | { kind: "remount-ro"; dest: string };

/**
 * The device nodes a `dev-bind` mount may name: data sinks and sources
 * only, never a terminal, a disk, `/dev/kvm` or `/dev/vsock`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEVICE_NODES } from "./bwrap_args.ts";
 * assert.ok(DEVICE_NODES.includes("/dev/urandom"));
 * ```
 */
export const DEVICE_NODES: readonly string[] = [
  "/dev/null",
  "/dev/zero",
  "/dev/full",
  "/dev/random",
  "/dev/urandom",
];

/**
 * Capabilities a sandbox may keep. Only binding ports below 1024, which
 * matters only in the sandbox's own network namespace (its loopback): the
 * in-sandbox egress bridge listens on 53, 80 and 443 there.
 */
export type SandboxCapability = "CAP_NET_BIND_SERVICE";

/** Everything that varies between sandboxes. */
export interface BwrapOptions {
  /** The uid and gid the program sees inside its user namespace. */
  identity: { uid: number; gid: number };
  /** Filesystem entries, in order; the root starts empty. */
  mounts: readonly Mount[];
  /** The only environment variables the program gets. */
  env: Readonly<Record<string, string>>;
  /** Working directory inside the sandbox. */
  cwd: string;
  /** Hostname inside the UTS namespace. */
  hostname?: string;
  /**
   * "host" keeps the host's network namespace (every other namespace is
   * still new). Only for the npm package installer, which must reach the
   * registry; default "none": an empty network namespace.
   */
  network?: "none" | "host";
  /** File descriptor bubblewrap reads the seccomp BPF program from. */
  seccompFd: number;
  /**
   * File descriptor bubblewrap writes its JSON status to (the sandbox's pid-1
   * host pid, then the exit code), or none.
   */
  statusFd?: number;
  /** The command and its arguments, as seen inside the sandbox. */
  command: readonly string[];
  /**
   * Capabilities kept (every other one is dropped). They hold in the
   * sandbox's own user namespace, which then owns its network namespace:
   * with a `dev` mount bwrap nests a second user namespace (to mount
   * devpts) and a kept capability would hold in that one only, so the two
   * are refused together.
   */
  capabilities?: readonly SandboxCapability[];
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Builds the argv for `bwrap` (without the `bwrap` itself).
 *
 * @param options What to put inside the sandbox.
 * @returns The argument list.
 * @throws {TypeError} If a path is relative, contains `..`, NUL or newline,
 *   an environment name is invalid, or a mount destination repeats.
 *
 * @example Usage
 * ```ts
 * import { buildBwrapArgs } from "./bwrap_args.ts";
 * const args = buildBwrapArgs({
 *   identity: { uid: 65534, gid: 65534 },
 *   mounts: [{ kind: "proc", dest: "/proc" }],
 *   env: { NO_COLOR: "1" },
 *   cwd: "/",
 *   seccompFd: 3,
 *   command: ["/usr/bin/deno", "run", "/code/main.js"],
 * });
 * console.log(args.includes("--unshare-all"));
 * ```
 */
export function buildBwrapArgs(options: BwrapOptions): string[] {
  const { uid, gid } = options.identity;
  for (const [name, id] of [["uid", uid], ["gid", gid]] as const) {
    if (!Number.isInteger(id) || id < 0 || id > 0xfffffffe) {
      throw new TypeError(
        `Cannot build bwrap arguments as '${name}' must be a valid id: current value is ${id}`,
      );
    }
  }
  if (!Number.isInteger(options.seccompFd) || options.seccompFd < 3) {
    throw new TypeError(
      `Cannot build bwrap arguments as 'seccompFd' must be an integer >= 3: current value is ${options.seccompFd}`,
    );
  }
  if (options.command.length === 0) {
    throw new TypeError("Cannot build bwrap arguments without a command");
  }
  const capabilities = [...new Set(options.capabilities ?? [])];
  for (const capability of capabilities) {
    // Anything but binding low ports on its own loopback would widen what
    // the program can do to the kernel.
    if (capability !== "CAP_NET_BIND_SERVICE") {
      throw new TypeError(
        `Cannot keep capability '${capability}' in a sandbox: only CAP_NET_BIND_SERVICE is allowed`,
      );
    }
  }
  if (
    capabilities.length > 0 && options.mounts.some((m) => m.kind === "dev")
  ) {
    throw new TypeError(
      "Cannot keep a capability with a 'dev' mount: bwrap would nest a user namespace that does not own the network namespace; build /dev from 'dev-bind' mounts",
    );
  }
  const args: string[] = [
    // New user, pid, network, ipc, uts and cgroup namespaces: the program
    // sees no host process, no host network, no host IPC objects.
    "--unshare-all",
    // Opt-in only (the package installer): it must reach the npm registry.
    ...(options.network === "host" ? ["--share-net"] : []),
    // --unshare-all only *tries* the user namespace; insist on it so a host
    // that refuses one fails the launch instead of running with host ids.
    "--unshare-user",
    // Unprivileged ids inside; nothing maps to root.
    "--uid",
    String(uid),
    "--gid",
    String(gid),
    // A new session: no TIOCSTI keystroke injection into the harness's tty.
    "--new-session",
    // The sandbox dies with the harness, never outlives it as an orphan.
    "--die-with-parent",
    // No capabilities inside, even within the user namespace (but the
    // ones named, each checked above).
    "--cap-drop",
    "ALL",
    ...capabilities.flatMap((c) => ["--cap-add", c]),
    // Start from an empty environment: no harness variable leaks in.
    "--clearenv",
    // The hostname would otherwise be the host's (an information leak).
    "--hostname",
    checkText("hostname", options.hostname ?? "sandbox"),
  ];
  const seen = new Set<string>();
  for (const mount of options.mounts) {
    args.push(...mountArgs(mount, seen));
  }
  for (const [name, value] of Object.entries(options.env)) {
    if (!ENV_NAME.test(name)) {
      throw new TypeError(
        `Cannot set sandbox environment variable as its name is invalid: current value is '${name}'`,
      );
    }
    checkText(`environment variable '${name}'`, value);
    args.push("--setenv", name, value);
  }
  args.push("--chdir", checkPath("cwd", options.cwd));
  if (options.statusFd !== undefined) {
    if (
      !Number.isInteger(options.statusFd) || options.statusFd < 3 ||
      options.statusFd === options.seccompFd
    ) {
      throw new TypeError(
        `Cannot build bwrap arguments as 'statusFd' must be an integer >= 3 other than 'seccompFd': current value is ${options.statusFd}`,
      );
    }
    args.push("--json-status-fd", String(options.statusFd));
  }
  // The seccomp filter is loaded last, just before exec of the command.
  args.push("--seccomp", String(options.seccompFd));
  args.push("--", ...options.command.map((a, i) => checkText(`argv[${i}]`, a)));
  return args;
}

function mountArgs(mount: Mount, seen: Set<string>): string[] {
  const dest = checkPath("dest", mount.dest);
  if (mount.kind !== "remount-ro") {
    // "/inputs/x/" and "/inputs/./x" are the same place: a second mount there
    // would silently hide the first.
    const key = dest.split("/").filter((p) => p !== "" && p !== ".").join("/");
    if (seen.has(key)) {
      throw new TypeError(
        `Cannot mount '${dest}' twice in one sandbox: remove the duplicate`,
      );
    }
    seen.add(key);
  }
  switch (mount.kind) {
    case "ro-bind":
      return ["--ro-bind", checkPath("source", mount.source), dest];
    case "bind":
      return ["--bind", checkPath("source", mount.source), dest];
    case "tmpfs": {
      if (!Number.isInteger(mount.sizeBytes) || mount.sizeBytes <= 0) {
        throw new RangeError(
          `Cannot mount tmpfs '${dest}' as its size must be a positive integer: current value is ${mount.sizeBytes}`,
        );
      }
      return [
        ...modeArgs(mount.mode),
        "--size",
        String(mount.sizeBytes),
        "--tmpfs",
        dest,
      ];
    }
    case "proc":
      return ["--proc", dest];
    case "dev":
      return ["--dev", dest];
    case "dev-bind": {
      const source = checkPath("source", mount.source);
      // A terminal, a disk or /dev/kvm inside would be a way out.
      if (!DEVICE_NODES.includes(source)) {
        throw new TypeError(
          `Cannot bind device '${source}' into a sandbox: only ${
            DEVICE_NODES.join(", ")
          } are allowed`,
        );
      }
      return ["--dev-bind", source, dest];
    }
    case "dir":
      return [...modeArgs(mount.mode), "--dir", dest];
    case "symlink":
      return ["--symlink", checkText("symlink target", mount.target), dest];
    case "remount-ro":
      return ["--remount-ro", dest];
  }
}

function modeArgs(mode: number | undefined): string[] {
  if (mode === undefined) return [];
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
    throw new RangeError(
      `Cannot set mount mode as it must be an octal permission: current value is ${mode}`,
    );
  }
  return ["--perms", mode.toString(8).padStart(4, "0")];
}

function checkText(what: string, value: string): string {
  // NUL truncates C strings; a newline can forge lines in logs and configs.
  if (/[\0\n\r]/.test(value)) {
    throw new TypeError(
      `Cannot pass ${what} to bwrap as it contains NUL or a line break`,
    );
  }
  return value;
}

function checkPath(what: string, path: string): string {
  checkText(what, path);
  if (!path.startsWith("/")) {
    throw new TypeError(
      `Cannot use ${what} path '${path}' as it is not absolute`,
    );
  }
  // ".." could walk a destination out of the directory it was meant for.
  if (path.split("/").some((part) => part === "..")) {
    throw new TypeError(
      `Cannot use ${what} path '${path}' as it contains '..'`,
    );
  }
  return path;
}
