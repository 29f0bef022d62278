/**
 * The server configuration of `deno task serve --config FILE`: a JSONC file,
 * validated with every problem listed by path (its JSON Schema is
 * `schema/server.schema.json`), that sets where the server listens, its
 * tokens, the default policy, per-token ceilings, what clients may set, and
 * the operator's upstream mappings and CAs.
 *
 * Longer than the ~400-line guide: the file's schema and its loader are one
 * concern, and the loader reads best as one pass that collects every
 * problem (schema, tokens, token files, CA files, tmpDir) before failing.
 *
 * @example A config file
 * ```jsonc
 * {
 *   "$schema": "../schema/server.schema.json",
 *   "listen": { "host": "0.0.0.0", "port": 8787 },
 *   "tokens": [
 *     { "name": "ci", "env": "AIRLOCK_CI_TOKEN" },
 *     { "name": "agents", "file": "/etc/airlock/agents.token", "ceilings": { "runsPerToken": 4 } }
 *   ],
 *   "ceilings": { "limits": { "memoryMb": 512, "outputBytes": 4194304 }, "runsPerToken": 2 },
 *   "clients": { "npm": true },
 *   "upstream": { "connectTo": ["api.internal.test:443:10.0.0.5:8443"], "caCerts": ["internal-ca.pem"] }
 * }
 * ```
 *
 * @module
 */

import { normalisePath } from "../harness/paths.ts";
import { z } from "zod";
import { parseJsonc } from "../harness/_jsonc.ts";
import {
  parsePolicy,
  PolicyError,
  type PolicyInput,
  type PolicyIssue,
  PolicySchema,
} from "../harness/policy.ts";
import { type ConnectTo, parseConnectTo } from "../injector/resolver.ts";
import { UpstreamSchema } from "../injector/egress_policy.ts";
import type { AppOptions, TokenInfo } from "./app.ts";
import { NODE_NAME_PATTERN } from "./node.ts";
import {
  CeilingsSchema,
  ClientRulesSchema,
  resolveCeilings,
} from "./ceilings.ts";

/** Tokens shorter than this are refused: they could be guessed. */
export const MIN_TOKEN_LENGTH = 16;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Case spelled out: a JSON Schema pattern has no flags.
const SIZE = /^(\d+(?:\.\d+)?)\s*([kKmMgG]?)([iI]?[bB])?$/;

const TokenSchema = z.strictObject({
  name: z.string().regex(
    /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/,
    "must be 1-64 letters, digits, '_', '.', '@' or '-'",
  ).describe("Who holds the token (listings and logs; never compared)"),
  env: z.string().regex(ENV_NAME, "must be an environment variable name")
    .optional().describe("Read the token from this environment variable"),
  file: z.string().min(1).optional().describe(
    "Read the token from this file (mode 0600 or stricter; relative to the config)",
  ),
  value: z.string().optional().describe(
    "The token itself (prefer env or file: a config file is often shared)",
  ),
  ceilings: CeilingsSchema.optional().describe(
    "This token's ceilings, over the server's",
  ),
}).superRefine((token, ctx) => {
  const given = ["env", "file", "value"].filter((k) =>
    token[k as "env"] !== undefined
  );
  if (given.length !== 1) {
    ctx.addIssue({
      code: "custom",
      path: [],
      message: `give exactly one of 'env', 'file' or 'value' (got ${
        given.length === 0 ? "none" : given.join(", ")
      })`,
    });
  }
});

const sizeOrBytes = z.union([
  z.number().int().min(1024).max(1024 ** 3),
  z.string().regex(SIZE, "must be a size such as '1MB', '512K' or '4MiB'"),
]);

