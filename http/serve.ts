/**
 * `deno task serve [options]`: serves the HTTP API until a signal. SIGTERM
 * drains the node (no new sandboxes or runs, live runs finish up to the
 * drain deadline); SIGINT, or a second signal, stops at once. Either way
 * every sandbox is killed, its files deleted, and the exit code is 0.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { stopBundler } from "../harness/bundle/bundle.ts";
import { EXIT_CODES } from "../cli/exit_codes.ts";
import {
  type AppOptions,
  createApp,
  defaultRunSlots,
  type TokenInfo,
} from "./app.ts";
import { DEFAULT_CEILINGS, resolveCeilings } from "./ceilings.ts";
import { resolveNodeName } from "./node.ts";
import {
  loadServerConfig,
  MIN_TOKEN_LENGTH,
  parseSize,
  type ServerConfig,
  ServerConfigError,
} from "./config.ts";

const HELP = `airlock serve: the HTTP API for sandboxes

Usage:
  deno task serve [--config FILE] [options]

Options:
  --config FILE        read the server config (JSONC; schema/server.schema.json):
                       tokens, default policy, ceilings, what clients may set,
                       upstream mappings and CAs. Flags below win over it
  --check              validate the config and tokens, print a summary, exit
  --host HOST          address to listen on (default 127.0.0.1)
  --port PORT          port to listen on (default 8787; 0 picks a free one)
  --token TOKEN        accept this bearer token (repeatable; visible in the
                       process list: prefer --token-env or the config)
  --token-env NAME     read comma-separated tokens from environment variable NAME
  --max-sandboxes N    sandboxes each token may have at once (default ${DEFAULT_CEILINGS.sandboxes})
  --max-body SIZE      largest request body: 1MB, 512K, 4MiB (default 1MB)
  --node NAME          this node's name, in every sandbox id (default:
                       AIRLOCK_NODE_NAME, POD_NAME, else the host name)
  --drain-timeout MS   on SIGTERM, how long live runs may take (default 30000)
  -h, --help           show this help

Tokens also come from AIRLOCK_API_TOKENS (comma-separated). Each is at least
${MIN_TOKEN_LENGTH} characters (e.g. 'openssl rand -hex 32'). Without any token the server
listens only on loopback and answers only loopback clients.

Without a config, each token gets the default ceilings: limits up to
${DEFAULT_CEILINGS.limits.memoryMb} MiB of heap, ${
  DEFAULT_CEILINGS.limits.outputBytes / 1024 / 1024
} MiB of output per stream, ${DEFAULT_CEILINGS.limits.tmpMb} MiB of /tmp, ${DEFAULT_CEILINGS.limits.processes} processes,
${
  DEFAULT_CEILINGS.limits.timeoutMs / 1000
} s per run; ${DEFAULT_CEILINGS.runsPerToken} runs at once (${DEFAULT_CEILINGS.queuedRunsPerToken} more wait, then 429 too_many_runs);
no npm, host inputs, upstream mappings, CA files, subnets or \${env:...}.

Routes are described by GET /openapi.json.

SIGTERM drains: new sandboxes and runs get 503 'draining', GET /ready says
not ready, live runs finish (up to --drain-timeout), then everything closes.
SIGINT, or a second signal, closes at once.

Exit codes: 0 after SIGINT/SIGTERM (or a good --check); ${EXIT_CODES.usage} bad usage,
bad config or cannot listen.
`;

class UsageError extends Error {}

/** The parsed command line, over the config. */
interface ServeArgs {
  host: string;
  port: number;
  tokens: Map<string, TokenInfo>;
  maxBodyBytes: number;
  app: Omit<AppOptions, "tokens">;
  check: boolean;
  drainTimeoutMs: number;
}

