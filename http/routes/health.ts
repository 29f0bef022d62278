/**
 * What a fleet asks of a node: `GET /health` (the process is up: a
 * liveness probe), `GET /ready` (it can start a sandbox now: a readiness
 * probe, and the router's check for where new sandboxes go) and
 * `GET /metrics` (Prometheus text format).
 *
 * `/health` and `/ready` need no token: they say only whether the node
 * works and how full it is. `/metrics` shows the node's load, so it needs
 * the metrics token (server config `metrics.token`), or comes from this
 * machine (loopback peer and Host), or the operator made it public
 * (`metrics.public`, for a cluster whose network policy decides who
 * reaches the port).
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import { Hono } from "hono";
import type { AppEnv, AppState } from "../_context.ts";
import { checkLoopback } from "../_auth.ts";
import { ApiError } from "../_errors.ts";
import type { Readiness } from "../_readiness.ts";

/** Who may read `/metrics`. */
export interface MetricsAccess {
  /** A bearer token that reads metrics (and nothing else), or null. */
  token: string | null;
  /** Anyone who reaches the port may read them. */
  public: boolean;
}

/**
 * The fleet routes, for `app.route("/", healthRoutes(state, readiness, access))`.
 *
 * @param state The server's state (app.ts).
 * @param readiness The node's readiness checks.
 * @param access Who may read `/metrics`.
 * @returns A hono app with `/health`, `/ready` and `/metrics`.
 *
 * @example Usage
 * ```ts ignore
 * import { healthRoutes } from "./health.ts";
 * app.route("/", healthRoutes(state, readiness, { token: null, public: false }));
 * ```
 */
export function healthRoutes(
  state: AppState,
  readiness: Readiness,
  access: MetricsAccess,
): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const digest = access.token === null ? null : sha256(access.token);

  app.get("/health", (c) => c.json({ ok: true as const }));

  app.get("/ready", async (c) => {
    const report = await readiness.check();
    return c.json(
      { ...report, node: state.node },
      report.ready ? 200 : 503,
    );
  });

  app.get("/metrics", async (c) => {
    if (!access.public) {
      const header = c.req.header("authorization");
      const token = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1];
      // A tenant's token does not read metrics: they show every tenant's
      // load on this node (a side channel on the others' activity).
      const allowed = token !== undefined && digest !== null &&
        timingSafeEqual(sha256(token), digest);
      if (!allowed) {
        try {
          checkLoopback(c);
        } catch {
          throw new ApiError(
            401,
            "unauthorized",
            digest === null
              ? "Cannot read /metrics from another machine: set a metrics token (server config 'metrics.token') and send it as 'Authorization: Bearer <token>'"
              : "Cannot read /metrics: send the metrics token (server config 'metrics.token') as 'Authorization: Bearer <token>'",
          );
        }
      }
    }
    const { ready } = await readiness.check();
    const text = state.metrics.render({
      sandboxesAlive: state.registry.size,
      runsLive: state.scheduler.running,
      runsQueued: state.scheduler.queued,
      ready,
      draining: state.draining,
    });
    return c.body(text, 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    });
  });

  return app;
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}
