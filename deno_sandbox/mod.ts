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
 *   under it. Symlinks are never followed, made or read, and file
 *   operations are refused while a run of the sandbox is live.
 * - **Programs**: `deno.run({ entrypoint })` bundles the entry and its
 *   relative imports from the files under /scratch (read through airlock's
 *   fs, so not while another run is live); `deno.run({ code })` runs
 *   inline code (its relative imports resolve in /scratch). npm:, jsr: and URL
 *   imports are refused (the sandbox never fetches code). `deno.eval()` and
 *   `deno.repl()` evaluate in the global scope of one program (`node:vm`):
 *   declarations persist, a promise result is awaited, top-level `await`
 *   and redeclaring a `const` are not available.
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
 * - **airlock-only** option `airlock`: `connectTo` (HOST:PORT:HOST2:PORT2,
 *   curl's --connect-to), `upstreamCaCerts` (PEM files or PEM text),
 *   `limits`, `inputs`, `injector`, `tmpDir`, `denoPath`, `onAudit`; and
 *   `sandbox.airlock`, the underlying airlock `Sandbox` (audit trail,
 *   `updateNetworkPolicy`).
 *
 * @module
 */
import { Sandbox as AirlockSandbox } from "../harness/sandbox.ts";
import {
  ConnectionClosedError,
  ConnectionEstablishmentError,
  parseMemory,
  parseTimeout,
  unsupported,
} from "./errors.ts";
import type { DenoProcess } from "./process.ts";
import { SandboxFs, toPath } from "./fs.ts";
import { LocalDeno, LocalEnv } from "./deno.ts";
import {
  DEFAULT_MEMORY_MB,
  destroy,
  materialiseCaCerts,
  MAX_RUN_MS,
  networkPolicy,
  NO_DEPLOY,
  NO_INBOUND,
  NO_SHELL,
  reject,
  schedule,
  type Session,
  sessions,
} from "./session.ts";
import type {
  ConnectOptions,
  SandboxCommandBuilder,
  SandboxDeno,
  SandboxEnv,
  SandboxOptions,
  SandboxRequestInit,
  SpawnOptions,
} from "./types.ts";

export {
  AirlockUnsupportedError,
  ApiError,
  Client,
  ConnectionClosedError,
  ConnectionEstablishmentError,
  FsFile,
  InvalidMemoryError,
  InvalidTimeoutError,
  InvalidTokenError,
  KillController,
  KillSignal,
  type KillSignalListener,
  type Memory,
  MissingTokenError,
  NetworkError,
  RpcError,
  SandboxCommandError,
  SandboxKillError,
  SandboxSdkError,
  SeekMode,
  Snapshot,
  Volume,
  VsCode,
} from "./errors.ts";
export {
  ChildProcess,
  type ChildProcessOutput,
  type ChildProcessStatus,
  DenoProcess,
  DenoRepl,
  type Signal,
} from "./process.ts";
export {
  type DirEntry,
  type ExpandGlobOptions,
  type FileInfo,
  type MkdirOptions,
  type OpenOptions,
  type ReadFileOptions,
  type RemoveOptions,
  SandboxFs,
  type WalkEntry,
  type WalkOptions,
  type WriteFileOptions,
} from "./fs.ts";
export type {
  AirlockOptions,
  BaseClientOptions,
  CodeExtension,
  ConnectOptions,
  DenoReplOptions,
  DenoRunOptions,
  Region,
  RequestInit,
  SandboxCommandBuilder,
  SandboxCommandResult,
  SandboxDeno,
  SandboxEnv,
  SandboxOptions,
  SecretConfig,
  SpawnOptions,
} from "./types.ts";

const TOKEN = Symbol("airlock deno_sandbox");

/**
 * A sandbox, as `@deno/sandbox`'s `Sandbox`.
 *
 * @example Usage
 * ```ts ignore
 * await using sandbox = await Sandbox.create({ allowNet: ["example.com"] });
 * console.log(await sandbox.deno.eval("1 + 1")); // 2
 * ```
 */
export class Sandbox implements AsyncDisposable {
  #session: Session;
  #primary: boolean;
  #closed = false;
  #markClosed: () => void;
  #closedPromise: Promise<void>;
  #fs: SandboxFs;
  #deno: SandboxDeno;
  #env: SandboxEnv;

  /**
   * Not for callers: use {@linkcode Sandbox.create} or {@linkcode Sandbox.connect}.
   *
   * @param token Internal.
   * @param session Internal.
   * @param primary Internal.
   */
  constructor(token: symbol, session: Session, primary: boolean) {
    if (token !== TOKEN) {
      throw new TypeError("Cannot construct a Sandbox: use Sandbox.create()");
    }
    this.#session = session;
    this.#primary = primary;
    const closed = Promise.withResolvers<void>();
    this.#closedPromise = closed.promise;
    this.#markClosed = () => {
      this.#closed = true;
      session.clients.delete(this.#markClosed);
      closed.resolve();
    };
    session.clients.add(this.#markClosed);
    this.#fs = new SandboxFs(() => {
      this.#open("sandbox.fs");
      return session.inner.fs;
    });
    this.#deno = new LocalDeno(session, (member) => this.#open(member));
    this.#env = new LocalEnv(session, this.#deno, (m) => this.#open(m));
  }

  /**
   * Creates a sandbox (an airlock sandbox with a scratch directory).
   *
   * @param options The SDK's options, plus `airlock` for local settings.
   * @returns The sandbox; `close()` it or use `await using`.
   */
  static async create(options: SandboxOptions = {}): Promise<Sandbox> {
    const { airlock = {}, ...sdk } = options;
    for (const key of ["region", "root", "volumes", "port"] as const) {
      if (sdk[key] !== undefined) {
        unsupported(`Sandbox.create({ ${key} })`, UNSUPPORTED_OPTIONS[key]);
      }
    }
    if (sdk.ssh) {
      unsupported("Sandbox.create({ ssh: true })", UNSUPPORTED_OPTIONS.ssh);
    }
    const lifetimeMs = parseTimeout(sdk.timeout);
    const memoryMb = sdk.memory === undefined
      ? DEFAULT_MEMORY_MB
      : parseMemory(sdk.memory);
    const secrets = Object.entries(sdk.secrets ?? {});
    for (const [name, secret] of secrets) {
      if (typeof secret?.value !== "string" || !Array.isArray(secret.hosts)) {
        throw new TypeError(
          `Cannot create the sandbox: secrets.${name} must be { hosts: string[], value: string }`,
        );
      }
    }
    const ca = await materialiseCaCerts(airlock.upstreamCaCerts ?? []);
    let inner: AirlockSandbox;
    const capMs = airlock.limits?.timeoutMs ?? MAX_RUN_MS;
    try {
      inner = await AirlockSandbox.create({
        policy: {
          limits: { memoryMb, ...airlock.limits, timeoutMs: capMs },
          scratch: true,
          ...(airlock.inputs ? { inputs: airlock.inputs } : {}),
          network: networkPolicy(sdk.allowNet, secrets),
          secrets: Object.fromEntries(
            secrets.map(([name, s]) => [name, {
              hosts: s.hosts,
              value: `\${secret:${name}}`,
            }]),
          ),
          env: sdk.env ?? {},
          upstream: {
            connectTo: airlock.connectTo ?? [],
            caCerts: ca.paths,
          },
        },
        secrets: Object.fromEntries(secrets.map(([n, s]) => [n, s.value])),
        // Nothing of the harness's environment reaches a policy from here.
        env: () => undefined,
        ...(airlock.injector ? { injector: airlock.injector } : {}),
        ...(airlock.tmpDir ? { tmpDir: airlock.tmpDir } : {}),
        ...(airlock.denoPath ? { denoPath: airlock.denoPath } : {}),
        ...(airlock.onAudit ? { onAudit: airlock.onAudit } : {}),
      });
    } finally {
      await ca.cleanup();
    }
    const session: Session = {
      inner,
      deadline: null,
      timer: undefined,
      capMs,
      plainEnv: { ...sdk.env },
      secretNames: secrets.map(([name]) => name),
      clients: new Set(),
      nextPid: 1,
      destroying: null,
    };
    sessions.set(inner.id, session);
    if (lifetimeMs !== null) schedule(session, Date.now() + lifetimeMs);
    return new Sandbox(TOKEN, session, true);
  }

  /**
   * Attaches another client to a live sandbox of this process (one created
   * with a duration `timeout` and `close()`d, or still open).
   *
   * @param idOrOptions The sandbox id, or options with `id`.
   * @param _options Ignored locally.
   * @returns A client; its `close()` never destroys a "session" sandbox.
   * @throws {ConnectionEstablishmentError} When no such sandbox lives here.
   */
  static connect(
    idOrOptions: string | (ConnectOptions & { id: string }),
    _options?: ConnectOptions,
  ): Promise<Sandbox> {
    const id = typeof idOrOptions === "string" ? idOrOptions : idOrOptions.id;
    const session = sessions.get(id);
    if (!session || session.destroying) {
      return Promise.reject(
        new ConnectionEstablishmentError(
          404,
          "SANDBOX_NOT_FOUND",
          `No live sandbox '${id}' in this process (local sandboxes live in the process that created them, until their timeout or kill())`,
        ),
      );
    }
    return Promise.resolve(new Sandbox(TOKEN, session, false));
  }

  /** The sandbox's id. */
  get id(): string {
    return this.#session.inner.id;
  }
  /** Resolves when this client is closed. */
  get closed(): Promise<void> {
    return this.#closedPromise;
  }
  /** The sandbox's files (/scratch). */
  get fs(): SandboxFs {
    return this.#fs;
  }
  /** Deno programs, eval and REPLs. */
  get deno(): SandboxDeno {
    return this.#deno;
  }
  /** The programs' environment (read-only here). */
  get env(): SandboxEnv {
    return this.#env;
  }
  /** Always undefined: no SSH locally. */
  get ssh(): { username: string; hostname: string } | undefined {
    return undefined;
  }
  /** Always undefined: no public URL locally. */
  get url(): string | undefined {
    return undefined;
  }
  /** airlock only: the underlying airlock sandbox (audit trail, policy). */
  get airlock(): AirlockSandbox {
    return this.#session.inner;
  }

  /**
   * Only Deno can run: `spawn("deno", { args: ["run", flags..., file, args...] })`
   * and `["eval", code]` map to `deno.run` (flags are ignored: the policy
   * decides permissions); anything else is unsupported.
   *
   * @param command `"deno"`.
   * @param options Arguments and stdio.
   * @returns The process.
   */
  async spawn(
    command: string | URL,
    options: SpawnOptions = {},
  ): Promise<DenoProcess> {
    this.#open("sandbox.spawn()");
    const name = toPath(command);
    const { args = [], ...rest } = options;
    if (name !== "deno" && !name.endsWith("/deno")) {
      unsupported(`sandbox.spawn("${name}")`, NO_SHELL);
    }
    const [sub, ...more] = args;
    const operands: string[] = [];
    for (let i = 0; i < more.length; i++) {
      const arg = more[i]!;
      if (arg === "--") {
        operands.push(...more.slice(i + 1));
        break;
      }
      if (arg.startsWith("-") && arg.length > 1) {
        if (VALUE_FLAGS.has(arg)) i++;
        continue;
      }
      // The program's name, then its own arguments, flags included.
      operands.push(...more.slice(i));
      break;
    }
    const [first, ...scriptArgs] = operands;
    if (sub === "run" && first !== undefined) {
      return await this.#deno.run({ ...rest, entrypoint: first, scriptArgs });
    }
    if (sub === "eval" && first !== undefined) {
      return await this.#deno.run({ ...rest, code: first, scriptArgs });
    }
    return unsupported(
      `sandbox.spawn("deno", { args: ${JSON.stringify(args.slice(0, 2))} })`,
      "only 'deno run <file> [args]' and 'deno eval <code>' are available",
    );
  }

  /** Unsupported: no shell in the sandbox. */
  sh: (
    templateStrings: TemplateStringsArray,
    ...substitutions: unknown[]
  ) => SandboxCommandBuilder = () => unsupported("sandbox.sh", NO_SHELL);

  /**
   * Unsupported: airlock has no agent inside the sandbox to fetch for you.
   *
   * @returns Never: rejects.
   */
  fetch(_url: string | URL, _init?: SandboxRequestInit): Promise<Response> {
    return reject(
      "sandbox.fetch()",
      "airlock has no agent inside the sandbox; fetch from a program (sandbox.deno.run) instead",
    );
  }

  /**
   * Closes this client. A "session" sandbox's primary client destroys the
   * sandbox (kills every run, deletes every file); with a duration timeout
   * the sandbox lives on until its deadline or `kill()`.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#markClosed();
    if (this.#primary && this.#session.deadline === null) {
      await destroy(this.#session);
    }
  }

  /** Destroys the sandbox now, whatever its timeout. */
  async kill(): Promise<void> {
    this.#markClosed();
    await destroy(this.#session);
  }

  /**
   * Sets the sandbox's deadline to now + `timeout`.
   *
   * @param timeout `"600s"`, `"10m"`.
   * @returns The new deadline.
   */
  extendTimeout(timeout: `${number}s` | `${number}m`): Promise<Date> {
    try {
      this.#open("sandbox.extendTimeout()");
      const ms = parseTimeout(timeout);
      if (ms === null) {
        return reject(
          'sandbox.extendTimeout("session")',
          'it needs a duration like "10m" or "600s"',
        );
      }
      schedule(this.#session, Date.now() + ms);
      return Promise.resolve(new Date(this.#session.deadline!));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Unsupported: the sandbox accepts no inbound connections. */
  exposeHttp(_target: { port: number } | { pid: number }): Promise<string> {
    return reject("sandbox.exposeHttp()", NO_INBOUND);
  }
  /** Unsupported: the sandbox accepts no inbound connections. */
  exposeSsh(): Promise<{ hostname: string; username: string }> {
    return reject("sandbox.exposeSsh()", NO_INBOUND);
  }
  /** Unsupported: the sandbox accepts no inbound connections. */
  exposeVscode(_path?: string, _options?: unknown): Promise<never> {
    return reject("sandbox.exposeVscode()", NO_INBOUND);
  }
  /** Unsupported: there is no Deno Deploy locally. */
  deploy(_app: string, _options?: unknown): Promise<never> {
    return reject("sandbox.deploy()", NO_DEPLOY);
  }

  #open(member: string): void {
    if (this.#closed || this.#session.destroying) {
      throw new ConnectionClosedError(
        undefined,
        `Cannot use ${member}: sandbox '${this.id}' is closed`,
      );
    }
  }
}

const UNSUPPORTED_OPTIONS = {
  region: "sandboxes run on this machine",
  root:
    "the sandbox's root is an empty tree with only the Deno runtime; there are no volumes or snapshots locally",
  volumes:
    "there are no Deno Deploy volumes locally; use airlock: { inputs } for read-only host directories",
  port: NO_INBOUND,
  ssh: NO_INBOUND,
} as const;
/** `deno run` flags that take a separate value. */
const VALUE_FLAGS = new Set([
  "-c",
  "--config",
  "--import-map",
  "--lock",
  "--cert",
  "--location",
  "--seed",
  "--ext",
  "-L",
  "--log-level",
]);