async function parseCli(
  argv: string[],
  env: (name: string) => string | undefined,
): Promise<ServeArgs | "help"> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: "string" },
        check: { type: "boolean", default: false },
        host: { type: "string" },
        port: { type: "string" },
        token: { type: "string", multiple: true, default: [] },
        "token-env": { type: "string" },
        "max-sandboxes": { type: "string" },
        "max-body": { type: "string" },
        node: { type: "string" },
        "drain-timeout": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return "help";
  let config: ServerConfig = { tokens: new Map(), app: {} };
  if (values.config !== undefined) {
    // Relative to where the user stands (cli/mod.ts moved there from this
    // checkout under its own `deno task`; an INIT_CWD inherited from another
    // task is not where the user stands).
    const base = Deno.cwd();
    const path = values.config.startsWith("/")
      ? values.config
      : `${base}/${values.config}`;
    try {
      config = await loadServerConfig(path, { env });
    } catch (error) {
      if (error instanceof ServerConfigError) {
        throw new UsageError(error.message);
      }
      throw error;
    }
  } else if (values.check) {
    throw new UsageError("Cannot --check without --config FILE");
  }
  const host = values.host ?? config.host ?? "127.0.0.1";
  let node: string;
  try {
    node = resolveNodeName({ configured: values.node ?? config.nodeName, env });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const drainTimeoutMs = values["drain-timeout"] !== undefined
    ? integer("--drain-timeout", values["drain-timeout"], 0, 3_600_000)
    : config.drainTimeoutMs ?? 30_000;
  const port = values.port !== undefined
    ? integer("--port", values.port, 0, 65_535)
    : config.port ?? 8787;
  const app = { ...config.app, node };
  if (values["max-sandboxes"] !== undefined) {
    const maxSandboxes = integer(
      "--max-sandboxes",
      values["max-sandboxes"],
      1,
      10_000,
    );
    app.ceilings = { ...app.ceilings, sandboxes: maxSandboxes };
    app.maxSandboxes = maxSandboxes;
  }
  let maxBodyBytes = config.maxBodyBytes ?? 1024 * 1024;
  if (values["max-body"] !== undefined) {
    try {
      maxBodyBytes = parseSize(values["max-body"]);
    } catch {
      throw new UsageError(
        `Cannot use --max-body '${
          values["max-body"]
        }': use e.g. '1MB', '512K' or a number of bytes`,
      );
    }
  }
  const found: [string, string][] = values.token.map((t, i) => [
    t,
    `token-${i + 1}`,
  ]);
  const fromEnv = (name: string, label: string) => {
    const list = (env(name) ?? "").split(",").map((t) => t.trim())
      .filter(Boolean);
    list.forEach((t, i) => found.push([t, `${label}-${i + 1}`]));
    return list.length;
  };
  const tokenEnv = values["token-env"];
  if (tokenEnv !== undefined && fromEnv(tokenEnv, tokenEnv) === 0) {
    throw new UsageError(
      `Cannot read tokens from --token-env '${tokenEnv}': the variable is unset or empty`,
    );
  }
  fromEnv("AIRLOCK_API_TOKENS", "AIRLOCK_API_TOKENS");
  const tokens = new Map(config.tokens);
  for (const [token, name] of found) {
    if (token.length < MIN_TOKEN_LENGTH || /[\s,]/.test(token)) {
      throw new UsageError(
        `Cannot use token '${name}': it must have at least ${MIN_TOKEN_LENGTH} characters and no spaces or commas (e.g. 'openssl rand -hex 32')`,
      );
    }
    if (!tokens.has(token)) tokens.set(token, { name });
  }
  if (tokens.size === 0 && !isLoopback(host)) {
    throw new UsageError(
      `Refusing to listen on '${host}' without a token: anyone who can reach it could run code on this machine. Pass --token-env NAME (or --token, AIRLOCK_API_TOKENS, or 'tokens' in the config), or listen on 127.0.0.1`,
    );
  }
  return {
    host,
    port,
    tokens,
    maxBodyBytes,
    app,
    check: values.check,
    drainTimeoutMs,
  };
}

function integer(flag: string, text: string, min: number, max: number) {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) {
    throw new UsageError(
      `Cannot use ${flag} '${text}': give a whole number from ${min} to ${max}`,
    );
  }
  return n;
}

function isLoopback(host: string): boolean {
  const name = host.replace(/^\[|\]$/g, "").toLowerCase();
  return name === "localhost" || name === "::1" ||
    /^127\.\d+\.\d+\.\d+$/.test(name);
}

