/**
 * What a sandbox may reach and what it did: `GET` and `PUT
 * /sandboxes/:id/network` (the live network policy, injected values
 * redacted when read back) and `GET /sandboxes/:id/audit` (its audit trail:
 * egress requests, permission checks, harness records).
 *
 * @module
 */

import { Hono } from "hono";
import { PolicyError } from "../../harness/policy.ts";
import { networkIssues } from "../ceilings.ts";
import {
  type AppEnv,
  type AppState,
  lookup,
  readBody,
  whileOpen,
} from "../_context.ts";
import { invalidPolicy } from "../_errors.ts";
import { UpdateNetworkRequestSchema } from "../schemas.ts";

/**
 * The network policy and audit routes, for
 * `app.route("/", networkRoutes(state))`.
 *
 * @param state The server's state (app.ts).
 * @returns A hono app with the three routes.
 *
 * @example Usage
 * ```ts ignore
 * import { networkRoutes } from "./network.ts";
 * app.route("/", networkRoutes(state));
 * ```
 */
export function networkRoutes(state: AppState): Hono<AppEnv> {
  const { rules } = state;
  const app = new Hono<AppEnv>();

  app.get("/sandboxes/:id/network", (c) => {
    return c.json({ network: lookup(state, c).sandbox.networkPolicy });
  });

  app.put("/sandboxes/:id/network", async (c) => {
    const entry = lookup(state, c);
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
    return c.json({ events: lookup(state, c).sandbox.auditTrail });
  });

  return app;
}
