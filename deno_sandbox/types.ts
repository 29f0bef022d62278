/**
 * Option and result types of the `@deno/sandbox`-compatible API's
 * `Sandbox`, with the SDK's names and shapes, plus `AirlockOptions` (the
 * local-only settings). Those of `sandbox.deno` and `sandbox.env` are in
 * `deno_types.ts`, those of `sandbox.fs` in `fs_types.ts`.
 *
 * @module
 */

import type { PolicyInput } from "../harness/policy.ts";
import type { SandboxOptions as AirlockSandboxOptions } from "../harness/sandbox.ts";
import type { ResourceLimits } from "../runtime/limits.ts";
import type { Memory } from "./options.ts";

/**
 * Regions of Deno Deploy (unsupported locally: sandboxes run on this machine).
 *
 * @example Usage
 * ```ts
 * import type { Region } from "./mod.ts";
 * const region: Region = "ams";
 * console.log(region);
 * ```
 */
export type Region = "ord" | "ams";

/**
 * A secret injected on the wire: the program sees a placeholder in the
 * environment variable; the real value goes only into requests to `hosts`.
 *
 * @example Usage
 * ```ts
 * import type { SecretConfig } from "./mod.ts";
 * const secret: SecretConfig = { hosts: ["api.example.com"], value: "sk-..." };
 * console.log(secret.hosts);
 * ```
 */
export interface SecretConfig {
  /** Hosts the real value may be sent to (at least one). */
  hosts: string[];
  /** The real value (never enters the sandbox). */
  value: string;
}

/**
 * Connection options of the hosted SDK (ignored locally: no token needed).
 *
 * @example Usage
 * ```ts
 * import type { BaseClientOptions } from "./mod.ts";
 * const options: BaseClientOptions = { token: "unused-locally" };
 * console.log(Object.keys(options));
 * ```
 */
export interface BaseClientOptions {
  /** Deno Deploy access token (ignored). */
  token?: string;
  /** Deno Deploy organisation (ignored). */
  org?: string;
  /** Deno Deploy API endpoint (ignored). */
  apiEndpoint?: string;
}

/**
 * Local-only settings (not part of `@deno/sandbox`): the `airlock` option of
 * `Sandbox.create`. The types of `limits`, `inputs`, `injector` and
 * `onAudit` are the airlock library's (`@airlock/airlock`).
 *
 * @example Usage
 * ```ts
 * import type { AirlockOptions } from "./mod.ts";
 * const airlock: AirlockOptions = {
 *   connectTo: ["api.example.com:443:127.0.0.1:8443"],
 *   upstreamCaCerts: ["./test-ca.pem"],
 *   limits: { cpuSeconds: 10 },
 *   npm: ["ms@^2", "is-number"],
 * };
 * console.log(airlock.connectTo);
 * ```
 */
export interface AirlockOptions {
  /**
   * npm packages `deno.run()` programs may import (`"name"` or
   * `"name@range"`; the range is a ceiling for the program's own): airlock
   * installs them on the harness side (no lifecycle scripts) and bundles
   * them in; the sandbox never fetches code. The policy's `npm.allow`.
   */
  npm?: string[];
  /** Where npm packages are installed (default `/var/tmp/airlock-npm-<uid>`). */
  npmCacheDir?: string;
  /** `HOST1:PORT1:HOST2:PORT2` mappings (curl's --connect-to) for upstreams. */
  connectTo?: string[];
  /** Extra CAs trusted for upstream TLS: PEM file paths, or PEM text. */
  upstreamCaCerts?: string[];
  /** airlock limits, overriding what `memory`/`timeout` give. */
  limits?: Partial<ResourceLimits>;
  /** Read-only inputs (airlock policy `inputs`). */
  inputs?: PolicyInput["inputs"];
  /** The injector (default: one shared per process). */
  injector?: AirlockSandboxOptions["injector"];
  /** Where workspaces go (must be traversable by the sandbox's uid: mode 0711 or wider). */
  tmpDir?: string;
  /** The Deno binary used inside. */
  denoPath?: string;
  /** Receives every audit event. */
  onAudit?: AirlockSandboxOptions["onAudit"];
}

/**
 * Options of `Sandbox.create`: the SDK's, plus `airlock`.
 *
 * @example Usage
 * ```ts
 * import type { SandboxOptions } from "./mod.ts";
 * const options: SandboxOptions = {
 *   allowNet: ["api.example.com"],
 *   secrets: { API_KEY: { hosts: ["api.example.com"], value: "sk-..." } },
 *   env: { MODE: "test" },
 *   timeout: "5m",
 *   memory: "1GiB",
 * };
 * console.log(options.timeout);
 * ```
 */
export interface SandboxOptions extends BaseClientOptions {
  /** Unsupported locally. */
  region?: Region;
  /** Ignored locally. */
  sandboxEndpoint?: string | ((region: string) => string);
  /** Plain environment variables of every program. */
  env?: Record<string, string>;
  /** "session" (default: until `close()`), or a lifetime such as "30s", "5m". */
  timeout?: "session" | `${number}s` | `${number}m`;
  /** Memory of each run (default "1280MiB"). */
  memory?: Memory;
  /** Ignored locally. */
  debug?: boolean;
  /** Ignored locally. */
  labels?: Record<string, string>;
  /** Unsupported locally. */
  root?: string;
  /** Unsupported locally. */
  volumes?: Record<string, string>;
  /** Allowed hosts; absent: any public host. */
  allowNet?: string[];
  /** Secrets injected on the wire, by environment variable name. */
  secrets?: Record<string, SecretConfig>;
  /** Unsupported locally. */
  ssh?: boolean;
  /** Unsupported locally. */
  port?: number;
  /** airlock-only settings. */
  airlock?: AirlockOptions;
}

