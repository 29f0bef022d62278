/**
 * The HTTP API: a hono app over the {@linkcode Sandbox} API. Each sandbox
 * belongs to the bearer token that created it; runs answer with a RunResult
 * or stream server-sent events; the scratch directory is reachable as files.
 *
 * The API's clients are less trusted than the operator who starts the
 * server: they write policies, but the server's files, environment, secrets,
 * private networks and capacity stay out of their reach unless the
 * operator's rules say otherwise (see ceilings.ts). Runs take slots of one
 * scheduler shared by every token (see _scheduler.ts); a run's answer is
 * written from a bounded spool (see _spool.ts).
 *
 * Longer than the ~400-line guide: one module holds every route so that the
 * route table in schemas.ts can be checked against one place.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { z } from "zod";
import config from "../deno.json" with { type: "json" };
import { MissingHostToolError } from "../runtime/host_tools.ts";
import { REDACTED } from "../injector/secret_refs.ts";
import { InputError } from "../harness/_run/inputs.ts";
import { BundleError, type BundleProblem } from "../harness/bundle/bundle.ts";
import {
  parsePolicy,
  PolicyError,
  type PolicyIssue,
} from "../harness/policy.ts";
import type { AuditEvent } from "../harness/run_result.ts";
import {
  type RunOptions,
  Sandbox,
  type SandboxOptions,
  SandboxSetupError,
} from "../harness/sandbox.ts";
import { SandboxFsError } from "../harness/sandbox_fs.ts";
import {
  ceilingIssues,
  type Ceilings,
  type CeilingsInput,
  clientPolicyIssues,
  type ClientRules,
  networkIssues,
  NO_CLIENT_RULES,
  resolveCeilings,
  usesNpm,
  withDefaultLimits,
} from "./ceilings.ts";
import { type Release, RunScheduler, TooManyRunsError } from "./_scheduler.ts";
import { resultBody, spool, type Spooled } from "./_spool.ts";
import {
  CreateSandboxRequestSchema,
  type ErrorCode,
  RunRequestSchema,
  UpdateNetworkRequestSchema,
} from "./schemas.ts";
import { openApiDocument } from "./openapi.ts";

/** What a bearer token may do. */
export interface TokenInfo {
  /** Who holds it (for listings and logs; never compared). */
  name: string;
  /** Most sandboxes it may have at once (over `ceilings.sandboxes`). */
  maxSandboxes?: number;
  /** Its own ceilings, over the server's (`AppOptions.ceilings`). */
  ceilings?: CeilingsInput;
}

/** Options for {@linkcode createApp}. */
export interface AppOptions {
  /**
   * Bearer tokens by value, or null for no authentication: then only
   * loopback clients are answered (see `checkLoopback`).
   */
  tokens: ReadonlyMap<string, TokenInfo> | null;
  /** Largest request body in bytes; default 1 MiB. */
  maxBodyBytes?: number;
  /**
   * Sandbox options set by the operator (`tmpDir`, `injector`, `connectTo`,
   * `env`, ...). `policy` applies when a request gives none. There is no
   * `secrets`: a client-written network policy (creation or PUT /network)
   * could send any harness secret to a host of its choosing.
   */
  sandboxDefaults?: Partial<Omit<SandboxOptions, "secrets">>;
  /** Sandbox limit without tokens; default `ceilings.sandboxes` (16). */
  maxSandboxes?: number;
  /**
   * Ceilings of every token (each token's own `ceilings` go over these);
   * unset fields take `DEFAULT_CEILINGS` (ceilings.ts).
   */
  ceilings?: CeilingsInput;
  /** Policy parts that reach the server which clients may use; default none. */
  clients?: Partial<ClientRules>;
  /**
   * Shorthand for `clients` inputs, connectTo, caCerts, subnets and
   * serverEnv all true (npm stays as `clients.npm` says). Default false.
   */
  allowHostAccess?: boolean;
  /**
   * CA certificate files (absolute paths, PEM) trusted for upstream TLS by
   * every sandbox, besides the system roots; not shown to clients.
   */
  upstreamCaCerts?: readonly string[];
  /** Runs live at once across every token; default {@linkcode defaultRunSlots}. */
  runSlots?: number;
  /** Where internal errors are logged; default console.error. */
  log?: (message: string) => void;
}

