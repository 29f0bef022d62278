/**
 * An agent's tool server: `POST /tools/run_code { code }` runs the code in
 * an airlock sandbox and answers with its output, exit and an audit summary.
 *
 * Each conversation (header `X-Conversation-Id`) gets its own sandbox with a
 * private `/scratch` kept between its runs; conversations never see each
 * other's files. The sandboxes may reach one API host, and the injector adds
 * that API's credential header taken from the server's environment: the
 * code can call the API but never sees the credential.
 *
 * The server has no authentication of its own: listen on loopback (as
 * main.ts does) or put it behind something that authenticates.
 *
 * @module
 */

import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import {
  BundleError,
  PolicyError,
  type PolicyInput,
  Sandbox,
  SandboxSetupError,
} from "../../mod.ts";
import {
  ConversationStore,
  StoreClosedError,
  TooManyConversationsError,
} from "./conversations.ts";
import { reportRun } from "./report.ts";

/** The one API host sandboxes may call, and the header injected toward it. */
export interface ApiGrant {
  /** Host pattern, e.g. `api.github.com` (airlock's host pattern syntax). */
  host: string;
  /** Header name, e.g. `Authorization`. */
  header: string;
  /**
   * Header value; `${env:NAME}` is read from the server's environment when a
   * conversation starts, e.g. `Bearer ${env:API_TOKEN}`.
   */
  value: string;
}

/** Options for {@linkcode createAgentServer}. */
export interface AgentServerOptions {
  /** The API sandboxes may call; without it, sandboxes have no network. */
  api?: ApiGrant;
  /** Environment lookup for `${env:NAME}`; default the process environment. */
  env?: (name: string) => string | undefined;
  /** Close a conversation's sandbox after this long without runs; default 15 min. */
  idleMs?: number;
  /** Most open conversations; default 32. */
  maxConversations?: number;
  /** Longest run, and the most a request may ask for; default 30 s. */
  timeoutMs?: number;
  /** Memory of each run (MiB); default 256. */
  memoryMb?: number;
  /** Output kept of stdout and of stderr each (bytes); default 64 KiB. */
  maxOutputBytes?: number;
  /** Largest request body (bytes); default 256 KiB. */
  maxBodyBytes?: number;
  /** How the injector reaches upstreams (tests map names to loopback). */
  upstream?: { connectTo?: string[]; caCerts?: string[] };
  /** Where sandbox workspaces go; default `$TMPDIR`. */
  tmpDir?: string;
  /** Where internal errors are logged; default console.error. */
  log?: (message: string) => void;
}

/** A running tool server. */
export interface AgentServer {
  /** The hono app: serve it with `Deno.serve(server.app.fetch)`. */
  app: Hono;
  /** The open conversations. */
  conversations: ConversationStore;
  /** Closes every conversation's sandbox. */
  close(): Promise<void>;
}

/** The `run_code` tool, described for a model (OpenAI function format). */
export const RUN_CODE_TOOL = {
  type: "function",
  function: {
    name: "run_code",
    description:
      "Run a Deno TypeScript/JavaScript program in a fresh sandbox and get its stdout, stderr and exit code. Files written under the working directory (/scratch) persist between calls of this conversation. No environment, no host files, and no network except the configured API (credentials are added outside the sandbox).",
    parameters: {
      type: "object",
      properties: {
        code: { type: "string", description: "The program source." },
        timeoutMs: {
          type: "integer",
          minimum: 1,
          description: "Wall-clock limit for this run (ms).",
        },
      },
      required: ["code"],
      additionalProperties: false,
    },
  },
} as const;

const RunCodeBody = z.strictObject({
  code: z.string().min(1, "must not be empty"),
  timeoutMs: z.number().int().min(1).optional(),
});

const CONVERSATION_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

