/**
 * The HTTP API: a hono app over the `Sandbox` API. Each sandbox
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
 * This module builds the server's state and joins the route groups, in the
 * order their checks run: who is calling (_auth.ts), the body limit, then
 * routes/{meta, sandboxes, runs, network, files}.ts. They share the state,
 * the ownership lookup and the body reader of _context.ts and the error
 * answers of _errors.ts; the route table they implement is in schemas.ts.
 *
 * @module
 */

import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { SandboxOptions } from "../harness/sandbox.ts";
import {
  type Ceilings,
  type CeilingsInput,
  type ClientRules,
  NO_CLIENT_RULES,
  resolveCeilings,
} from "./ceilings.ts";
import { RunScheduler } from "./_scheduler.ts";
import { authentication } from "./_auth.ts";
import type { AppEnv, AppState, Caller, ManagedSandbox } from "./_context.ts";
import {
  ApiError,
  draining,
  errorBody,
  shuttingDown,
  toApiError,
} from "./_errors.ts";
import { type CeilingKind, ServerMetrics } from "./metrics.ts";
import { Readiness } from "./_readiness.ts";
import { healthRoutes } from "./routes/health.ts";
import { metaRoutes } from "./routes/meta.ts";
import { sandboxRoutes } from "./routes/sandboxes.ts";
import { runRoutes } from "./routes/runs.ts";
import { networkRoutes } from "./routes/network.ts";
import { fileRoutes } from "./routes/files.ts";

export type { AppEnv, Caller, ManagedSandbox } from "./_context.ts";

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
  /**
   * This node's name, put in every sandbox id (`sbx-<node>-<random>`) so a
   * router can route by id (node.ts); a request for a sandbox of another
   * node is a 421 `wrong_node`. Default: none (`sbx-<random>`).
   */
  node?: string;
  /**
   * Sandboxes alive at once on this node, across every token: past it,
   * creation is a 503 `node_full` and `GET /ready` says not ready.
   * Default: no node ceiling (each token's own still applies).
   */
  maxNodeSandboxes?: number;
  /**
   * Who may read `GET /metrics` besides loopback clients: a metrics bearer
   * token, or anyone (`public`). Default: loopback only.
   */
  metrics?: { token?: string; public?: boolean };
  /** How long a passing readiness probe is trusted (ms); default 30,000. */
  readinessTtlMs?: number;
}

/** What {@linkcode createApp} returns. */
export interface AirlockApp {
  /** The hono app; serve it with `Deno.serve(app.fetch)`. */
  app: Hono<AppEnv>;
  /** Refuses new sandboxes, then closes every sandbox. Idempotent. */
  shutdown(): Promise<void>;
  /**
   * Drains the node: new sandboxes and new runs are refused (503
   * `draining`, `GET /ready` answers 503), live and queued runs finish, up
   * to `deadlineMs`; then every sandbox is closed (runs still live are
   * killed) as by `shutdown()`.
   *
   * @param deadlineMs The longest wait for live runs.
   * @returns Whether every run finished before the deadline.
   */
  drain(deadlineMs: number): Promise<boolean>;
  /** The node's readiness (`GET /ready`). */
  readiness: Readiness;
  /** Live sandboxes by id. */
  sandboxes: ReadonlyMap<string, ManagedSandbox>;
  /**
   * Runs of a token holding a slot (live, or their answer being sent) and
   * waiting for one.
   */
  runUsage(tokenName: string): { running: number; queued: number };
}