/** A sandbox the app manages. */
export interface ManagedSandbox {
  /** The sandbox. */
  readonly sandbox: Sandbox;
  /** Name of the token that created it. */
  readonly owner: string;
  /** The label given at creation. */
  readonly name: string | null;
  /** ISO time of creation. */
  readonly createdAt: string;
}

/** What {@linkcode createApp} returns. */
export interface AirlockApp {
  /** The hono app; serve it with `Deno.serve(app.fetch)`. */
  app: Hono<AppEnv>;
  /** Refuses new sandboxes, then closes every sandbox. Idempotent. */
  shutdown(): Promise<void>;
  /** Live sandboxes by id. */
  sandboxes: ReadonlyMap<string, ManagedSandbox>;
  /**
   * Runs of a token holding a slot (live, or their answer being sent) and
   * waiting for one.
   */
  runUsage(tokenName: string): { running: number; queued: number };
}

/** Who is calling: one per token (or the anonymous loopback caller). */
export interface Caller {
  /** The token's name. */
  name: string;
  /** Its sandbox limit (`ceilings.sandboxes`). */
  maxSandboxes: number;
  /** Its ceilings. */
  ceilings: Ceilings;
  /** Sandboxes alive or being created. */
  count: number;
}

interface Entry extends ManagedSandbox {
  caller: Caller;
  /** Audit listeners of streaming runs, by run id. */
  listeners: Map<string, (event: AuditEvent) => void>;
}

/** The app's hono environment. */
export type AppEnv = {
  Bindings: Partial<Deno.ServeHandlerInfo>;
  Variables: { caller: Caller };
};

class ApiError extends Error {
  constructor(
    readonly status: 400 | 401 | 404 | 409 | 413 | 415 | 422 | 429 | 500 | 503,
    readonly code: ErrorCode,
    message: string,
    readonly extra: { issues?: PolicyIssue[]; problems?: BundleProblem[] } = {},
  ) {
    super(message);
  }
}

const MIB = 1024 * 1024;
const encoder = new TextEncoder();
/** Bytes of server-sent events queued for a slow client before output waits. */
const STREAM_HIGH_WATER = 256 * 1024;

/**
 * Run slots when `runSlots` is not given: four per core (at least four).
 * Each token's own cap (`runsPerToken`) is what keeps one tenant from
 * taking them all.
 *
 * @returns The number of slots.
 *
 * @example Usage
 * ```ts
 * import { defaultRunSlots } from "./app.ts";
 * console.log(defaultRunSlots() >= 4); // true
 * ```
 */
export function defaultRunSlots(): number {
  return Math.max(4, 4 * (navigator.hardwareConcurrency || 1));
}

/**
 * Creates the HTTP API.
 *
 * @param options Tokens, limits and sandbox defaults.
 * @returns The app, its shutdown and its sandboxes.
 *
 * @example Serve on loopback without tokens
 * ```ts ignore
 * import { createApp } from "./app.ts";
 * const { app, shutdown } = createApp({ tokens: null });
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 8787 }, app.fetch);
 * ```
 */