/** The config file as written (also the source of its JSON Schema). */
export const ServerConfigSchema = z.strictObject({
  $schema: z.string().optional().describe("JSON Schema reference, ignored"),
  listen: z.strictObject({
    host: z.string().min(1).optional().describe(
      "Address to listen on (default 127.0.0.1; --host wins)",
    ),
    port: z.number().int().min(0).max(65_535).optional().describe(
      "Port (default 8787; 0 picks a free one; --port wins)",
    ),
  }).optional(),
  maxBodyBytes: sizeOrBytes.optional().describe(
    "Largest request body: bytes or '1MB', '512K' (default 1 MiB; --max-body wins)",
  ),
  tokens: z.array(TokenSchema).optional().describe(
    "Bearer tokens (with --token-env, --token and AIRLOCK_API_TOKENS)",
  ),
  tokenFile: z.string().min(1).optional().describe(
    "A file of tokens, one per line: 'NAME TOKEN' or 'TOKEN'; '#' starts a comment (mode 0600 or stricter; relative to the config)",
  ),
  defaultPolicy: PolicySchema.optional().describe(
    "The policy of a sandbox created without one (host paths must be absolute; it may use inputs, connectTo and subnets whatever 'clients' says)",
  ),
  ceilings: CeilingsSchema.optional(),
  runSlots: z.number().int().min(1).max(10_000).optional().describe(
    "Runs live at once across every token (default 4 per core); free slots go to each token's queue in turn",
  ),
  clients: ClientRulesSchema.optional(),
  upstream: z.strictObject({
    connectTo: UpstreamSchema.shape.connectTo.optional().describe(
      "HOST1:PORT1:HOST2:PORT2 mappings for every sandbox (curl's --connect-to); clients cannot see or change them",
    ),
    caCerts: z.array(z.string().min(1)).optional().describe(
      "PEM files of CAs trusted for upstream TLS by every sandbox, besides the system roots (relative to the config)",
    ),
  }).optional().describe(
    "How the injector reaches upstreams, for every sandbox",
  ),
  tmpDir: z.string().min(1).optional().describe(
    "Where sandbox workspaces and answer spools go (default $TMPDIR or /tmp)",
  ),
  node: z.strictObject({
    name: z.string().regex(
      NODE_NAME_PATTERN,
      "must be 1-63 lower-case letters, digits or '-', not starting or ending with '-'",
    ).optional().describe(
      "This node's name, in every sandbox id (sbx-<node>-<random>) so a router can route by id (default: $AIRLOCK_NODE_NAME, $POD_NAME, else the host name's first label; --node wins)",
    ),
    maxSandboxes: z.number().int().min(1).max(100_000).optional().describe(
      "Sandboxes alive at once on this node across every token; past it creation is 503 node_full and /ready says not ready (default: no node ceiling)",
    ),
    drainTimeoutMs: z.number().int().min(0).max(3_600_000).optional()
      .describe(
        "On SIGTERM: how long live runs may take to finish before they are killed (default 30000); keep it under Kubernetes' terminationGracePeriodSeconds",
      ),
  }).optional().describe("This server as a node of a fleet"),
  metrics: z.strictObject({
    token: z.strictObject({
      env: z.string().regex(ENV_NAME, "must be an environment variable name")
        .optional().describe("Read the token from this environment variable"),
      file: z.string().min(1).optional().describe(
        "Read the token from this file (mode 0600 or stricter; relative to the config)",
      ),
    }).optional().describe(
      "A bearer token that may read GET /metrics (and nothing else); give env or file",
    ),
    public: z.boolean().optional().describe(
      "Anyone who reaches the port may read GET /metrics (default false: the metrics token or a loopback client)",
    ),
  }).optional().describe("Who may read GET /metrics"),
}).describe("airlock HTTP API server configuration");

/** The config as written. */
export type ServerConfigInput = z.input<typeof ServerConfigSchema>;

/** A config that was refused; `issues` lists every problem by path. */
export class ServerConfigError extends Error {
  /** Every problem found. */
  readonly issues: PolicyIssue[];
  /**
   * Makes the error of one config file.
   *
   * @param source The file.
   * @param issues The problems.
   */
  constructor(source: string, issues: PolicyIssue[]) {
    super(
      `Cannot use server config '${source}': ${issues.length} problem${
        issues.length === 1 ? "" : "s"
      }\n` +
        issues.map((i) => `  - ${i.path || "(root)"}: ${i.message}`).join("\n"),
    );
    this.name = "ServerConfigError";
    this.issues = issues;
  }
}

/** A loaded config: what the server and the app are given. */
export interface ServerConfig {
  /** `listen.host`, if set. */
  host?: string;
  /** `listen.port`, if set. */
  port?: number;
  /** `maxBodyBytes` in bytes, if set. */
  maxBodyBytes?: number;
  /** Tokens by value, from `tokens` and `tokenFile`. */
  tokens: Map<string, TokenInfo>;
  /** `node.name`, if set. */
  nodeName?: string;
  /** `node.drainTimeoutMs`, if set. */
  drainTimeoutMs?: number;
  /** Options for `createApp` (everything but tokens). */
  app: Omit<AppOptions, "tokens">;
}

