/**
 * The open routes: `GET /version` and `GET /openapi.json` (`GET /health`
 * is with the fleet's routes in health.ts). They need no token (app.ts puts
 * them behind the loopback check only when the server has no tokens).
 *
 * @module
 */

import { Hono } from "hono";
import config from "../../deno.json" with { type: "json" };
import type { AppEnv } from "../_context.ts";
import { openApiDocument } from "../openapi.ts";

/**
 * The open routes, for `app.route("/", metaRoutes())`.
 *
 * @returns A hono app with the two routes.
 *
 * @example Usage
 * ```ts
 * import { metaRoutes } from "./meta.ts";
 * const response = await metaRoutes().request("/version");
 * console.log("airlock" in await response.json()); // true
 * ```
 */
export function metaRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  let openapi: Record<string, unknown> | undefined;
  app.get(
    "/version",
    (c) => c.json({ airlock: config.version, deno: Deno.version.deno }),
  );
  app.get("/openapi.json", (c) => {
    openapi ??= openApiDocument(config.version);
    return c.json(openapi);
  });
  return app;
}
