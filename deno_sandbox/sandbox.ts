/**
 * The `Sandbox` class of the `@deno/sandbox`-compatible API: creating a
 * sandbox from the SDK's options, attaching clients to it, `spawn` of Deno
 * programs, its lifetime (`close`, `kill`, `extendTimeout`), and the members
 * that cannot exist locally (they throw `AirlockUnsupportedError`, as
 * constructing `VsCode` does).
 *
 * The name is the SDK's; the airlock library's own `Sandbox` (the one this
 * class drives) is imported here as `AirlockSandbox` and reached by callers
 * through `sandbox.airlock`.
 *
 * @module
 */
import { Sandbox as AirlockSandbox } from "../harness/sandbox.ts";
import {
  ConnectionClosedError,
  ConnectionEstablishmentError,
  NO_DEPLOY,
  NO_INBOUND,
  NO_SHELL,
  rejectUnsupported,
  unsupported,
} from "./errors.ts";
import {
  airlockSandboxOptions,
  checkOptions,
  materialiseCaCerts,
  parseTimeout,
} from "./options.ts";
import type { DenoProcess } from "./process.ts";
import { SandboxFs } from "./fs.ts";
import { toPath } from "./paths.ts";
import { LocalDeno, LocalEnv } from "./deno.ts";
import { destroy, schedule, type Session, sessions } from "./session.ts";
import type {
  ConnectOptions,
  SandboxCommandBuilder,
  SandboxOptions,
  SandboxRequestInit,
  SpawnOptions,
} from "./types.ts";
import type { SandboxDeno, SandboxEnv } from "./deno_types.ts";

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
    const checked = checkOptions(options);
    const { airlock = {} } = options;
    const ca = await materialiseCaCerts(airlock.upstreamCaCerts ?? []);
    let inner: AirlockSandbox;
    try {
      inner = await AirlockSandbox.create(
        airlockSandboxOptions(options, checked, ca.paths),
      );
    } finally {
      await ca.cleanup();
    }
    const session: Session = {
      inner,
      deadline: null,
      timer: undefined,
      capMs: checked.capMs,
      plainEnv: { ...options.env },
      secretNames: checked.secrets.map(([name]) => name),
      clients: new Set(),
      nextPid: 1,
      destroying: null,
    };
    sessions.set(inner.id, session);
    if (checked.lifetimeMs !== null) {
      schedule(session, Date.now() + checked.lifetimeMs);
    }
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
    return rejectUnsupported(
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
        return rejectUnsupported(
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
    return rejectUnsupported("sandbox.exposeHttp()", NO_INBOUND);
  }
  /** Unsupported: the sandbox accepts no inbound connections. */
  exposeSsh(): Promise<{ hostname: string; username: string }> {
    return rejectUnsupported("sandbox.exposeSsh()", NO_INBOUND);
  }
  /** Unsupported: the sandbox accepts no inbound connections. */
  exposeVscode(_path?: string, _options?: unknown): Promise<never> {
    return rejectUnsupported("sandbox.exposeVscode()", NO_INBOUND);
  }
  /** Unsupported: there is no Deno Deploy locally. */
  deploy(_app: string, _options?: unknown): Promise<never> {
    return rejectUnsupported("sandbox.deploy()", NO_DEPLOY);
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

/**
 * A VS Code instance: never created locally (`sandbox.exposeVscode` rejects:
 * nothing can connect into a sandbox). Constructing one throws.
 *
 * @example Usage
 * ```ts
 * import { AirlockUnsupportedError, VsCode } from "./mod.ts";
 * import assert from "node:assert/strict";
 * assert.throws(() => new VsCode(), AirlockUnsupportedError);
 * ```
 */
export class VsCode {
  /** Throws: the sandbox accepts no inbound connections. */
  constructor() {
    unsupported(
      "VsCode",
      "the sandbox accepts no inbound connections (own network namespace)",
    );
  }
}