class HttpError extends Error {
  constructor(
    readonly status: 400 | 404 | 409 | 413 | 415 | 422 | 429 | 500 | 503,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/**
 * Creates the tool server. The sandbox policy is checked here, once, by
 * opening and closing a sandbox: a missing `${env:NAME}` fails now rather
 * than on the first request.
 *
 * @param options API grant, limits and expiry.
 * @returns The server; serve `app.fetch`, and `close()` when done.
 * @throws {PolicyError} If the API grant is invalid or its variable is unset.
 *
 * @example Usage
 * ```ts ignore
 * import { createAgentServer } from "./server.ts";
 * const server = await createAgentServer({
 *   api: { host: "api.github.com", header: "Authorization", value: "Bearer ${env:GITHUB_TOKEN}" },
 * });
 * Deno.serve({ hostname: "127.0.0.1", port: 8788 }, server.app.fetch);
 * ```
 */
export async function createAgentServer(
  options: AgentServerOptions = {},
): Promise<AgentServer> {
  const log = options.log ?? ((message: string) => console.error(message));
  const maxOutput = options.maxOutputBytes ?? 64 * 1024;
  const maxTimeout = options.timeoutMs ?? 30_000;
  const policy = sandboxPolicy(options, maxOutput, maxTimeout);
  const create = () =>
    Sandbox.create({
      policy,
      ...(options.env ? { env: options.env } : {}),
      ...(options.tmpDir ? { tmpDir: options.tmpDir } : {}),
    });
  await (await create()).close();

  const conversations = new ConversationStore({
    create,
    idleMs: options.idleMs ?? 15 * 60_000,
    maxConversations: options.maxConversations ?? 32,
  });
  const app = new Hono();
  const maxBody = options.maxBodyBytes ?? 256 * 1024;

  app.onError((error, c) => {
    const http = toHttpError(error, log, `${c.req.method} ${c.req.path}`);
    return c.json({
      error: { code: http.code, message: http.message, ...http.details },
    }, http.status);
  });
  app.notFound((c) =>
    c.json({
      error: {
        code: "not_found",
        message:
          `No route for ${c.req.method} ${c.req.path}: use POST /tools/run_code`,
      },
    }, 404)
  );
  app.use(
    "*",
    bodyLimit({
      maxSize: maxBody,
      onError: () => {
        throw new HttpError(
          413,
          "body_too_large",
          `The request body is larger than ${maxBody} bytes: send a shorter program`,
        );
      },
    }),
  );

  app.get("/health", (c) => c.json({ ok: true }));
  app.get("/tools", (c) => c.json({ tools: [RUN_CODE_TOOL] }));

  app.post("/tools/run_code", async (c) => {
    const conversationId = conversationOf(c);
    const body = await readBody(c);
    const timeoutMs = Math.min(body.timeoutMs ?? maxTimeout, maxTimeout);
    const result = await conversations.use(
      conversationId,
      (sandbox) =>
        sandbox.run({
          code: body.code,
          timeoutMs,
          // A client that hangs up kills its run.
          signal: c.req.raw.signal,
        }).catch((error) => {
          // Ended (DELETE, expiry, shutdown) before the run could start.
          if (sandbox.closed && !(error instanceof BundleError)) {
            throw new HttpError(
              409,
              "conversation_closed",
              `Conversation '${conversationId}' was closed before this run started: send it again to start a new one`,
            );
          }
          throw error;
        }),
    );
    return c.json(reportRun(conversationId, result, maxOutput));
  });

  app.delete("/conversations/:id", async (c) => {
    const id = c.req.param("id");
    if (!(await conversations.close(id))) {
      throw new HttpError(
        404,
        "not_found",
        `No open conversation '${id}' (it may have expired)`,
      );
    }
    return c.body(null, 204);
  });

  return { app, conversations, close: () => conversations.closeAll() };
}

/** The policy of every conversation's sandbox. */
function sandboxPolicy(
  options: AgentServerOptions,
  outputBytes: number,
  timeoutMs: number,
): PolicyInput {
  const api = options.api;
  return {
    limits: { timeoutMs, memoryMb: options.memoryMb ?? 256, outputBytes },
    scratch: true,
    network: api
      ? {
        allow: {
          [api.host]: [{
            transform: [{ headers: { [api.header]: api.value } }],
          }],
        },
      }
      : "deny-all",
    upstream: {
      connectTo: options.upstream?.connectTo ?? [],
      caCerts: options.upstream?.caCerts ?? [],
    },
  };
}

function conversationOf(c: Context): string {
  const id = c.req.header("x-conversation-id");
  if (id === undefined || !CONVERSATION_ID.test(id)) {
    throw new HttpError(
      400,
      "invalid_conversation_id",
      id === undefined
        ? "Missing header 'X-Conversation-Id': name the conversation the code belongs to"
        : "Header 'X-Conversation-Id' must be 1-128 characters of letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
    );
  }
  return id;
}

async function readBody(c: Context): Promise<z.output<typeof RunCodeBody>> {
  const type = c.req.header("content-type") ?? "";
  // A JSON content type makes every cross-site browser request a
  // preflighted one, which this server never approves.
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new HttpError(
      415,
      "unsupported_media_type",
      "Send the body as JSON with 'Content-Type: application/json'",
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(await c.req.text());
  } catch (error) {
    throw new HttpError(
      400,
      "invalid_json",
      `The body is not valid JSON: ${(error as Error).message}`,
    );
  }
  const parsed = RunCodeBody.safeParse(value);
  if (!parsed.success) {
    throw new HttpError(
      400,
      "invalid_request",
      'The body must be { "code": string, "timeoutMs"?: integer }',
      {
        issues: parsed.error.issues.map((i) => ({
          path: i.path.map(String).join("."),
          message: i.message,
        })),
      },
    );
  }
  return parsed.data;
}

function toHttpError(
  error: unknown,
  log: (message: string) => void,
  where: string,
): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof BundleError) {
    // The model's program does not compile: tell it where, so it can fix it.
    return new HttpError(422, "bundle_error", error.message, {
      problems: error.problems,
    });
  }
  if (error instanceof PolicyError) {
    // The operator's configuration (e.g. the API token variable is unset).
    return new HttpError(500, "invalid_policy", error.message, {
      issues: error.issues,
    });
  }
  if (error instanceof TooManyConversationsError) {
    return new HttpError(429, "too_many_conversations", error.message);
  }
  if (error instanceof StoreClosedError) {
    return new HttpError(503, "shutting_down", error.message);
  }
  if (error instanceof SandboxSetupError) {
    return new HttpError(500, "sandbox_setup_error", error.message);
  }
  log(
    `agent_server: internal error in ${where}: ${
      error instanceof Error ? error.stack : String(error)
    }`,
  );
  return new HttpError(
    500,
    "internal",
    "Internal server error (details are in the server's log)",
  );
}