export function createApp(options: AppOptions): AirlockApp {
  const log = options.log ?? ((message: string) => console.error(message));
  const defaults = options.sandboxDefaults ?? {};
  const host = options.allowHostAccess ?? false;
  const rules: ClientRules = {
    ...NO_CLIENT_RULES,
    ...(host
      ? {
        inputs: true,
        connectTo: true,
        caCerts: true,
        subnets: true,
        serverEnv: true,
      }
      : {}),
    ...options.clients,
  };
  // Without serverEnv, `${env:NAME}` resolves to nothing (a PolicyError):
  // a client could otherwise inject the server's variables (other clients'
  // tokens among them) into requests to its own host.
  const env = defaults.env ??
    (rules.serverEnv ? undefined : (_name: string) => undefined);
  const operatorCas = [...(options.upstreamCaCerts ?? [])];
  const serverCeilings = ceilingsOrThrow(options.ceilings, undefined, "");
  const callerOf = (name: string, info: TokenInfo = { name }): Caller => {
    const ceilings = ceilingsOrThrow(info.ceilings, serverCeilings, name);
    if (info.maxSandboxes !== undefined) {
      ceilings.sandboxes = info.maxSandboxes;
    }
    return { name, maxSandboxes: ceilings.sandboxes, ceilings, count: 0 };
  };
  const callers = options.tokens === null ? null : [...options.tokens].map((
    [token, info],
  ) => ({ digest: sha256(token), caller: callerOf(info.name, info) }));
  const anonymous = callerOf(
    "anonymous",
    options.maxSandboxes !== undefined
      ? { name: "anonymous", maxSandboxes: options.maxSandboxes }
      : undefined,
  );
  const scheduler = new RunScheduler(options.runSlots ?? defaultRunSlots());
  const registry = new Map<string, Entry>();
  const pending = new Set<Promise<unknown>>();
  let closing: Promise<void> | null = null;
  let openapi: Record<string, unknown> | undefined;
  // Where run answers past their in-memory share wait for their client:
  // made on first use, private to the server (0700), removed at shutdown.
  let spoolDir: Promise<string> | null = null;
  const spoolDirectory = () =>
    spoolDir ??= Deno.makeTempDir({
      ...(defaults.tmpDir ? { dir: defaults.tmpDir } : {}),
      prefix: "airlock-spool-",
    });

  const app = new Hono<AppEnv>();

  app.onError((error, c) => {
    const api = toApiError(error, log, `${c.req.method} ${c.req.path}`);
    if (api.status === 401) {
      c.header("www-authenticate", 'Bearer realm="airlock"');
    }
    return c.json(errorBody(api), api.status);
  });
  app.notFound((c) =>
    c.json(
      errorBody(
        new ApiError(
          404,
          "not_found",
          `No route for ${c.req.method} ${c.req.path}: see GET /openapi.json`,
        ),
      ),
      404,
    )
  );

  const authenticate: MiddlewareHandler<AppEnv> = async (c, next) => {
    if (callers === null) {
      checkLoopback(c);
      c.set("caller", anonymous);
      return await next();
    }
    const header = c.req.header("authorization");
    const token = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1];
    const caller = token === undefined ? null : findCaller(callers, token);
    if (!caller) {
      throw new ApiError(
        401,
        "unauthorized",
        header === undefined
          ? "Missing 'Authorization: Bearer <token>'"
          : "The bearer token is not valid",
      );
    }
    c.set("caller", caller);
    await next();
  };
  const open: MiddlewareHandler<AppEnv> = async (c, next) => {
    if (callers === null) checkLoopback(c);
    await next();
  };

  app.use("/health", open);
  app.use("/version", open);
  app.use("/openapi.json", open);
  // Authentication first: an unknown client never makes us read a body.
  app.use("/sandboxes", authenticate);
  app.use("/sandboxes/*", authenticate);
  const maxBody = options.maxBodyBytes ?? MIB;
  app.use(
    "*",
    bodyLimit({
      maxSize: maxBody,
      onError: () => {
        throw new ApiError(
          413,
          "body_too_large",
          `The request body is larger than ${maxBody} bytes: send less (the server's limit is --max-body)`,
        );
      },
    }),
  );

  app.get("/health", (c) => c.json({ ok: true as const }));
  app.get(
    "/version",
    (c) => c.json({ airlock: config.version, deno: Deno.version.deno }),
  );
  app.get("/openapi.json", (c) => {
    openapi ??= openApiDocument(config.version);
    return c.json(openapi);
  });

  app.post("/sandboxes", async (c) => {
    const caller = c.get("caller");
    if (closing) throw shuttingDown();
    const body = await readBody(c, CreateSandboxRequestSchema, "policy");
    const issues = clientPolicyIssues(body.policy, rules);
    if (issues.length > 0) throw invalidPolicy(new PolicyError(issues), "");
    if (!rules.npm && usesNpm(body.policy)) {
      // The harness installs and bundles the packages a policy names: the
      // operator decides whether clients may make it do that at all.
      throw new ApiError(
        400,
        "npm_not_allowed",
        "Cannot use npm packages (policy.npm.allow): this server does not allow clients to use npm; ask its operator (server config 'clients.npm')",
        {
          issues: [{ path: "policy.npm.allow", message: "npm is not allowed" }],
        },
      );
    }
    // Each limit is held to the caller's ceiling (a 1 GiB output held in
    // memory, a 4 GiB /tmp in RAM or a 64 GiB heap were each a client's
    // choice). Checked as sent first: a 1 GiB outputBytes is over this
    // server's ceiling before it is over the policy's own maximum. Limits
    // the client left out take the server's defaults.
    const asked = ceilingIssues(
      (body.policy as { limits?: unknown } | undefined)?.limits,
      caller.ceilings,
      "policy.limits",
    );
    if (asked.length > 0) throw overCeiling(asked);
    const policy = withOperatorCas(
      withDefaultLimits(
        body.policy ?? defaults.policy,
        caller.ceilings.defaults,
      ),
      operatorCas,
    );
    let parsed;
    try {
      // Checked before the sandbox count, so a bad policy is always a 400.
      parsed = parsePolicy(policy);
    } catch (error) {
      throw error instanceof PolicyError ? invalidPolicy(error) : error;
    }
    // The server's default policy is held to the caller's ceilings too.
    const over = ceilingIssues(parsed.limits, caller.ceilings, "policy.limits");
    if (over.length > 0) throw overCeiling(over);
    if (caller.count >= caller.maxSandboxes) {
      throw new ApiError(
        429,
        "too_many_sandboxes",
        `Cannot create a sandbox: '${caller.name}' already has ${caller.count} of ${caller.maxSandboxes}; delete one first`,
      );
    }
    caller.count++;
    const listeners = new Map<string, (event: AuditEvent) => void>();
    const { policy: _defaultPolicy, onAudit, ...rest } = defaults;
    const creation = (async (): Promise<Entry> => {
      const sandbox = await Sandbox.create({
        ...rest,
        policy: policy as SandboxOptions["policy"] & object,
        ...(body.secrets ? { secrets: body.secrets } : {}),
        ...(body.warm !== undefined ? { warm: body.warm } : {}),
        ...(env ? { env } : {}),
        onAudit: (event) => {
          const runId = (event as { runId?: unknown }).runId;
          if (typeof runId === "string") listeners.get(runId)?.(event);
          onAudit?.(event);
        },
      });
      if (closing) {
        await sandbox.close();
        throw shuttingDown();
      }
      const entry: Entry = {
        sandbox,
        owner: caller.name,
        name: body.name ?? null,
        createdAt: new Date().toISOString(),
        caller,
        listeners,
      };
      registry.set(sandbox.id, entry);
      return entry;
    })();
    pending.add(creation);
    let entry: Entry;
    try {
      entry = await creation;
    } catch (error) {
      caller.count--;
      throw error instanceof PolicyError ? invalidPolicy(error) : error;
    } finally {
      pending.delete(creation);
    }
    return c.json(
      { ...info(entry), policy: policyView(entry.sandbox, operatorCas) },
      201,
    );
  });

  app.get("/sandboxes", (c) => {
    const caller = c.get("caller");
    const sandboxes = [...registry.values()]
      .filter((e) => e.caller === caller)
      .map(info);
    return c.json({ sandboxes });
  });

  app.delete("/sandboxes/:id", async (c) => {
    const entry = lookup(c);
    registry.delete(entry.sandbox.id);
    scheduler.cancelSandbox(entry.sandbox.id, deleted(entry));
    try {
      await entry.sandbox.close();
    } finally {
      entry.caller.count--;
    }
    return c.body(null, 204);
  });

  app.post("/sandboxes/:id/runs", async (c) => {
    const entry = lookup(c);
    const body = await readBody(c, RunRequestSchema, null);
    // The client hung up: nobody will read the result, so stop the run
    // (or give up its place in the queue).
    const signal = c.req.raw.signal;
    // The slot is held until the answer is out: its spool files count
    // against the caller's runs, not against nobody.
    const release = await runSlot(entry, body, signal);
    let outputs: Spooled[] = [];
    try {
      const dir = await spoolDirectory();
      const child = await whileOpen(
        entry,
        () => entry.sandbox.spawn({ ...runOptions(body), signal }),
      );
      const collected = await Promise.allSettled([
        spool(child.stdout, dir),
        spool(child.stderr, dir),
      ]);
      outputs = collected.flatMap((o) =>
        o.status === "fulfilled" ? [o.value] : []
      );
      const status = await whileOpen(entry, () => child.status);
      for (const o of collected) if (o.status === "rejected") throw o.reason;
      const [stdout, stderr] = outputs as [Spooled, Spooled];
      outputs = [];
      const answer = resultBody(
        status as unknown as Record<string, unknown>,
        stdout,
        stderr,
        release,
      );
      // A client gone before the body was read may never pull it to its
      // end: once the server is done with the response, whatever happened,
      // the spool files and the slot go (both are idempotent).
      c.env?.completed?.catch(() => {}).finally(() => {
        void stdout.dispose();
        void stderr.dispose();
        release();
      });
      return new Response(answer, {
        headers: { "content-type": "application/json" },
      });
    } catch (error) {
      await Promise.all(outputs.map((o) => o.dispose()));
      release();
      throw error;
    }
  });

  app.post("/sandboxes/:id/runs/stream", async (c) => {
    const entry = lookup(c);
    const body = await readBody(c, RunRequestSchema, null);
    const release = await runSlot(entry, body, c.req.raw.signal);
    let child;
    try {
      child = await whileOpen(
        entry,
        () => entry.sandbox.spawn(runOptions(body)),
      );
    } catch (error) {
      release();
      throw error;
    }
    // The stream's own queue is bounded (a slow reader makes the program
    // wait on its output), so the slot goes when the run has ended.
    child.status.catch(() => {}).finally(release);
    return new Response(eventStream(entry, child, log), {
      headers: {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
      },
    });
  });

  app.get("/sandboxes/:id/network", (c) => {
    return c.json({ network: lookup(c).sandbox.networkPolicy });
  });

  app.put("/sandboxes/:id/network", async (c) => {
    const entry = lookup(c);
    const body = await readBody(c, UpdateNetworkRequestSchema, "network");
    const issues = networkIssues(body.network as unknown, "network", rules);
    if (issues.length > 0) throw invalidPolicy(new PolicyError(issues), "");
    await whileOpen(entry, async () => {
      try {
        await entry.sandbox.updateNetworkPolicy(body.network);
      } catch (error) {
        // Its issue paths already start at "network".
        if (error instanceof PolicyError) throw invalidPolicy(error, "");
        throw error;
      }
    });
    return c.json({ network: entry.sandbox.networkPolicy });
  });

  app.get("/sandboxes/:id/audit", (c) => {
    return c.json({ events: lookup(c).sandbox.auditTrail });
  });

  for (const route of ["/sandboxes/:id/files", "/sandboxes/:id/files/*"]) {
    app.get(route, async (c) => {
      const { fs, path } = files(c);
      if (c.req.query("list") === "1") {
        const entries = await fsCall("list", path, () => fs.readDir(path));
        return c.json({ path: `/scratch/${path}`, entries });
      }
      const bytes = await fsCall("read", path, () => fs.readFile(path));
      return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
        "content-type": "application/octet-stream",
      });
    });
    app.put(route, async (c) => {
      const { fs, path } = files(c);
      if (path === "") {
        throw new ApiError(400, "fs_refused", "Cannot write to the directory");
      }
      const data = new Uint8Array(await c.req.arrayBuffer());
      await fsCall("write", path, async () => {
        const parent = path.split("/").slice(0, -1).join("/");
        if (parent !== "") await fs.mkdir(parent, { recursive: true });
        await fs.writeFile(path, data);
      });
      return c.body(null, 204);
    });
    app.delete(route, async (c) => {
      const { fs, path } = files(c);
      const recursive = c.req.query("recursive") === "1";
      await fsCall("remove", path, () => fs.remove(path, { recursive }));
      return c.body(null, 204);
    });
  }

  /** The caller's sandbox named in the path (another caller's is a 404). */
  function lookup(c: Context<AppEnv>): Entry {
    const id = c.req.param("id") ?? "";
    const entry = registry.get(id);
    // The same answer for "absent" and "someone else's": no existence oracle.
    if (!entry || entry.caller !== c.get("caller")) {
      throw new ApiError(404, "not_found", `Cannot find sandbox '${id}'`);
    }
    return entry;
  }

  function files(c: Context<AppEnv>) {
    const entry = lookup(c);
    if (entry.sandbox.scratchPath === null) {
      throw new ApiError(
        409,
        "no_scratch",
        `Sandbox '${entry.sandbox.id}' has no scratch directory: create it with policy { "scratch": true }`,
      );
    }
    if (entry.sandbox.running) {
      throw new ApiError(
        409,
        "sandbox_busy",
        `Cannot use the files of sandbox '${entry.sandbox.id}' while a run is live: wait for it to end`,
      );
    }
    // ["", "sandboxes", id, "files", ...path]
    const segments = new URL(c.req.url).pathname.split("/").slice(4);
    let path: string;
    try {
      path = segments.map(decodeURIComponent).filter(Boolean).join("/");
    } catch {
      throw new ApiError(400, "invalid_request", "The file path is not valid");
    }
    return { fs: entry.sandbox.fs, path };
  }

  /**
   * Waits for a run slot (see _scheduler.ts): the caller's cap, the
   * sandbox's cap and the server's slots, its queue served in turn with
   * every other caller's.
   */
  async function runSlot(
    entry: Entry,
    body: z.output<typeof RunRequestSchema>,
    signal: AbortSignal,
  ): Promise<Release> {
    const { ceilings, name } = entry.caller;
    if (body.timeoutMs !== undefined) {
      const over = ceilingIssues({ timeoutMs: body.timeoutMs }, ceilings, "");
      if (over.length > 0) throw overCeiling(over);
    }
    const gone = () =>
      new ApiError(
        400,
        "invalid_request",
        "The client closed the connection before the run started",
      );
    let release: Release;
    try {
      release = await scheduler.acquire(
        name,
        ceilings,
        entry.sandbox.id,
        signal,
      );
    } catch (error) {
      if (error instanceof TooManyRunsError) {
        throw new ApiError(429, "too_many_runs", error.message);
      }
      // Gave up its place in the queue: not a server error.
      if (signal.aborted) throw gone();
      throw error;
    }
    if (signal.aborted || entry.sandbox.closed) {
      release();
      throw signal.aborted ? gone() : deleted(entry);
    }
    return release;
  }

  function shutdown(): Promise<void> {
    closing ??= (async () => {
      await Promise.allSettled([...pending]);
      const entries = [...registry.values()];
      registry.clear();
      for (const entry of entries) {
        scheduler.cancelSandbox(entry.sandbox.id, shuttingDown());
      }
      await Promise.allSettled(entries.map((e) => e.sandbox.close()));
      for (const entry of entries) entry.caller.count--;
      if (spoolDir) {
        await spoolDir.then((dir) => Deno.remove(dir, { recursive: true }))
          .catch(() => {});
      }
    })();
    return closing;
  }

  return {
    app,
    shutdown,
    sandboxes: registry,
    runUsage: (name) => scheduler.usage(name),
  };
}

