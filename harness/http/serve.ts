/**
 * `deno task serve [options]`: serves the HTTP API until SIGINT or SIGTERM,
 * then kills every sandbox, deletes its files and exits 0.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { stopBundler } from "../bundle.ts";
import { EXIT_CODES } from "../cli/exit_codes.ts";
import { createApp, type TokenInfo } from "./app.ts";

const HELP = `airlock serve: the HTTP API for sandboxes

Usage:
  deno task serve [options]

Options:
  --host HOST          address to listen on (default 127.0.0.1)
  --port PORT          port to listen on (default 8787; 0 picks a free one)
  --token TOKEN        accept this bearer token (repeatable; visible in the
                       process list: prefer --token-env)
  --token-env NAME     read comma-separated tokens from environment variable NAME
  --max-sandboxes N    sandboxes each token may have at once (default 16)
  --max-body SIZE      largest request body: 1MB, 512K, 4MiB (default 1MB)
  -h, --help           show this help

Tokens also come from AIRLOCK_API_TOKENS (comma-separated). Each is at least
16 characters (e.g. 'openssl rand -hex 32'). Without any token the server
listens only on loopback and answers only loopback clients.

Routes are described by GET /openapi.json.

Exit codes: 0 after SIGINT/SIGTERM; ${EXIT_CODES.usage} bad usage or cannot listen.
`;

/** Tokens shorter than this are refused: they could be guessed. */
const MIN_TOKEN_LENGTH = 16;

class UsageError extends Error {}

/** The parsed command line. */
interface ServeArgs {
  host: string;
  port: number;
  tokens: Map<string, TokenInfo>;
  maxSandboxes: number;
  maxBodyBytes: number;
}

function parseCli(
  argv: string[],
  env: (name: string) => string | undefined,
): ServeArgs | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        host: { type: "string", default: "127.0.0.1" },
        port: { type: "string", default: "8787" },
        token: { type: "string", multiple: true, default: [] },
        "token-env": { type: "string" },
        "max-sandboxes": { type: "string", default: "16" },
        "max-body": { type: "string", default: "1MB" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return "help";
  const port = integer("--port", values.port, 0, 65_535);
  const maxSandboxes = integer(
    "--max-sandboxes",
    values["max-sandboxes"],
    1,
    10_000,
  );
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
  const tokens = new Map<string, TokenInfo>();
  for (const [token, name] of found) {
    if (token.length < MIN_TOKEN_LENGTH || /[\s,]/.test(token)) {
      throw new UsageError(
        `Cannot use token '${name}': it must have at least ${MIN_TOKEN_LENGTH} characters and no spaces or commas (e.g. 'openssl rand -hex 32')`,
      );
    }
    if (!tokens.has(token)) tokens.set(token, { name, maxSandboxes });
  }
  if (tokens.size === 0 && !isLoopback(values.host)) {
    throw new UsageError(
      `Refusing to listen on '${values.host}' without a token: anyone who can reach it could run code on this machine. Pass --token-env NAME (or --token, or AIRLOCK_API_TOKENS), or listen on 127.0.0.1`,
    );
  }
  return {
    host: values.host,
    port,
    tokens,
    maxSandboxes,
    maxBodyBytes: parseBytes(values["max-body"]),
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

/** `1MB`, `512K`, `4MiB`, or a bare number of bytes (units are binary). */
function parseBytes(text: string): number {
  const match = text.trim().match(/^(\d+(?:\.\d+)?)\s*([kmg]?)(i?b)?$/i);
  const scale = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[
    (match?.[2] ?? "").toLowerCase() as "" | "k" | "m" | "g"
  ];
  const bytes = match ? Math.floor(Number(match[1]) * scale) : 0;
  if (!match || bytes < 1) {
    throw new UsageError(
      `Cannot use --max-body '${text}': use e.g. '1MB', '512K' or a number of bytes`,
    );
  }
  return bytes;
}

function isLoopback(host: string): boolean {
  const name = host.replace(/^\[|\]$/g, "").toLowerCase();
  return name === "localhost" || name === "::1" ||
    /^127\.\d+\.\d+\.\d+$/.test(name);
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
    args = parseCli(argv, env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`airlock: ${error.message}\nRun with --help for usage.`);
    return EXIT_CODES.usage;
  }
  if (args === "help") {
    console.log(HELP);
    return 0;
  }
  const { app, shutdown, sandboxes } = createApp({
    tokens: args.tokens.size > 0 ? args.tokens : null,
    maxSandboxes: args.maxSandboxes,
    maxBodyBytes: args.maxBodyBytes,
  });
  const stop = Promise.withResolvers<Deno.Signal>();
  const listeners = (["SIGINT", "SIGTERM"] as const).map((signal) => {
    const listener = () => stop.resolve(signal);
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
          `airlock API listening on http://${host}:${port}/ (${auth})`,
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
  const signal = await stop.promise;
  listeners.forEach((remove) => remove());
  console.log(
    `airlock API: ${signal}: closing ${sandboxes.size} sandbox${
      sandboxes.size === 1 ? "" : "es"
    }`,
  );
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
