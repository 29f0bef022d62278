/**
 * Option and result types of the `@deno/sandbox`-compatible API
 * (`deno_sandbox.ts`), with the SDK's names and shapes.
 *
 * @module
 */

import type { PolicyInput } from "../harness/policy.ts";
import type { SandboxOptions as AirlockSandboxOptions } from "../harness/sandbox.ts";
import type { ResourceLimits } from "../runtime/limits.ts";
import type { Memory, SandboxTimeout } from "./options.ts";
import type { DenoProcess, StdioMode } from "./process.ts";
import type { DenoRepl } from "./repl.ts";

/** Regions of Deno Deploy (unsupported locally). */
export type Region = "ord" | "ams";

/** A secret injected on the wire. */
export interface SecretConfig {
  /** Hosts the real value may be sent to (at least one). */
  hosts: string[];
  /** The real value (never enters the sandbox). */
  value: string;
}

/** Connection options of the hosted SDK (ignored locally). */
export interface BaseClientOptions {
  token?: string;
  org?: string;
  apiEndpoint?: string;
}

/** Local-only settings (not part of `@deno/sandbox`). */
export interface AirlockOptions {
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

/** Options of {@linkcode Sandbox.create}. */
export interface SandboxOptions extends BaseClientOptions {
  /** Unsupported locally. */
  region?: Region;
  /** Ignored locally. */
  sandboxEndpoint?: string | ((region: string) => string);
  /** Plain environment variables of every program. */
  env?: Record<string, string>;
  /** "session" (default), or a lifetime such as "30s", "5m". */
  timeout?: SandboxTimeout;
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

/** Options of {@linkcode Sandbox.connect} (ignored locally). */
export interface ConnectOptions extends BaseClientOptions {
  sandboxEndpoint?: string | ((region: string) => string);
  debug?: boolean;
}

/** Options of {@linkcode Sandbox.spawn} and the base of `deno.run`. */
export interface SpawnOptions {
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
  /** Default "inherit". */
  stdout?: StdioMode;
  /** Default "inherit". */
  stderr?: StdioMode;
}

/** The file extension inline code is compiled as. */
export type CodeExtension =
  | "js"
  | "cjs"
  | "mjs"
  | "ts"
  | "cts"
  | "mts"
  | "jsx"
  | "tsx";

/** Options of `sandbox.deno.run()`. */
export type DenoRunOptions =
  & ({
    entrypoint: string | URL;
    /** Unsupported when set. */
    watch?: boolean | string[];
  } | {
    code: string;
    extension?: CodeExtension;
  })
  & { scriptArgs?: string[] }
  & Omit<SpawnOptions, "args">;

/** Options of `sandbox.deno.repl()` (`stdin: "piped"` is unsupported). */
export type DenoReplOptions =
  & { scriptArgs?: string[] }
  & Omit<
    SpawnOptions,
    "args"
  >;

/** `sandbox.deno`. */
export interface SandboxDeno {
  run(options: DenoRunOptions): Promise<DenoProcess>;
  eval<T = unknown>(code: string): Promise<T>;
  repl(options?: DenoReplOptions): Promise<DenoRepl>;
  deploy(app: string, options?: unknown): Promise<never>;
}

/** `sandbox.env`: reads what programs see; changes are unsupported. */
export interface SandboxEnv {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
  toObject(): Promise<Record<string, string>>;
  delete(key: string): Promise<void>;
}

/** Result shape of the SDK's `sh` (which is unsupported here). */
export interface SandboxCommandResult {
  status: { success: boolean; code: number; oom: boolean };
  stdoutText: string | null;
  stderrText: string | null;
  stdout: Uint8Array | null;
  stderr: Uint8Array | null;
}

/** Type of the SDK's `sh` builder (never produced here: `sh` throws). */
export interface SandboxCommandBuilder
  extends PromiseLike<SandboxCommandResult> {
  noThrow(value?: boolean): SandboxCommandBuilder;
  sudo(enable?: boolean): SandboxCommandBuilder;
  cwd(path: string): SandboxCommandBuilder;
  env(name: string, value: string): SandboxCommandBuilder;
  stdout(kind: StdioMode): SandboxCommandBuilder;
  stderr(kind: StdioMode): SandboxCommandBuilder;
  signal(signal: unknown): SandboxCommandBuilder;
  text(): Promise<string>;
  json<T = unknown>(): Promise<T>;
  result(): Promise<SandboxCommandResult>;
}

/** Request options of the SDK's `fetch` (unsupported here). */
export interface SandboxRequestInit {
  method?: string;
  headers?: HeadersInit;
  body?: BodyInit;
  redirect?: "follow" | "manual";
  signal?: AbortSignal | null;
}
export type { SandboxRequestInit as RequestInit };
