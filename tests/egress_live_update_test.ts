/**
 * Live network policy updates from inside one running sandbox: the program
 * makes a request, waits for a line on stdin, and makes another; between
 * the two the harness calls `sandbox.updateNetworkPolicy(...)`. The second
 * request is decided by the new policy (the README: "applies to the next
 * request of every run (running ones included)"), whether it travels in the
 * same keep-alive tunnel or a new one.
 */

import assert from "node:assert/strict";
import { PolicyError, Sandbox } from "../mod.ts";
import {
  type Attempt,
  egressEvents,
  lines,
  randomSecret,
  startUpstreams,
  upstreamPolicy,
  type Upstreams,
} from "./kits/upstreams.ts";

const LIMITS = { timeoutMs: 60_000 };

/** Fetches, prints `first`, waits for a stdin line, fetches, prints `second`. */
const TWO_STEP = `
  const attempt = async (url) => {
    try {
      const r = await fetch(url);
      return { ok: true, value: { status: r.status, airlockError: r.headers.get("x-airlock-error"), body: await r.text() } };
    } catch (e) {
      return { ok: false, error: e.name + ": " + e.message };
    }
  };
  const url = Deno.args[0];
  console.log(JSON.stringify({ step: "first", outcome: await attempt(url + "/first") }));
  const reader = Deno.stdin.readable.getReader();
  await reader.read();
  console.log(JSON.stringify({ step: "second", outcome: await attempt(url + "/second") }));
`;

/**
 * Runs TWO_STEP against `url`, calling `between` after the first request's
 * line is out and before the program may continue.
 */
async function twoStep(
  sandbox: Sandbox,
  url: string,
  between: () => Promise<void>,
): Promise<{ first: Attempt; second: Attempt; audit: unknown[] }> {
  const child = await sandbox.spawn({
    code: TWO_STEP,
    args: [url],
    stdin: "piped",
  });
  const stderr = new Response(child.stderr).text();
  const out = lines(child.stdout);
  const firstLine = await out.next();
  if (!firstLine) assert.fail(`no first line; stderr: ${await stderr}`);
  const first = JSON.parse(firstLine) as { step: string; outcome: Attempt };
  assert.equal(first.step, "first");
  await between();
  const writer = child.stdin!.getWriter();
  await writer.write(new TextEncoder().encode("go\n"));
  await writer.close();
  const secondLine = await out.next();
  if (!secondLine) assert.fail(`no second line; stderr: ${await stderr}`);
  const second = JSON.parse(secondLine) as { step: string; outcome: Attempt };
  assert.equal(second.step, "second");
  await out.rest();
  const status = await child.status;
  if (status.exitCode !== 0) {
    assert.fail(`exit ${status.exitCode}: ${await stderr}`);
  }
  return { first: first.outcome, second: second.outcome, audit: status.audit };
}

function reached(outcome: Attempt): { status: number; body: string } {
  assert.ok(outcome.ok, JSON.stringify(outcome));
  const value = outcome.value as { status: number; body: string };
  assert.equal(value.status, 200, JSON.stringify(value));
  return value;
}

async function sandboxFor(
  ups: Upstreams,
  network: Parameters<Sandbox["updateNetworkPolicy"]>[0],
  secrets: Record<string, string> = {},
): Promise<Sandbox> {
  return await Sandbox.create({
    policy: { limits: LIMITS, network, upstream: upstreamPolicy(ups) },
    secrets,
  });
}

/** Exactly one refusal of `host`: by the injector (with `rule`) or the broker. */
function assertRefusedOnce(
  audit: readonly {
    source: string;
    decision: string;
    host?: string;
    rule?: string;
    permission?: string;
    value?: string | null;
  }[],
  host: string,
  rule: string,
): void {
  const byInjector = audit.filter((e) =>
    e.source === "injector" && e.host === host && e.decision === "deny"
  );
  const byBroker = audit.filter((e) =>
    e.source === "broker" && e.permission === "net" &&
    e.value === `${host}:443` && e.decision === "deny"
  );
  assert.equal(byInjector.length + byBroker.length, 1, JSON.stringify(audit));
  if (byInjector.length === 1) assert.equal(byInjector[0]!.rule, rule);
}