/** Options for {@linkcode loadServerConfig}. */
export interface LoadServerConfigOptions {
  /** Environment lookup for token `env` entries; default `Deno.env.get`. */
  env?: (name: string) => string | undefined;
}

/**
 * Reads, validates and resolves a server config file: token files and CA
 * files are read now, so a missing or unreadable one stops the server from
 * starting (fail closed) instead of failing a client later.
 *
 * @param path The JSONC file.
 * @param options Environment lookup.
 * @returns The config.
 * @throws {ServerConfigError} Listing every problem by path.
 *
 * @example Usage
 * ```ts ignore
 * import { loadServerConfig } from "./config.ts";
 * const config = await loadServerConfig("/etc/airlock/server.jsonc");
 * console.log(config.tokens.size);
 * ```
 */
export async function loadServerConfig(
  path: string,
  options: LoadServerConfigOptions = {},
): Promise<ServerConfig> {
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const fail = (issues: PolicyIssue[]) => new ServerConfigError(path, issues);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw fail([{
      path: "",
      message: `cannot read the file: ${(error as Error).message}`,
    }]);
  }
  let raw: unknown;
  try {
    raw = parseJsonc(text);
  } catch (error) {
    throw fail([{ path: "", message: (error as Error).message }]);
  }
  const dir = directoryOf(path);
  const resolve = (file: string) =>
    file.startsWith("/") ? file : `${dir}/${file}`;
  // The policy is checked by the policy parser (clearer messages, and the
  // checks the schema alone cannot make).
  const checked = ServerConfigSchema.extend({
    defaultPolicy: z.unknown().optional(),
  }).safeParse(raw);
  const issues: PolicyIssue[] = checked.success ? [] : checked.error.issues
    .map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
  const rawPolicy = (raw as { defaultPolicy?: unknown } | null)?.defaultPolicy;
  if (rawPolicy !== undefined) {
    issues.push(...policyIssues(rawPolicy));
  }
  if (!checked.success) throw fail(issues);
  const config = checked.data;

  const base = resolveCeilings(config.ceilings);
  issues.push(...base.issues.map((i) => under("ceilings", i)));
  const tokens = new Map<string, TokenInfo>();
  const names = new Map<string, string>();
  const addToken = (token: string, info: TokenInfo, where: string) => {
    if (token.length < MIN_TOKEN_LENGTH || /[\s,]/.test(token)) {
      issues.push({
        path: where,
        message:
          `the token must have at least ${MIN_TOKEN_LENGTH} characters and no spaces or commas (e.g. 'openssl rand -hex 32')`,
      });
    } else if (tokens.has(token)) {
      issues.push({
        path: where,
        message: `the same token as '${tokens.get(token)!.name}'`,
      });
    } else if (names.has(info.name)) {
      issues.push({
        path: where,
        message: `the name '${info.name}' is also used by ${
          names.get(info.name)
        }`,
      });
    } else {
      tokens.set(token, info);
      names.set(info.name, where);
    }
  };
  for (const [index, entry] of (config.tokens ?? []).entries()) {
    const where = `tokens.${index}`;
    if (entry.ceilings) {
      const own = resolveCeilings(entry.ceilings, base.ceilings);
      issues.push(...own.issues.map((i) => under(`${where}.ceilings`, i)));
    }
    let token: string | undefined;
    if (entry.value !== undefined) token = entry.value;
    else if (entry.env !== undefined) {
      token = env(entry.env)?.trim();
      if (!token) {
        issues.push({
          path: `${where}.env`,
          message: `the variable '${entry.env}' is unset or empty`,
        });
        continue;
      }
    } else {
      const read = await readSecretFile(resolve(entry.file!));
      if ("error" in read) {
        issues.push({ path: `${where}.file`, message: read.error });
        continue;
      }
      token = read.text.trim();
    }
    addToken(token, {
      name: entry.name,
      ...(entry.ceilings ? { ceilings: entry.ceilings } : {}),
    }, where);
  }
  if (config.tokenFile !== undefined) {
    const read = await readSecretFile(resolve(config.tokenFile));
    if ("error" in read) {
      issues.push({ path: "tokenFile", message: read.error });
    } else {
      read.text.split("\n").forEach((line, index) => {
        const fields = line.replace(/#.*/, "").trim().split(/\s+/)
          .filter(Boolean);
        if (fields.length === 0) return;
        const where = `tokenFile (line ${index + 1})`;
        if (fields.length > 2) {
          issues.push({
            path: where,
            message: "write 'NAME TOKEN' or 'TOKEN' on each line",
          });
          return;
        }
        const token = fields.at(-1)!;
        const name = fields.length === 2
          ? fields[0]!
          : `tokenFile-${index + 1}`;
        addToken(token, { name }, where);
      });
    }
  }

  const connectTo: ConnectTo[] = (config.upstream?.connectTo ?? []).map((
    text,
  ) => parseConnectTo(text));
  const caCerts: string[] = [];
  for (const [index, file] of (config.upstream?.caCerts ?? []).entries()) {
    const absolute = normalisePath(resolve(file));
    if (absolute === null) {
      issues.push({
        path: `upstream.caCerts.${index}`,
        message: `cannot use '${file}': it climbs above /`,
      });
      continue;
    }
    try {
      const pem = await Deno.readTextFile(absolute);
      if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
        throw new Error("it holds no PEM certificate");
      }
      caCerts.push(absolute);
    } catch (error) {
      // Fail closed: an unreadable CA never means "trust fewer upstreams
      // later, when a client's request fails for a reason it cannot see".
      issues.push({
        path: `upstream.caCerts.${index}`,
        message: `cannot use '${absolute}': ${(error as Error).message}`,
      });
    }
  }
  let metricsToken: string | undefined;
  const metricsSource = config.metrics?.token;
  if (metricsSource !== undefined) {
    const where = "metrics.token";
    if (
      (metricsSource.env === undefined) === (metricsSource.file === undefined)
    ) {
      issues.push({
        path: where,
        message: "give exactly one of 'env' or 'file'",
      });
    } else if (metricsSource.env !== undefined) {
      metricsToken = env(metricsSource.env)?.trim();
      if (!metricsToken) {
        issues.push({
          path: `${where}.env`,
          message: `the variable '${metricsSource.env}' is unset or empty`,
        });
      }
    } else {
      const read = await readSecretFile(resolve(metricsSource.file!));
      if ("error" in read) {
        issues.push({ path: `${where}.file`, message: read.error });
      } else metricsToken = read.text.trim();
    }
    if (metricsToken !== undefined && metricsToken !== "") {
      if (
        metricsToken.length < MIN_TOKEN_LENGTH || /[\s,]/.test(metricsToken)
      ) {
        issues.push({
          path: where,
          message:
            `the token must have at least ${MIN_TOKEN_LENGTH} characters and no spaces or commas (e.g. 'openssl rand -hex 32')`,
        });
      } else if (tokens.has(metricsToken)) {
        // A tenant's token reading every tenant's load is what a separate
        // metrics token is for.
        issues.push({
          path: where,
          message: `the same token as '${
            tokens.get(metricsToken)!.name
          }': give metrics a token of its own`,
        });
      }
    }
  }
  if (config.tmpDir !== undefined) {
    const dir = resolve(config.tmpDir);
    const info = await Deno.stat(dir).catch(() => null);
    if (!info?.isDirectory) {
      issues.push({
        path: "tmpDir",
        message:
          `'${dir}' is not a directory: create it (mode 0755, so sandbox users can reach their workspaces)`,
      });
    }
  }
  if (issues.length > 0) throw fail(issues);

  const sandboxDefaults: NonNullable<AppOptions["sandboxDefaults"]> = {
    ...(rawPolicy !== undefined
      ? {
        policy: rawPolicy as PolicyInput,
      }
      : {}),
    ...(connectTo.length > 0 ? { connectTo } : {}),
    ...(config.tmpDir !== undefined ? { tmpDir: resolve(config.tmpDir) } : {}),
  };
  return {
    ...(config.listen?.host !== undefined ? { host: config.listen.host } : {}),
    ...(config.listen?.port !== undefined ? { port: config.listen.port } : {}),
    ...(config.maxBodyBytes !== undefined
      ? { maxBodyBytes: parseSize(config.maxBodyBytes) }
      : {}),
    tokens,
    ...(config.node?.name !== undefined ? { nodeName: config.node.name } : {}),
    ...(config.node?.drainTimeoutMs !== undefined
      ? { drainTimeoutMs: config.node.drainTimeoutMs }
      : {}),
    app: {
      sandboxDefaults,
      ...(config.node?.maxSandboxes !== undefined
        ? { maxNodeSandboxes: config.node.maxSandboxes }
        : {}),
      ...(metricsToken || config.metrics?.public !== undefined
        ? {
          metrics: {
            ...(metricsToken ? { token: metricsToken } : {}),
            ...(config.metrics?.public !== undefined
              ? { public: config.metrics.public }
              : {}),
          },
        }
        : {}),
      ...(config.ceilings ? { ceilings: config.ceilings } : {}),
      ...(config.clients ? { clients: definedRules(config.clients) } : {}),
      ...(caCerts.length > 0 ? { upstreamCaCerts: caCerts } : {}),
      ...(config.runSlots !== undefined ? { runSlots: config.runSlots } : {}),
    },
  };
}