/**
 * Reads and validates a JSON body. Problems inside `deferred` (the policy)
 * are left to the Sandbox API, whose PolicyError lists them by path with
 * clearer messages than the raw schema issues.
 */
async function readBody<S extends z.ZodType>(
  c: Context<AppEnv>,
  schema: S,
  deferred: string | null,
): Promise<z.output<S>> {
  const text = await c.req.text();
  let value: unknown = {};
  if (text.trim() !== "") {
    // Requiring a JSON type makes every cross-site browser request a
    // preflighted one, which this server never approves (CSRF).
    const type = c.req.header("content-type") ?? "";
    if (!/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(type)) {
      throw new ApiError(
        415,
        "unsupported_media_type",
        "Send the body as JSON with 'Content-Type: application/json'",
      );
    }
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new ApiError(
        400,
        "invalid_json",
        `The body is not valid JSON: ${(error as Error).message}`,
      );
    }
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) {
    if (!deferred || !isRecord(value) || !(deferred in value)) {
      return parsed.data;
    }
    // The deferred part as sent, not with the schema's defaults filled in:
    // limits the client left out take the server's defaults, not the
    // policy's.
    return {
      ...(parsed.data as Record<string, unknown>),
      [deferred]: value[deferred],
    } as z.output<S>;
  }
  const issues = parsed.error.issues;
  if (deferred && issues.every((i) => i.path[0] === deferred)) {
    // Every other field is valid as sent (they have no defaults).
    return value as z.output<S>;
  }
  throw new ApiError(400, "invalid_request", "The request body is invalid", {
    issues: issues.map((i) => ({
      path: i.path.map(String).join("."),
      message: i.message,
    })),
  });
}