Deno.test("live update: removing a host between two requests of one run refuses the second", async () => {
  await using ups = await startUpstreams([
    "api.example.test",
    "other.example.test",
  ]);
  await using sandbox = await sandboxFor(ups, {
    allow: ["api.example.test", "other.example.test"],
  });
  const { first, second, audit } = await twoStep(
    sandbox,
    "https://api.example.test",
    () => sandbox.updateNetworkPolicy({ allow: ["other.example.test"] }),
  );
  reached(first);
  // Refused either inside the kept-alive tunnel (403 from the injector) or
  // at a new CONNECT (the program's fetch fails).
  if (second.ok) {
    const value = second.value as { status: number; airlockError: string };
    assert.equal(value.status, 403, JSON.stringify(value));
    assert.equal(value.airlockError, "blocked-by-policy");
  }
  const api = ups.get("api.example.test");
  assert.deepEqual(api.seen.map((s) => s.path), ["/first"]);
  // Refused by the injector, or already by Deno's own wall: the broker's
  // net grants follow live updates too.
  assertRefusedOnce(audit as never, "api.example.test", "not-in-allowlist");
  assert.deepEqual(sandbox.networkPolicy, {
    allow: ["other.example.test"],
  });
});

Deno.test("live update: switching to deny-all between two requests refuses the second", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  await using sandbox = await sandboxFor(ups, { allow: ["api.example.test"] });
  const { first, second, audit } = await twoStep(
    sandbox,
    "https://api.example.test",
    () => sandbox.updateNetworkPolicy("deny-all"),
  );
  reached(first);
  if (second.ok) {
    assert.equal((second.value as { status: number }).status, 403);
  }
  assert.deepEqual(
    ups.get("api.example.test").seen.map((s) => s.path),
    ["/first"],
  );
  assertRefusedOnce(audit as never, "api.example.test", "deny-all");
});

Deno.test("live update: an injection added between two requests applies to the second only", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  const secret = randomSecret();
  await using sandbox = await sandboxFor(
    ups,
    { allow: ["api.example.test"] },
    { T: secret },
  );
  const { first, second, audit } = await twoStep(
    sandbox,
    "https://api.example.test",
    () =>
      sandbox.updateNetworkPolicy({
        allow: {
          "api.example.test": [{
            transform: [{ headers: { authorization: "Bearer ${secret:T}" } }],
          }],
        },
      }),
  );
  reached(first);
  const echoed = JSON.parse(reached(second).body) as {
    headers: [string, string][];
  };
  assert.deepEqual(
    echoed.headers.filter(([n]) => n === "authorization"),
    [["authorization", "[airlock:redacted]"]],
  );
  const api = ups.get("api.example.test");
  assert.deepEqual(api.seen.map((s) => s.path), ["/first", "/second"]);
  assert.equal(api.header(0, "authorization"), null);
  assert.equal(api.header(1, "authorization"), `Bearer ${secret}`);
  const requests = egressEvents(audit as never).filter((e) =>
    e.kind === "request"
  );
  assert.deepEqual(requests.map((e) => e.injected), [[], ["authorization"]]);
  const shown = JSON.stringify(sandbox.networkPolicy);
  assert.ok(!shown.includes(secret));
  assert.match(shown, /<redacted>/);
});

Deno.test("live update: an injection removed between two requests is gone from the second", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  const secret = randomSecret();
  await using sandbox = await sandboxFor(ups, {
    allow: {
      "api.example.test": [{
        transform: [{ headers: { authorization: "Bearer ${secret:T}" } }],
      }],
    },
  }, { T: secret });
  const { first, second } = await twoStep(
    sandbox,
    "https://api.example.test",
    () => sandbox.updateNetworkPolicy({ allow: ["api.example.test"] }),
  );
  reached(first);
  reached(second);
  const api = ups.get("api.example.test");
  assert.equal(api.header(0, "authorization"), `Bearer ${secret}`);
  assert.equal(api.header(1, "authorization"), null);
});

Deno.test("live update: an invalid policy is refused and the old one stays in force for the running program", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  await using sandbox = await sandboxFor(ups, { allow: ["api.example.test"] });
  const { first, second } = await twoStep(
    sandbox,
    "https://api.example.test",
    async () => {
      await assert.rejects(
        sandbox.updateNetworkPolicy({ allow: ["*"] }),
        PolicyError,
      );
      await assert.rejects(
        sandbox.updateNetworkPolicy({
          allow: {
            "api.example.test": [{
              transform: [{ headers: { authorization: "${secret:MISSING}" } }],
            }],
          },
        }),
        PolicyError,
      );
    },
  );
  reached(first);
  reached(second);
  assert.deepEqual(
    ups.get("api.example.test").seen.map((s) => s.path),
    ["/first", "/second"],
  );
  assert.deepEqual(sandbox.networkPolicy, { allow: ["api.example.test"] });
});