/**
 * A size in bytes: a number, or text such as `1MB`, `512K`, `4MiB` (units
 * are binary).
 *
 * @param size The size.
 * @returns Bytes.
 * @throws {RangeError} For text that is not a size, or a size under 1 byte.
 *
 * @example Usage
 * ```ts
 * import { parseSize } from "./config.ts";
 * console.log(parseSize("1MB")); // 1048576
 * ```
 */
export function parseSize(size: number | string): number {
  if (typeof size === "number") return size;
  const match = size.trim().match(SIZE);
  const scale = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[
    (match?.[2] ?? "").toLowerCase() as "" | "k" | "m" | "g"
  ];
  const bytes = match ? Math.floor(Number(match[1]) * scale) : 0;
  if (!match || bytes < 1) {
    throw new RangeError(
      `Cannot use size '${size}': use e.g. '1MB', '512K' or a number of bytes`,
    );
  }
  return bytes;
}

/**
 * The JSON Schema of the server config file, for editors (`$schema`).
 *
 * @returns A JSON Schema (draft 2020-12) object.
 *
 * @example Usage
 * ```ts
 * import { serverConfigJsonSchema } from "./config.ts";
 * console.log("ceilings" in (serverConfigJsonSchema().properties as object)); // true
 * ```
 */
export function serverConfigJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ServerConfigSchema, { io: "input" }) as Record<
    string,
    unknown
  >;
}