/**
 * Options of `Sandbox.connect` (ignored locally).
 *
 * @example Usage
 * ```ts
 * import type { ConnectOptions } from "./mod.ts";
 * const options: ConnectOptions = { debug: false };
 * console.log(options.debug);
 * ```
 */
export interface ConnectOptions extends BaseClientOptions {
  /** Ignored locally. */
  sandboxEndpoint?: string | ((region: string) => string);
  /** Ignored locally. */
  debug?: boolean;
}

/**
 * Options of `sandbox.spawn()`, and the base of `deno.run()`'s.
 *
 * @example Usage
 * ```ts
 * import type { SpawnOptions } from "./mod.ts";
 * const options: SpawnOptions = { args: ["run", "main.ts"], stdout: "piped" };
 * console.log(options.args);
 * ```
 */
export interface SpawnOptions {
  /** The command's arguments (`["run", "main.ts", ...]` for `deno`). */
  args?: string[];
  /** Must be /scratch (or absent): every program runs there. */
  cwd?: string | URL;
  /** Unsupported when true. */
  clearEnv?: boolean;
  /** Unsupported when non-empty. */
  env?: Record<string, string>;
  /** Aborting kills the process (status SIGTERM). */
  signal?: AbortSignal;
  /** Default "null". */
  stdin?: "piped" | "null";
  /** Default "inherit" (copied to this process's stdout; `child.stdout` is then null). */
  stdout?: "piped" | "inherit" | "null";
  /** Default "inherit" (copied to this process's stderr; `child.stderr` is then null). */
  stderr?: "piped" | "inherit" | "null";
}

/**
 * Result shape of the SDK's `sh` (which is unsupported here).
 *
 * @example Usage
 * ```ts
 * import type { SandboxCommandResult } from "./mod.ts";
 * const result: SandboxCommandResult = {
 *   status: { success: true, code: 0, oom: false },
 *   stdoutText: null,
 *   stderrText: null,
 *   stdout: null,
 *   stderr: null,
 * };
 * console.log(result.status.success);
 * ```
 */
export interface SandboxCommandResult {
  /** How the command ended. */
  status: { success: boolean; code: number; oom: boolean };
  /** stdout as UTF-8, when piped. */
  stdoutText: string | null;
  /** stderr as UTF-8, when piped. */
  stderrText: string | null;
  /** stdout bytes, when piped. */
  stdout: Uint8Array | null;
  /** stderr bytes, when piped. */
  stderr: Uint8Array | null;
}

/**
 * Type of the SDK's `sh` builder (never produced here: `sandbox.sh` throws,
 * as the sandbox holds no shell).
 *
 * @example Usage
 * ```ts ignore
 * const builder: SandboxCommandBuilder = sandbox.sh`ls`; // throws AirlockUnsupportedError
 * ```
 */
export interface SandboxCommandBuilder
  extends PromiseLike<SandboxCommandResult> {
  /**
   * Whether a failing command resolves instead of throwing.
   *
   * @param value Whether to.
   * @returns The builder.
   */
  noThrow(value?: boolean): SandboxCommandBuilder;
  /**
   * Whether the command runs with sudo.
   *
   * @param enable Whether to.
   * @returns The builder.
   */
  sudo(enable?: boolean): SandboxCommandBuilder;
  /**
   * The command's working directory.
   *
   * @param path A sandbox path.
   * @returns The builder.
   */
  cwd(path: string): SandboxCommandBuilder;
  /**
   * Sets an environment variable of the command.
   *
   * @param name The name.
   * @param value The value.
   * @returns The builder.
   */
  env(name: string, value: string): SandboxCommandBuilder;
  /**
   * Where stdout goes.
   *
   * @param kind "piped", "inherit" or "null".
   * @returns The builder.
   */
  stdout(kind: "piped" | "inherit" | "null"): SandboxCommandBuilder;
  /**
   * Where stderr goes.
   *
   * @param kind "piped", "inherit" or "null".
   * @returns The builder.
   */
  stderr(kind: "piped" | "inherit" | "null"): SandboxCommandBuilder;
  /**
   * A signal that ends the command.
   *
   * @param signal An `AbortSignal` or a `KillSignal`.
   * @returns The builder.
   */
  signal(signal: unknown): SandboxCommandBuilder;
  /**
   * Runs the command and reads stdout as text.
   *
   * @returns stdout.
   */
  text(): Promise<string>;
  /**
   * Runs the command and parses stdout as JSON.
   *
   * @returns The parsed value.
   */
  json<T = unknown>(): Promise<T>;
  /**
   * Runs the command.
   *
   * @returns Its status and output.
   */
  result(): Promise<SandboxCommandResult>;
}

/**
 * Request options of the SDK's `sandbox.fetch` (unsupported here: there is
 * no agent inside the sandbox to fetch for you). Exported as `RequestInit`,
 * the SDK's name.
 *
 * @example Usage
 * ```ts
 * import type { RequestInit } from "./mod.ts";
 * const init: RequestInit = { method: "POST", body: "{}" };
 * console.log(init.method);
 * ```
 */
export interface SandboxRequestInit {
  /** HTTP method. */
  method?: string;
  /** Request headers. */
  headers?: HeadersInit;
  /** Request body. */
  body?: BodyInit;
  /** How redirects are handled. */
  redirect?: "follow" | "manual";
  /** Aborting cancels the request. */
  signal?: AbortSignal | null;
}
export type { SandboxRequestInit as RequestInit };
