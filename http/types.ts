/**
 * The HTTP API's bodies as TypeScript types, for clients: what a request
 * may hold (`...Input`, `...Request`: every defaulted field optional) and
 * what the server answers (`...Json` and the rest: defaults filled in).
 *
 * They are written out rather than inferred from the zod schemas of
 * schemas.ts, so a client needs neither zod nor the server's modules;
 * types_test.ts checks each one equal to the schema it mirrors, so they
 * cannot drift. `GET /openapi.json` describes the same bodies, with each
 * field's meaning and bounds.
 *
 * @example A run's result, typed
 * ```ts
 * import type { RunRequest, RunResultJson } from "./types.ts";
 * const request: RunRequest = { code: "console.log(6 * 7)", timeoutMs: 5_000 };
 * const summarise = (result: RunResultJson) =>
 *   `${result.reason} ${result.exitCode}: ${result.stdout}`;
 * console.log(request.code, typeof summarise);
 * ```
 *
 * @module
 */

/**
 * Every error code the API answers with; clients can switch on these.
 * `node_unavailable` (502/503: the node holding the sandbox is gone or
 * unreachable, its sandboxes with it) and `no_capacity` (503: no node can
 * take a new sandbox now) come from the fleet's router
 * (deploy/haproxy.ts), not from a node.
 *
 * @example Usage
 * ```ts
 * import { ERROR_CODES } from "./types.ts";
 * console.log(ERROR_CODES.includes("over_ceiling")); // true
 * ```
 */
export const ERROR_CODES = [
  "unauthorized",
  "not_found",
  "invalid_json",
  "invalid_request",
  "invalid_policy",
  "unsupported_media_type",
  "bundle_error",
  "body_too_large",
  "too_many_sandboxes",
  "too_many_runs",
  "over_ceiling",
  "npm_not_allowed",
  "sandbox_busy",
  "no_scratch",
  "fs_refused",
  "shutting_down",
  "draining",
  "node_full",
  "wrong_node",
  "node_unavailable",
  "no_capacity",
  "sandbox_setup_error",
  "internal",
] as const;

/** One of {@linkcode ERROR_CODES}. */
export type ErrorCode = typeof ERROR_CODES[number];

/** One problem with a request, by its path in the body (`policy.limits`). */
export interface ApiIssue {
  /** Dotted path in the request body; '' for the root. */
  path: string;
  /** What is wrong. */
  message: string;
}

/** One problem found while bundling the program. */
export interface BundleProblemJson {
  /** What is wrong (esbuild's words, or the refused import). */
  message: string;
  /** The program file, relative to its root. */
  file?: string | undefined;
  /** 1-based line. */
  line?: number | undefined;
  /** 0-based column. */
  column?: number | undefined;
}

/** Every error answer. */
export interface ErrorBody {
  /** The error. */
  error: {
    /** Which error; see {@linkcode ERROR_CODES}. */
    code: ErrorCode;
    /** What went wrong and what to do. */
    message: string;
    /**
     * For invalid_request, invalid_policy, over_ceiling (each limit over
     * its ceiling) and npm_not_allowed.
     */
    issues?: ApiIssue[] | undefined;
    /** For bundle_error. */
    problems?: BundleProblemJson[] | undefined;
  };
}

/** Hard limits on each run, as written: each one optional. */
export interface LimitsInput {
  /** Wall-clock limit of one run (ms). */
  timeoutMs?: number | undefined;
  /** JS heap limit and off-heap allowance (MiB). */
  memoryMb?: number | undefined;
  /** CPU time limit (seconds). */
  cpuSeconds?: number | undefined;
  /** Largest file the program may write (MiB). */
  fileSizeMb?: number | undefined;
  /** Open file descriptors. */
  openFiles?: number | undefined;
  /** Processes plus threads. */
  processes?: number | undefined;
  /** Bytes kept of stdout and of stderr each. */
  outputBytes?: number | undefined;
  /** Size of the private /tmp (MiB). */
  tmpMb?: number | undefined;
  /** Quota of the scratch directory (MiB). */
  scratchMb?: number | undefined;
}