/**
 * Resolved ceilings, or a TypeError listing what is wrong with them (the
 * config loader reports the same problems by path before this point).
 */
function ceilingsOrThrow(
  input: CeilingsInput | undefined,
  base: Ceilings | undefined,
  owner: string,
): Ceilings {
  const { ceilings, issues } = resolveCeilings(input, base);
  if (issues.length > 0) {
    throw new TypeError(
      `Cannot use the ceilings${owner ? ` of '${owner}'` : ""}: ${
        issues.map((i) => `${i.path}: ${i.message}`).join("; ")
      }`,
    );
  }
  return ceilings;
}

/** The operator's upstream CAs added to a policy (a record; else as is). */
function withOperatorCas(policy: unknown, cas: readonly string[]): unknown {
  if (cas.length === 0 || !isRecord(policy)) return policy;
  const upstream = policy.upstream ?? {};
  if (!isRecord(upstream)) return policy;
  const own = Array.isArray(upstream.caCerts) ? upstream.caCerts : [];
  return { ...policy, upstream: { ...upstream, caCerts: [...cas, ...own] } };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Without tokens, only this machine may call: the peer must be loopback, the
 * Host header a loopback name (a DNS-rebinding page names its own host), and
 * a browser's Origin, if any, loopback too.
 */
function checkLoopback(c: Context<AppEnv>): void {
  const remote = c.env?.remoteAddr;
  if (remote?.transport === "unix") return;
  const refuse = (why: string) =>
    new ApiError(
      401,
      "unauthorized",
      `This server has no tokens, so it only answers loopback clients: ${why}`,
    );
  if (remote?.transport !== "tcp" || !isLoopbackHost(remote.hostname)) {
    throw refuse("the client is not on loopback");
  }
  const host = new URL(c.req.url).hostname;
  if (!isLoopbackHost(host)) throw refuse(`Host '${host}' is not loopback`);
  const origin = c.req.header("origin");
  if (origin !== undefined) {
    let name = "";
    try {
      name = new URL(origin).hostname;
    } catch { /* refused below */ }
    if (!isLoopbackHost(name)) throw refuse(`Origin '${origin}' is refused`);
  }
}

function isLoopbackHost(host: string): boolean {
  const name = host.replace(/^\[|\]$/g, "").toLowerCase();
  return name === "localhost" || name === "::1" ||
    /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(name);
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/**
 * Compares digests in constant time and visits every token, so timing says
 * neither how much of a guess was right nor which token matched.
 */
function findCaller(
  callers: { digest: Buffer; caller: Caller }[],
  token: string,
): Caller | null {
  const digest = sha256(token);
  let found: Caller | null = null;
  for (const entry of callers) {
    if (timingSafeEqual(entry.digest, digest)) found ??= entry.caller;
  }
  return found;
}

function info(entry: Entry) {
  return {
    id: entry.sandbox.id,
    name: entry.name,
    createdAt: entry.createdAt,
    running: entry.sandbox.running,
  };
}

/**
 * The policy as read back: injected and placeholder values redacted, the
 * operator's CA files left out (paths on the server).
 */
function policyView(sandbox: Sandbox, operatorCas: readonly string[]) {
  const policy = sandbox.policy;
  const hidden = new Set(operatorCas);
  return {
    ...policy,
    upstream: {
      ...policy.upstream,
      caCerts: policy.upstream.caCerts.filter((path) => !hidden.has(path)),
    },
    network: sandbox.networkPolicy,
    secrets: Object.fromEntries(
      Object.entries(policy.secrets).map((
        [name, secret],
      ) => [name, { ...secret, value: REDACTED }]),
    ),
  };
}

function runOptions(body: z.output<typeof RunRequestSchema>): RunOptions {
  const source = body.code !== undefined
    ? { code: body.code }
    : { files: body.files ?? {}, entry: body.entry ?? "" };
  return {
    ...source,
    ...(body.args ? { args: body.args } : {}),
    ...(body.stdin !== undefined ? { stdin: body.stdin } : {}),
    ...(body.timeoutMs !== undefined ? { timeoutMs: body.timeoutMs } : {}),
  };
}

/** Runs `fn`; a sandbox deleted meanwhile is a 404, not an internal error. */
async function whileOpen<T>(entry: Entry, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (entry.sandbox.closed && !(error instanceof BundleError)) {
      throw deleted(entry);
    }
    throw error;
  }
}

/**
 * The server-sent events of one run. Audit events are routed here by run id
 * as the sandbox records them; any the stream missed are sent before the
 * status. Cancelling the body (the client went away) kills the run.
 */
function eventStream(
  entry: Entry,
  child: Awaited<ReturnType<Sandbox["spawn"]>>,
  log: (message: string) => void,
): ReadableStream<Uint8Array> {
  let done = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  // Output waits while the client is behind by STREAM_HIGH_WATER bytes: the
  // program then blocks on its own output instead of the server holding it.
  let wake: (() => void) | null = null;
  let drained: Promise<void> | null = null;
  const room = async () => {
    while (!done && (controller.desiredSize ?? 1) <= 0) {
      drained ??= new Promise((resolve) => (wake = resolve));
      await drained;
    }
  };
  const wakeAll = () => {
    const resolve = wake;
    wake = null;
    drained = null;
    resolve?.();
  };
  const sent = new Set<AuditEvent>();
  const send = (event: string, data: unknown) => {
    if (done) return;
    controller.enqueue(
      encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`),
    );
  };
  const audit = (event: AuditEvent) => {
    sent.add(event);
    send("audit", event);
  };
  entry.listeners.set(child.runId, audit);
  const pump = async (stream: ReadableStream<Uint8Array>, name: string) => {
    for await (const chunk of stream) {
      send(name, { base64: base64(chunk) });
      await room();
    }
  };
  return new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      (async () => {
        try {
          await Promise.all([
            pump(child.stdout, "stdout"),
            pump(child.stderr, "stderr"),
          ]);
          const status = await child.status;
          for (const event of status.audit) {
            if (!sent.has(event)) audit(event);
          }
          send("status", status);
        } catch (error) {
          send("error", errorBody(toApiError(error, log, child.runId)));
        } finally {
          entry.listeners.delete(child.runId);
          if (!done) {
            done = true;
            controller.close();
          }
        }
      })();
    },
    pull() {
      wakeAll();
    },
    cancel() {
      done = true;
      wakeAll();
      child.kill();
    },
  }, {
    highWaterMark: STREAM_HIGH_WATER,
    size: (chunk) => chunk.byteLength,
  });
}

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Runs a scratch file operation, answering errors without host paths. */
async function fsCall<T>(
  op: string,
  path: string,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof SandboxFsError) {
      throw new ApiError(400, "fs_refused", error.message);
    }
    const code = (error as { code?: unknown }).code;
    const shown = `/scratch/${path}`;
    if (code === "ENOENT") {
      throw new ApiError(
        404,
        "not_found",
        `Cannot ${op} '${shown}': no such file or directory`,
      );
    }
    const why: Record<string, string> = {
      EISDIR: "it is a directory (list it with ?list=1)",
      ENOTDIR: "a component is not a directory",
      ENOTEMPTY: "the directory is not empty (add ?recursive=1)",
      EEXIST: "it already exists",
    };
    if (typeof code === "string" && code in why) {
      throw new ApiError(
        400,
        "fs_refused",
        `Cannot ${op} '${shown}': ${why[code]}`,
      );
    }
    throw error;
  }
}

function deleted(entry: Entry): ApiError {
  return new ApiError(
    404,
    "not_found",
    `Sandbox '${entry.sandbox.id}' was deleted`,
  );
}

/** Limits over the caller's ceilings: a 400 naming each ceiling. */
function overCeiling(issues: PolicyIssue[]): ApiError {
  return new ApiError(
    400,
    "over_ceiling",
    `Cannot use ${
      issues.map((i) => `${i.path} (${i.message})`).join(", ")
    }: ask for less, or ask the server's operator for a higher ceiling`,
    { issues },
  );
}

function shuttingDown(): ApiError {
  return new ApiError(
    503,
    "shutting_down",
    "The server is shutting down: no new sandboxes",
  );
}

/** A PolicyError as the API's error, its paths prefixed by `prefix`. */
function invalidPolicy(error: PolicyError, prefix = "policy"): ApiError {
  const issues = error.issues.map((i) => ({
    path: [prefix, i.path].filter(Boolean).join("."),
    message: i.message,
  }));
  return new ApiError(400, "invalid_policy", "The policy is invalid", {
    issues,
  });
}

function toApiError(
  error: unknown,
  log: (message: string) => void,
  where: string,
): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof BundleError) {
    return new ApiError(422, "bundle_error", "The program cannot be bundled", {
      problems: error.problems,
    });
  }
  if (error instanceof PolicyError) return invalidPolicy(error, "");
  if (error instanceof InputError) {
    return new ApiError(400, "invalid_policy", error.message, {
      issues: [{ path: "policy.inputs", message: error.message }],
    });
  }
  if (
    error instanceof SandboxSetupError || error instanceof MissingHostToolError
  ) {
    return new ApiError(500, "sandbox_setup_error", error.message);
  }
  if (error instanceof HTTPException && error.status === 413) {
    return new ApiError(413, "body_too_large", "The request body is too large");
  }
  log(
    `airlock-api: internal error in ${where}: ${
      error instanceof Error ? error.stack : String(error)
    }`,
  );
  return new ApiError(
    500,
    "internal",
    "Internal server error (details are in the server's log)",
  );
}

function errorBody(error: ApiError) {
  return {
    error: {
      code: error.code,
      message: error.message,
      ...(error.extra.issues ? { issues: error.extra.issues } : {}),
      ...(error.extra.problems ? { problems: error.extra.problems } : {}),
    },
  };
}