const MIB = 1024 * 1024;

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
  const node = options.node ?? null;
  const metrics = new ServerMetrics(node ?? "");
  const operatorAudit = options.sandboxDefaults?.onAudit;
  const defaults: Partial<Omit<SandboxOptions, "secrets">> = {
    ...options.sandboxDefaults,
    ...(node !== null ? { node } : {}),
    onAudit: (event) => {
      metrics.audit(event);
      operatorAudit?.(event);
    },
  };
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
  const tokens = options.tokens === null ? null : [...options.tokens].map((
    [token, info],
  ) => [token, callerOf(info.name, info)] as const);
  const anonymous = callerOf(
    "anonymous",
    options.maxSandboxes !== undefined
      ? { name: "anonymous", maxSandboxes: options.maxSandboxes }
      : undefined,
  );
  let spoolDir: Promise<string> | null = null;
  const state: AppState = {
    log,
    defaults,
    rules,
    env,
    operatorCas,
    scheduler: new RunScheduler(options.runSlots ?? defaultRunSlots()),
    registry: new Map(),
    pending: new Set(),
    closing: null,
    node,
    maxNodeSandboxes: options.maxNodeSandboxes ?? Infinity,
    draining: false,
    metrics,
    spoolDirectory: () =>
      spoolDir ??= Deno.makeTempDir({
        ...(defaults.tmpDir ? { dir: defaults.tmpDir } : {}),
        prefix: "airlock-spool-",
      }),
  };

  const app = new Hono<AppEnv>();

  const readiness = new Readiness({
    sandbox: probeOptions(defaults),
    sandboxes: () => state.registry.size + state.pending.size,
    maxSandboxes: state.maxNodeSandboxes,
    draining: () => state.draining || state.closing !== null,
    ...(options.readinessTtlMs !== undefined
      ? { ttlMs: options.readinessTtlMs }
      : {}),
    log,
  });

  app.onError((error, c) => {
    const api = toApiError(error, log, `${c.req.method} ${c.req.path}`);
    const ceiling = CEILING_OF[api.code];
    if (ceiling) metrics.rejected(ceiling);
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

  const { authenticate, open } = authentication(tokens, anonymous);
  app.use("/health", open);
  app.use("/ready", open);
  app.use("/version", open);
  app.use("/openapi.json", open);
  // Authentication first: an unknown client never makes us read a body.
  app.use("/sandboxes", authenticate);
  app.use("/sandboxes/*", authenticate);
  // Draining: nothing new starts here (a router retries elsewhere); what
  // is live finishes, and reads, file and network calls still work.
  app.post("/sandboxes", async (_c, next) => {
    if (state.draining) throw draining("new sandboxes");
    await next();
  });
  app.post("/sandboxes/:id/runs/*", async (_c, next) => {
    if (state.draining) throw draining("new runs");
    await next();
  });
  app.post("/sandboxes/:id/runs", async (_c, next) => {
    if (state.draining) throw draining("new runs");
    await next();
  });
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

  app.route(
    "/",
    healthRoutes(state, readiness, {
      token: options.metrics?.token ?? null,
      public: options.metrics?.public ?? false,
    }),
  );
  app.route("/", metaRoutes());
  app.route("/", sandboxRoutes(state));
  app.route("/", runRoutes(state));
  app.route("/", networkRoutes(state));
  app.route("/", fileRoutes(state));

  function shutdown(): Promise<void> {
    state.closing ??= (async () => {
      // The readiness probe's sandbox is one too: it must not outlive us.
      await Promise.allSettled([...state.pending, readiness.close()]);
      const entries = [...state.registry.values()];
      state.registry.clear();
      for (const entry of entries) {
        state.scheduler.cancelSandbox(entry.sandbox.id, shuttingDown());
      }
      await Promise.allSettled(entries.map((e) => e.sandbox.close()));
      for (const entry of entries) entry.caller.count--;
      if (spoolDir) {
        await spoolDir.then((dir) => Deno.remove(dir, { recursive: true }))
          .catch(() => {});
      }
    })();
    return state.closing;
  }

  async function drain(deadlineMs: number): Promise<boolean> {
    state.draining = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finished = await Promise.race([
      state.scheduler.idle().then(() => true),
      new Promise<false>((resolve) =>
        timer = setTimeout(() => resolve(false), deadlineMs)
      ),
    ]);
    clearTimeout(timer);
    await shutdown();
    return finished;
  }

  return {
    app,
    shutdown,
    drain,
    readiness,
    sandboxes: state.registry,
    runUsage: (name) => state.scheduler.usage(name),
  };
}

/** Error codes that mean "refused by a ceiling", by the ceiling's kind. */
const CEILING_OF: Partial<Record<string, CeilingKind>> = {
  too_many_sandboxes: "token_sandboxes",
  node_full: "node_sandboxes",
  too_many_runs: "runs",
  over_ceiling: "limits",
  draining: "draining",
};

/** The readiness probe's sandbox options: where and how, never what. */
function probeOptions(
  defaults: Partial<Omit<SandboxOptions, "secrets">>,
): Partial<Omit<SandboxOptions, "secrets" | "policy">> {
  const { policy: _policy, onAudit: _onAudit, ...rest } = defaults;
  return rest;
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
