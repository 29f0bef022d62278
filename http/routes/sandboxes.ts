/**
 * `POST /sandboxes`, `GET /sandboxes` and `DELETE /sandboxes/:id`. Creating
 * a sandbox is where a client's policy meets the server's rules: the parts
 * that reach the server (ceilings.ts) are refused unless the operator allows
 * them, each limit is held to the caller's ceiling, and the caller's count
 * of sandboxes to its limit.
 *
 * @module
 */

import { Hono } from "hono";
import { REDACTED } from "../../injector/secret_refs.ts";
import { parsePolicy, PolicyError } from "../../harness/policy.ts";
import type { AuditEvent } from "../../harness/run_result.ts";
import { Sandbox, type SandboxOptions } from "../../harness/sandbox.ts";
import {
  ceilingIssues,
  clientPolicyIssues,
  usesNpm,
  withDefaultLimits,
} from "../ceilings.ts";
import {
  type AppEnv,
  type AppState,
  type Entry,
  isRecord,
  lookup,
  readBody,
} from "../_context.ts";
import {
  ApiError,
  deleted,
  invalidPolicy,
  overCeiling,
  shuttingDown,
} from "../_errors.ts";
import { CreateSandboxRequestSchema } from "../schemas.ts";
import { observeRuns } from "../metrics.ts";

/**
 * The routes that create, list and delete the caller's sandboxes, for
 * `app.route("/", sandboxRoutes(state))`.
 *
 * @param state The server's state (app.ts).
 * @returns A hono app with the three routes.
 *
 * @example Usage
 * ```ts ignore
 * import { sandboxRoutes } from "./sandboxes.ts";
 * app.route("/", sandboxRoutes(state));
 * ```
 */
export function sandboxRoutes(state: AppState): Hono<AppEnv> {
  const { defaults, rules, env, operatorCas, registry, pending } = state;
  const app = new Hono<AppEnv>();

  app.post("/sandboxes", async (c) => {
    const caller = c.get("caller");
    if (state.closing) throw shuttingDown();
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
    if (registry.size + pending.size >= state.maxNodeSandboxes) {
      // The node's own ceiling (memory, uids): the router sends the next
      // attempt to another node (GET /ready says this node is full).
      throw new ApiError(
        503,
        "node_full",
        `Cannot create a sandbox on this node: it holds ${state.maxNodeSandboxes}, its ceiling; retry (the router picks a node with room)`,
      );
    }
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
        // Tokens are mutually hostile tenants: none is served a bundle
        // another made (a hit's speed would say it ran that program).
        bundleCacheScope: `token:${caller.name}`,
        onAudit: (event) => {
          const runId = (event as { runId?: unknown }).runId;
          if (typeof runId === "string") listeners.get(runId)?.(event);
          onAudit?.(event);
        },
      });
      if (state.closing) {
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
      state.metrics.sandboxCreated();
      observeRuns(sandbox, state.metrics);
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
    const entry = lookup(state, c);
    registry.delete(entry.sandbox.id);
    state.scheduler.cancelSandbox(
      entry.sandbox.id,
      deleted(entry.sandbox.id),
    );
    try {
      await entry.sandbox.close();
    } finally {
      entry.caller.count--;
    }
    return c.body(null, 204);
  });

  return app;
}

/** The operator's upstream CAs added to a policy (a record; else as is). */
function withOperatorCas(policy: unknown, cas: readonly string[]): unknown {
  if (cas.length === 0 || !isRecord(policy)) return policy;
  const upstream = policy.upstream ?? {};
  if (!isRecord(upstream)) return policy;
  const own = Array.isArray(upstream.caCerts) ? upstream.caCerts : [];
  return { ...policy, upstream: { ...upstream, caCerts: [...cas, ...own] } };
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