/** Problems of the default policy, by path under `defaultPolicy`. */
function policyIssues(policy: unknown): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  try {
    parsePolicy(policy);
  } catch (error) {
    if (!(error instanceof PolicyError)) throw error;
    issues.push(...error.issues.map((i) => under("defaultPolicy", i)));
  }
  // Relative paths would resolve against wherever the server was started.
  const record = policy as {
    inputs?: unknown;
    upstream?: { caCerts?: unknown };
  } | null;
  const inputs = Array.isArray(record?.inputs) ? record.inputs : [];
  inputs.forEach((input: unknown, index: number) => {
    const source = typeof input === "string"
      ? input
      : (input as { source?: unknown } | null)?.source;
    if (typeof source === "string" && !source.startsWith("/")) {
      issues.push({
        path: `defaultPolicy.inputs.${index}`,
        message: "must be an absolute host path in a server config",
      });
    }
  });
  const cas = record?.upstream?.caCerts;
  (Array.isArray(cas) ? cas : []).forEach((file: unknown, index: number) => {
    if (typeof file === "string" && !file.startsWith("/")) {
      issues.push({
        path: `defaultPolicy.upstream.caCerts.${index}`,
        message:
          "must be an absolute path in a server config (or use 'upstream.caCerts', relative to the config)",
      });
    }
  });
  return issues;
}

/**
 * Reads a file holding secrets, refused when other users may read it: a
 * token readable by every local user is everyone's token.
 */
async function readSecretFile(
  path: string,
): Promise<{ text: string } | { error: string }> {
  try {
    const info = await Deno.stat(path);
    if (info.mode !== null && (info.mode & 0o077) !== 0) {
      return {
        error: `'${path}' may be read by other users (mode ${
          (info.mode & 0o777).toString(8).padStart(4, "0")
        }): run 'chmod 600 ${path}'`,
      };
    }
    return { text: await Deno.readTextFile(path) };
  } catch (error) {
    return { error: `cannot read '${path}': ${(error as Error).message}` };
  }
}

function definedRules(
  rules: z.output<typeof ClientRulesSchema>,
): NonNullable<AppOptions["clients"]> {
  return Object.fromEntries(
    Object.entries(rules).filter(([, v]) => v !== undefined),
  );
}

function under(prefix: string, issue: PolicyIssue): PolicyIssue {
  return {
    path: issue.path ? `${prefix}.${issue.path}` : prefix,
    message: issue.message,
  };
}

function directoryOf(path: string): string {
  const absolute = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  return absolute.slice(0, absolute.lastIndexOf("/")) || "/";
}