/** What --check prints: the config as the server will use it (no tokens). */
function summary(args: ServeArgs): string {
  const { ceilings } = resolveCeilings(args.app.ceilings);
  const names = [...args.tokens.values()].map((t) => t.name);
  const clients = Object.entries(args.app.clients ?? {})
    .filter(([, on]) => on).map(([name]) => name);
  const limits = Object.entries(ceilings.limits)
    .map(([name, most]) => `${name} ${most}`).join(", ");
  return [
    `listen: ${args.host}:${args.port}`,
    `node: ${args.app.node}${
      args.app.maxNodeSandboxes
        ? `, at most ${args.app.maxNodeSandboxes} sandboxes`
        : ""
    }, drain ${args.drainTimeoutMs} ms`,
    `tokens: ${names.length ? names.join(", ") : "none (loopback only)"}`,
    `ceilings: ${limits}`,
    `per token: ${ceilings.sandboxes} sandboxes, ${ceilings.runsPerToken} runs at once (${ceilings.runsPerSandbox} per sandbox), ${ceilings.queuedRunsPerToken} waiting`,
    `run slots: ${args.app.runSlots ?? defaultRunSlots()}`,
    `clients may use: ${
      clients.length ? clients.join(", ") : "nothing that reaches the server"
    }`,
    `default policy: ${
      args.app.sandboxDefaults?.policy ? "from the config" : "deny everything"
    }`,
  ].join("\n");
}

/**
 * Runs the server until SIGINT or SIGTERM.
 *
 * @param argv Command-line arguments.
 * @param env Environment lookup (tokens).
 * @returns The process exit code.
 */
export async function main(
  argv: string[],
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): Promise<number> {
  let args: ServeArgs | "help";
  try {
    args = await parseCli(argv, env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`airlock: ${error.message}\nRun with --help for usage.`);
    return EXIT_CODES.usage;
  }
  if (args === "help") {
    console.log(HELP);
    return 0;
  }
  if (args.check) {
    console.log(`airlock: the config is valid\n${summary(args)}`);
    return 0;
  }
  const { app, shutdown, drain, readiness, sandboxes } = createApp({
    ...args.app,
    tokens: args.tokens.size > 0 ? args.tokens : null,
    maxBodyBytes: args.maxBodyBytes,
  });
  const stop = Promise.withResolvers<Deno.Signal>();
  // A second signal while draining stops at once.
  const again = Promise.withResolvers<Deno.Signal>();
  let signalled = false;
  const listeners = (["SIGINT", "SIGTERM"] as const).map((signal) => {
    const listener = () => {
      if (signalled) return again.resolve(signal);
      signalled = true;
      stop.resolve(signal);
    };
    Deno.addSignalListener(signal, listener);
    return () => Deno.removeSignalListener(signal, listener);
  });
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: args.host,
      port: args.port,
      onListen: ({ hostname, port }) => {
        const host = hostname.includes(":") ? `[${hostname}]` : hostname;
        const auth = args.tokens.size > 0
          ? `${args.tokens.size} token${args.tokens.size === 1 ? "" : "s"}`
          : "no tokens: loopback clients only";
        console.log(
          `airlock API listening on http://${host}:${port}/ (${auth}), node '${args.app.node}'`,
        );
      },
    }, app.fetch);
  } catch (error) {
    listeners.forEach((remove) => remove());
    console.error(
      `airlock: Cannot listen on ${args.host}:${args.port}: ${
        (error as Error).message
      }`,
    );
    return EXIT_CODES.usage;
  }
  // The first readiness probe (a sandbox run) starts now, not at the
  // first GET /ready.
  readiness.warm();
  const signal = await stop.promise;
  const count = `${sandboxes.size} sandbox${sandboxes.size === 1 ? "" : "es"}`;
  if (signal === "SIGTERM") {
    console.log(
      `airlock API: SIGTERM: draining (${count}; live runs get up to ${args.drainTimeoutMs} ms)`,
    );
    const finished = await Promise.race([
      drain(args.drainTimeoutMs),
      again.promise.then(() => null),
    ]);
    console.log(
      finished === true
        ? "airlock API: drained: every run finished; closing"
        : "airlock API: drain cut short: closing, runs still live are killed",
    );
  } else {
    console.log(`airlock API: ${signal}: closing ${count}`);
  }
  listeners.forEach((remove) => remove());
  // Sandboxes first: their runs end, so streaming responses finish and the
  // server's own shutdown does not wait on them.
  await shutdown();
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    server.shutdown(),
    new Promise((resolve) => (timer = setTimeout(resolve, 5_000))),
  ]);
  clearTimeout(timer);
  return 0;
}

if (import.meta.main) {
  const code = await main(Deno.args);
  await stopBundler();
  Deno.exit(code);
}