/** Hard limits on each run, as in force: every one set. */
export type LimitsJson = { [K in keyof LimitsInput]-?: number };

/** One read-only input as written: `HOST[:SANDBOX]` or an object. */
export type MountInput = string | {
  /** Host path (file or directory), mounted read-only. */
  source: string;
  /** Path inside the sandbox; default /inputs/<basename of source>. */
  target?: string | undefined;
  /** Copy instead of bind-mounting; default false. */
  copy?: boolean | undefined;
};

/** One read-only input as read back. */
export type MountJson = string | {
  /** Host path. */
  source: string;
  /** Path inside the sandbox, if given. */
  target?: string | undefined;
  /** Whether it is copied instead of bind-mounted. */
  copy: boolean;
};

/** A header (or query parameter) that must be present. */
export interface KeyValueMatch {
  /** Its name. */
  key: string;
  /** When absent, the key only has to be present. */
  value?: string | undefined;
}

/** Which requests a rule applies to; every given condition must hold. */
export interface MatchJson {
  /** The request path (without the query): exactly, by prefix or regex. */
  path?:
    | { exact: string }
    | { startsWith: string }
    | { regex: string }
    | undefined;
  /** HTTP methods, compared case-insensitively. */
  methods?: string[] | undefined;
  /** Query parameters that must be present. */
  query?: KeyValueMatch[] | undefined;
  /** Request headers that must be present (names case-insensitive). */
  headers?: KeyValueMatch[] | undefined;
}

/** A rule that answers locally: the request never leaves the injector. */
export interface ResponseRuleJson {
  /** Which requests; default every one. */
  match?: MatchJson | undefined;
  /** The answer. */
  response: {
    /** Its status, 200 to 599. */
    statusCode: number;
    /** Its headers. */
    headers?: Record<string, string> | undefined;
    /** Its body. */
    body?: string | undefined;
    /** Its content type. */
    contentType?: string | undefined;
  };
}

/** A rule that sets headers, as written. */
export interface TransformRuleInput {
  /** Which requests; default every one. */
  match?: MatchJson | undefined;
  /**
   * Headers to set, replacing any the sandbox sent under the same name;
   * values may reference `${env:NAME}` or `${secret:NAME}`.
   */
  transform: { headers: Record<string, string> }[];
  /** Also inject over plain http:// (clear text); default false. */
  allowInsecure?: boolean | undefined;
}

/** A rule that sets headers, as read back (values redacted). */
export interface TransformRuleJson extends TransformRuleInput {
  /** Whether it also injects over plain http://. */
  allowInsecure: boolean;
}

/** A rule as written: set headers or answer locally. */
export type RuleInput = TransformRuleInput | ResponseRuleJson;

/** A rule as read back. */
export type RuleJson = TransformRuleJson | ResponseRuleJson;

/** Private ranges the injector may or may never dial. */
export interface SubnetsJson {
  /** Private ranges it may dial (loopback, link-local, metadata stay blocked). */
  allow?: string[] | undefined;
  /** Ranges never dialled; beats allow. */
  deny?: string[] | undefined;
}

/**
 * Egress policy as written: `"deny-all"` (the default), `"allow-all"`, or
 * an allowlist of host patterns, with rules or without.
 */
export type NetworkPolicyInput = "deny-all" | "allow-all" | {
  /** Allowed host patterns, or host patterns with their rules. */
  allow?: string[] | Record<string, RuleInput[]> | undefined;
  /** Plain TCP destinations (`host:port`, port required): tunnelled, never terminated. */
  tcp?: string[] | undefined;
  /** Accept wildcards over a public suffix (`*.github.io`); default false. */
  allowPublicSuffixWildcards?: boolean | undefined;
  /** Private ranges. */
  subnets?: SubnetsJson | undefined;
};

