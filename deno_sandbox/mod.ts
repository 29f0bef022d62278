/**
 * An `@deno/sandbox`-compatible API (modelled on npm `@deno/sandbox@0.13.2`)
 * over airlock's local sandboxes: code written against Deno's hosted sandbox
 * SDK runs locally with only its import changed.
 *
 * ```ts ignore
 * // import { Sandbox } from "@deno/sandbox";
 * import { Sandbox } from "./deno_sandbox/mod.ts";
 * await using sandbox = await Sandbox.create({
 *   allowNet: ["api.openai.com"],
 *   secrets: { OPENAI_API_KEY: { hosts: ["api.openai.com"], value: key } },
 * });
 * await sandbox.fs.writeTextFile("main.ts", "console.log(Deno.env.get('OPENAI_API_KEY'))");
 * const child = await sandbox.deno.run({ entrypoint: "main.ts", stdout: "piped" });
 * console.log((await child.output()).stdoutText); // airlock-placeholder-OPENAI_API_KEY-...
 * ```
 *
 * How the SDK maps onto airlock:
 *
 * - **allowNet** becomes `network.allow` (patterns `host`, `host:port`,
 *   `*.host`, IPv4, `[IPv6]`, each with an optional port). Without a port a
 *   pattern admits ports 443 and 80 only (airlock's rule; the SDK admits any
 *   port). An IP literal also opens its own address in `subnets.allow`, so
 *   private and documentation addresses can be listed; loopback, link-local
 *   and metadata addresses stay blocked. No `allowNet` means "allow-all"
 *   (any public host, as the SDK's "no restrictions"); `[]` means deny-all.
 * - **secrets** become placeholder secrets: the program sees an opaque
 *   `airlock-placeholder-NAME-…` in env var NAME; the injector swaps the real
 *   value into request headers over TLS toward the listed hosts only. The
 *   value travels as `${secret:NAME}` through airlock's `secrets` map, never
 *   in the policy object nor in the sandbox. When `allowNet` is given, every
 *   secret's hosts are added to it (a secret for a host the program could
 *   not reach would be useless).
 * - **env** becomes `policy.env` (plain variables, visible to the program);
 *   airlock refuses names it reserves (DENO_*, LD_*, SSL_*, proxies, and the
 *   NODE_* loader/TLS variables).
 *   The environment is fixed at creation: `sandbox.env.set/delete` and
 *   per-run `env`/`clearEnv` are unsupported.
 * - **timeout** `"session"` (default): the sandbox lives until `close()`;
 *   runs get airlock's maximum wall clock (24 h). `"30s"`, `"5m"`: the
 *   sandbox is destroyed (every run killed, every file deleted) when the
 *   time is up, and each run's wall clock is the time left when it starts;
 *   as in the SDK, `close()` then only disconnects this client
 *   (`Sandbox.connect(id)` reattaches within the process) and `kill()`
 *   destroys. `extendTimeout(d)` sets the deadline to now + d (runs already
 *   started keep their own limit).
 * - **memory** (SDK format and range, default 1280 MiB) becomes
 *   `limits.memoryMb` (each run's JS heap cap and off-heap allowance).
 * - **Files**: the sandbox's files are airlock's scratch directory, always
 *   granted, mounted at /scratch, which is the programs' working directory.
 *   Relative SDK paths are relative to /scratch; absolute ones must be
 *   under it (a path climbing above `/` is refused, never clamped). Symlinks are never followed, made or read, and file
 *   operations are refused while a run of the sandbox is live.
 * - **Programs**: `deno.run({ entrypoint })` bundles the entry and its
 *   relative imports from the files under /scratch (read through airlock's
 *   fs, so not while another run is live); `deno.run({ code })` runs
 *   inline code (its relative imports resolve in /scratch). npm packages
 *   listed in the airlock-only option `airlock: { npm: ["ms@^2"] }` can be
 *   imported (`npm:ms`, or bare `ms`): airlock installs them on the
 *   harness side and bundles them in. Other npm:, jsr: and URL imports are
 *   refused (the sandbox never fetches code). `deno.eval()` and
 *   `deno.repl()` evaluate in the global scope of one program (`node:vm`):
 *   declarations persist, a promise result is awaited, top-level `await`
 *   works (the input runs in an async function whose declarations are
 *   hoisted, as Node's REPL does it; its value is the last expression
 *   statement's, and a `const` declared that way is assignable later);
 *   redeclaring a `const` is not available.
 * - **stdio** defaults are those of the SDK's implementation: stdin "null",
 *   stdout and stderr "inherit" (copied to this process's own; the
 *   process's `stdout` is then null). Pass "piped" to read them.
 * - **Exit status**: `kill(signal)` ends a run by SIGKILL of its whole
 *   sandbox (no handler runs) and reports the signal asked for
 *   (`code` 128 + N); timeouts and output/disk limits report SIGKILL (137);
 *   out of memory reports `oom: true`, 137.
 * - **Unsupported** (throws {@linkcode AirlockUnsupportedError} naming the
 *   member): `sh`, `spawn` of anything but `deno run`/`deno eval`,
 *   `fetch`, `exposeHttp`, `exposeSsh`, `exposeVscode`, `deploy`,
 *   `DenoProcess.fetch/httpReady`, `region`, `root`, `volumes`, `ssh`,
 *   `port`, `watch`, `env.set/delete`, fs `open/create/symlink/link/
 *   readLink/chmod/chown/utime/umask/expandGlob`, `Client`, `Volume`,
 *   `Snapshot`. `labels`, `debug`, tokens and endpoints are ignored.
 * - **airlock-only** option `airlock`: `npm` (packages programs may
 *   import) and `npmCacheDir`, `connectTo` (HOST:PORT:HOST2:PORT2, curl's
 *   --connect-to), `upstreamCaCerts` (PEM files or PEM text), `limits`,
 *   `inputs`, `injector`, `tmpDir`, `denoPath`, `onAudit`; and
 *   `sandbox.airlock`, the underlying airlock `Sandbox` (audit trail,
 *   `updateNetworkPolicy`).
 *
 * The names are the SDK's: `Sandbox`, `SandboxFs` and `SandboxOptions` here
 * are not the airlock library's classes of the same names
 * (`@airlock/airlock`), which `sandbox.airlock` and the `airlock` option
 * reach.
 *
 * @module
 */