/** Egress policy as read back (injected values `<redacted>`). */
export type NetworkPolicyJson = "deny-all" | "allow-all" | {
  /** Allowed host patterns, or host patterns with their rules. */
  allow: string[] | Record<string, RuleJson[]>;
  /** Plain TCP destinations (`host:port`, port required): tunnelled, never terminated. */
  tcp?: string[] | undefined;
  /** Whether wildcards over a public suffix are accepted. */
  allowPublicSuffixWildcards?: boolean | undefined;
  /** Private ranges. */
  subnets?: SubnetsJson | undefined;
};

/** Placeholder secrets by environment variable name. */
export type PlaceholderSecretsJson = Record<string, {
  /** Hosts the real value may be sent to. */
  hosts: string[];
  /** The value (a reference); `<redacted>` when read back. */
  value: string;
}>;

/**
 * Which system information the program may read (Deno's `sys` kinds):
 * "allow" every kind, "deny" none, or the listed kinds.
 *
 * @example Usage
 * ```ts
 * import type { SystemPolicyJson } from "./types.ts";
 * const system: SystemPolicyJson = ["cpus", "systemMemoryInfo"];
 * console.log(system.length); // 2
 * ```
 */
export type SystemPolicyJson =
  | "allow"
  | "deny"
  | (
    | "hostname"
    | "osRelease"
    | "osUptime"
    | "loadavg"
    | "networkInterfaces"
    | "systemMemoryInfo"
    | "cpus"
    | "uid"
    | "gid"
    | "getegid"
    | "username"
    | "userInfo"
    | "homedir"
    | "statfs"
    | "getPriority"
  )[];

/** The sandbox policy as written: every field optional. */
export interface PolicyInput {
  /** JSON Schema reference, ignored. */
  $schema?: string | undefined;
  /** Hard limits on each run. */
  limits?: LimitsInput | undefined;
  /** A private read-write /scratch kept across runs; default false. */
  scratch?: boolean | undefined;
  /** Read-only inputs. */
  inputs?: MountInput[] | undefined;
  /** Egress policy; default "deny-all". */
  network?: NetworkPolicyInput | undefined;
  /** Placeholder secrets. */
  secrets?: PlaceholderSecretsJson | undefined;
  /** npm packages the program may import ('name' or 'name@range'). */
  npm?: { allow?: string[] | undefined } | undefined;
  /** Plain environment variables the program can read (never secrets). */
  env?: Record<string, string> | undefined;
  /** System information the program may read; default "allow". */
  system?: SystemPolicyJson | undefined;
  /** Whether every Deno permission check is recorded; default true. */
  audit?: { permissions?: boolean | undefined } | undefined;
  /** How the injector reaches upstreams. */
  upstream?: {
    /** HOST1:PORT1:HOST2:PORT2 mappings, as curl --connect-to. */
    connectTo?: string[] | undefined;
    /** PEM files of extra CAs trusted for upstream TLS. */
    caCerts?: string[] | undefined;
  } | undefined;
}

/** The sandbox policy as read back: defaults filled in, values redacted. */
export interface PolicyJson {
  /** JSON Schema reference, ignored. */
  $schema?: string | undefined;
  /** Hard limits on each run. */
  limits: LimitsJson;
  /** Whether the sandbox has a private read-write /scratch. */
  scratch: boolean;
  /** Read-only inputs. */
  inputs: MountJson[];
  /** Egress policy. */
  network: NetworkPolicyJson;
  /** Placeholder secrets. */
  secrets: PlaceholderSecretsJson;
  /** npm packages the program may import. */
  npm: { allow: string[] };
  /** Plain environment variables. */
  env: Record<string, string>;
  /** System information the program may read. */
  system: SystemPolicyJson;
  /** Whether every Deno permission check is recorded. */
  audit: { permissions: boolean };
  /** How the injector reaches upstreams. */
  upstream: { connectTo: string[]; caCerts: string[] };
}

/** `POST /sandboxes` body. */
export interface CreateSandboxRequest {
  /**
   * The sandbox policy (default: the server's). Limits it does not set take
   * the server's defaults; parts that reach the server are refused unless
   * its config allows them.
   */
  policy?: PolicyInput | undefined;
  /** Values for `${secret:NAME}` references; never returned. */
  secrets?: Record<string, string> | undefined;
  /** A label for listings. */
  name?: string | undefined;
  /** Warm start (default true). */
  warm?: boolean | undefined;
}