// Where things are: sandbox.ts (the Sandbox class) over session.ts (its state
// and deadline) and options.ts (the SDK's options checked and mapped onto an
// airlock sandbox); types.ts (the SDK's option types); deno.ts and
// deno_types.ts (sandbox.deno, sandbox.env); process.ts and status.ts
// (processes, exit status); repl.ts, repl_channel.ts, top_level_await.ts and
// tagged_json.ts (the REPL, its input, and how values cross); fs.ts,
// fs_types.ts, fs_walk.ts, fs_transfer.ts and paths.ts (sandbox.fs);
// errors.ts, kill.ts and deploy.ts (the SDK's other exports).
// Inside the folder, airlock's own classes are imported as AirlockSandbox,
// AirlockSandboxFs and AirlockSandboxOptions.

export { Sandbox, VsCode } from "./sandbox.ts";
export type { Memory } from "./options.ts";
export { KillController, KillSignal, type KillSignalListener } from "./kill.ts";
export {
  AirlockUnsupportedError,
  ApiError,
  ConnectionClosedError,
  ConnectionEstablishmentError,
  InvalidMemoryError,
  InvalidTimeoutError,
  InvalidTokenError,
  MissingTokenError,
  NetworkError,
  RpcError,
  SandboxCommandError,
  SandboxKillError,
  SandboxSdkError,
} from "./errors.ts";
export { Client, Snapshot, Volume } from "./deploy.ts";
export {
  ChildProcess,
  type ChildProcessOutput,
  DenoProcess,
} from "./process.ts";
export type { ChildProcessStatus, Signal } from "./status.ts";
export { DenoRepl } from "./repl.ts";
export { SandboxFs } from "./fs.ts";
export { FsFile, SeekMode } from "./fs_types.ts";
export type {
  DirEntry,
  ExpandGlobOptions,
  FileInfo,
  MkdirOptions,
  OpenOptions,
  ReadFileOptions,
  RemoveOptions,
  WalkEntry,
  WalkOptions,
  WriteFileOptions,
} from "./fs_types.ts";
export type {
  AirlockOptions,
  BaseClientOptions,
  ConnectOptions,
  Region,
  RequestInit,
  SandboxCommandBuilder,
  SandboxCommandResult,
  SandboxOptions,
  SecretConfig,
  SpawnOptions,
} from "./types.ts";
export type {
  CodeExtension,
  DenoReplOptions,
  DenoRunOptions,
  SandboxDeno,
  SandboxEnv,
} from "./deno_types.ts";