/** One sandbox in a listing. */
export interface SandboxInfo {
  /** Its id. */
  id: string;
  /** The label given at creation. */
  name: string | null;
  /** ISO time of creation. */
  createdAt: string;
  /** Whether a run is live. */
  running: boolean;
}

/** `POST /sandboxes` answer: the sandbox and its validated policy. */
export interface CreatedSandbox extends SandboxInfo {
  /** The policy with defaults filled in, injected values `<redacted>`. */
  policy: PolicyJson;
}

/** `POST /sandboxes/{id}/runs` body: `code`, or `files` with `entry`. */
export interface RunRequest {
  /** Program source (TypeScript or JavaScript). */
  code?: string | undefined;
  /** Program files by relative path; give `entry` too. */
  files?: Record<string, string> | undefined;
  /** The entry point, one of `files`. */
  entry?: string | undefined;
  /** `Deno.args` of the program. */
  args?: string[] | undefined;
  /** Text fed to the program's stdin. */
  stdin?: string | undefined;
  /** Wall-clock limit of this run; at most the server's ceiling. */
  timeoutMs?: number | undefined;
}

/**
 * One audit event (egress request, permission check or harness record);
 * `AuditEvent` in harness/run_result.ts lists every field.
 */
export interface AuditEventJson {
  /** ISO time. */
  time: string;
  /** Who recorded it. */
  source: "injector" | "broker" | "harness";
  /** What kind of event. */
  kind: string;
  /** The kind's own fields. */
  [field: string]: unknown;
}

/** How a run ended. */
export interface RunStatusJson {
  /** The sandbox. */
  sandboxId: string;
  /** The run. */
  runId: string;
  /** The program's exit code (or 128 + signal). */
  exitCode: number;
  /** The signal that ended it, if any. */
  signal: string | null;
  /** Why it ended; limits are reasons, never errors. */
  reason:
    | "exit"
    | "timeout"
    | "oom"
    | "cpu"
    | "file-size"
    | "disk-limit"
    | "output-limit"
    | "killed"
    | "crashed";
  /** Exit code 0 with reason "exit". */
  success: boolean;
  /** Whether output was cut at `limits.outputBytes`. */
  truncated: boolean;
  /** Wall-clock time of the run. */
  durationMs: number;
  /** ISO time it started. */
  startedAt: string;
  /** The limits it ran under. */
  limits: LimitsJson;
  /** What it did, in order. */
  audit: AuditEventJson[];
}

/** `POST /sandboxes/{id}/runs` answer. */
export interface RunResultJson extends RunStatusJson {
  /** Decoded as UTF-8 (invalid bytes replaced). */
  stdout: string;
  /** Decoded as UTF-8 (invalid bytes replaced). */
  stderr: string;
}

/** `GET /ready`: one check. */
export interface ReadinessCheck {
  /** Whether it passed. */
  ok: boolean;
  /** What was found. */
  detail: string;
}

/** `GET /ready` (200 when ready, 503 when not, with the same body). */
export interface Readiness {
  /** Whether the node can start a sandbox now. */
  ready: boolean;
  /** The node's name (in the ids of its sandboxes), or null. */
  node: string | null;
  /** sandbox (a probe sandbox runs), injector, capacity, draining. */
  checks: Record<string, ReadinessCheck>;
}

/** `GET /sandboxes/{id}/files/{path}?list=1`. */
export interface DirListing {
  /** The directory, as `/scratch/...`. */
  path: string;
  /** Its entries; symlinks are listed, never followed. */
  entries: {
    /** The entry's name. */
    name: string;
    /** Whether it is a file. */
    isFile: boolean;
    /** Whether it is a directory. */
    isDirectory: boolean;
    /** Whether it is a symbolic link. */
    isSymlink: boolean;
  }[];
}
