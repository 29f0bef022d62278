/**
 * The compatibility matrix: real agent programs, written the way a model
 * writes them (the SDK's defaults, no key in the program), run unmodified
 * in a sandbox. Each SDK's own API host (`api.openai.com`...) is mapped by
 * `upstream.connectTo` to a loopback HTTPS server that plays the API
 * (`tests/kits/sdk_upstreams.ts`); credentials come from the policy, as a
 * placeholder the SDK reads from its usual variable or as a header the
 * injector adds. Each row asserts that the call succeeded, that the
 * upstream saw the real credential, and that no byte of the program's
 * output (or the audit trail) holds it.
 *
 * Packages come from the real npm registry through the policy's
 * `npm.allow`, pinned, into one cache for the file (set
 * `AIRLOCK_SDK_CACHE_DIR` to keep it across runs). README's
 * "SDK compatibility" table is checked against {@linkcode MATRIX} below.
 */

import assert from "node:assert/strict";
import { type PolicyInput, Sandbox } from "../mod.ts";
import type { EgressEvent } from "../harness/run_result.ts";
import {
  type ApiUpstreams,
  type PgServer,
  REPLY_TEXT,
  startApiUpstreams,
  startPgServer,
} from "./kits/sdk_upstreams.ts";
import { assertNoBytes, randomSecret } from "./kits/upstreams.ts";

/** How the row's credential reaches the upstream. */
type Credential =
  /** A placeholder in `env`; the program (or SDK) reads it. */
  | { via: "placeholder"; env: string; header: string; value: string }
  /** The injector adds `header` itself; the program sends none. */
  | { via: "rule"; header: string; value: string }
  /** Nothing to inject (a plain TCP tunnel carries the program's bytes). */
  | { via: "none" };

/** One row of the matrix. */
interface Row {
  /** Shown in the test name and README's table. */
  name: string;
  /** The npm package (and the version tested, pinned in the policy). */
  pkg: string;
  version: string;
  /** The API host the program talks to. */
  host: string;
  credential: Credential;
  /** The program, as a model would write it. */
  program: string;
  /** What a successful run prints. */
  output: RegExp;
  /**
   * Why the row cannot pass yet (the test is ignored, README says so);
   * undefined when it must pass.
   */
  pending?: string;
  /** README's notes column. */
  notes: string;
}

/** `${secret:KEY}`: the real value, held by the harness only. */
const SECRET_REF = "${secret:KEY}";

const GITHUB_PLACEHOLDER: Credential = {
  via: "placeholder",
  env: "GITHUB_TOKEN",
  header: "authorization",
  value: "Bearer <secret>",
};
const GITHUB_RULE: Credential = {
  via: "rule",
  header: "authorization",
  value: "Bearer <secret>",
};

/** A GitHub "who am I" program for the generic HTTP clients. */
const LOGGED_IN = /^logged in as octocat$/m;

/** The matrix. Versions are pinned: the registry's latest when written. */
export const MATRIX: readonly Row[] = [
  {
    name: "openai",
    pkg: "openai",
    version: "7.55.0",
    host: "api.openai.com",
    credential: {
      via: "placeholder",
      env: "OPENAI_API_KEY",
      header: "authorization",
      value: "Bearer <secret>",
    },
    program: `import OpenAI from "openai";
const client = new OpenAI();
const completion = await client.chat.completions.create({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "Say hello" }],
});
console.log(completion.choices[0].message.content);`,
    output: new RegExp(`^${REPLY_TEXT}$`, "m"),
    notes: "`new OpenAI()`; OPENAI_API_KEY is a placeholder",
  },
  {
    name: "openai (stream: true)",
    pkg: "openai",
    version: "7.55.0",
    host: "api.openai.com",
    credential: {
      via: "placeholder",
      env: "OPENAI_API_KEY",
      header: "authorization",
      value: "Bearer <secret>",
    },
    program: `import OpenAI from "openai";
const openai = new OpenAI();
const stream = await openai.chat.completions.create({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "Say hello" }],
  stream: true,
});
let text = "";
for await (const chunk of stream) {
  text += chunk.choices[0]?.delta?.content || "";
}
console.log(text);`,
    output: new RegExp(`^${REPLY_TEXT}$`, "m"),
    notes: "server-sent events, relayed as they arrive",
  },
  {
    name: "@anthropic-ai/sdk",
    pkg: "@anthropic-ai/sdk",
    version: "1.10.0",
    host: "api.anthropic.com",
    credential: {
      via: "placeholder",
      env: "ANTHROPIC_API_KEY",
      header: "authorization",
      value: "Bearer <secret>",
    },
    program: `import Anthropic from "@anthropic-ai/sdk";
const anthropic = new Anthropic();
const message = await anthropic.messages.create({
  model: "claude-sonnet-5-5",
  max_tokens: 1024,
  messages: [{ role: "user", content: "Say hello" }],
});
console.log(message.content[0].type === "text" ? message.content[0].text : "?");`,
    output: new RegExp(`^${REPLY_TEXT}$`, "m"),
    notes: "probes 10 unset `ANTHROPIC_*` variables (undefined)",
  },
  {
    name: "stripe",
    pkg: "stripe",
    version: "23.1.0",
    host: "api.stripe.com",
    credential: {
      via: "placeholder",
      env: "STRIPE_SECRET_KEY",
      header: "authorization",
      value: "Bearer <secret>",
    },
    program: `import Stripe from "stripe";
const stripe = new Stripe(process.env.STRIPE_SECRET_KEY);
const customer = await stripe.customers.retrieve("cus_NffrFeUfNV2Hib");
console.log(customer.id, customer.email);`,
    output: /^cus_NffrFeUfNV2Hib jenny@example\.com$/m,
    notes: "reads the kernel release; probes 13 unset variables",
  },
  {
    name: "@octokit/rest",
    pkg: "@octokit/rest",
    version: "22.0.1",
    host: "api.github.com",
    credential: { ...GITHUB_PLACEHOLDER, value: "token <secret>" },
    program: `import { Octokit } from "@octokit/rest";
const octokit = new Octokit({ auth: process.env.GITHUB_TOKEN });
const { data } = await octokit.rest.users.getAuthenticated();
console.log("logged in as", data.login);`,
    output: LOGGED_IN,
    notes: "sends the placeholder as `token …`",
  },
  {
    name: "axios",
    pkg: "axios",
    version: "1.21.1",
    host: "api.github.com",
    credential: GITHUB_PLACEHOLDER,
    program: `import axios from "axios";
const { data } = await axios.get("https://api.github.com/user", {
  headers: { Authorization: \`Bearer \${process.env.GITHUB_TOKEN}\` },
});
console.log("logged in as", data.login);`,
    output: LOGGED_IN,
    notes: "lists the environment (`debug`); an optional dependency is absent",
  },
  {
    name: "undici (EnvHttpProxyAgent)",
    pkg: "undici",
    version: "8.12.4",
    host: "api.github.com",
    credential: GITHUB_PLACEHOLDER,
    program:
      `import { EnvHttpProxyAgent, request, setGlobalDispatcher } from "undici";
setGlobalDispatcher(new EnvHttpProxyAgent());
const { statusCode, body } = await request("https://api.github.com/user", {
  headers: { authorization: \`Bearer \${process.env.GITHUB_TOKEN}\`, "user-agent": "agent" },
});
const user = await body.json();
console.log(statusCode);
console.log("logged in as", user.login);`,
    output: LOGGED_IN,
    notes: "follows HTTPS_PROXY",
  },
  {
    name: "undici (fetch)",
    pkg: "undici",
    version: "8.12.4",
    host: "api.github.com",
    credential: GITHUB_RULE,
    program: `import { fetch } from "undici";
const res = await fetch("https://api.github.com/user");
const user = await res.json();
console.log("logged in as", user.login);`,
    output: LOGGED_IN,
    notes: "connects directly: transparent egress",
  },
  {
    name: "undici (request)",
    pkg: "undici",
    version: "8.12.4",
    host: "api.github.com",
    credential: GITHUB_RULE,
    program: `import { request } from "undici";
const { body } = await request("https://api.github.com/user", {
  headers: { "user-agent": "agent" },
});
const user = await body.json();
console.log("logged in as", user.login);`,
    output: LOGGED_IN,
    notes: "connects directly: transparent egress",
  },
  {
    name: "node-fetch",
    pkg: "node-fetch",
    version: "3.3.2",
    host: "api.github.com",
    credential: GITHUB_RULE,
    program: `import fetch from "node-fetch";
const res = await fetch("https://api.github.com/user");
const user = await res.json();
console.log("logged in as", user.login);`,
    output: LOGGED_IN,
    notes: "no key in the program: the policy adds the header",
  },
  {
    name: "ky",
    pkg: "ky",
    version: "2.1.0",
    host: "api.github.com",
    credential: GITHUB_RULE,
    program: `import ky from "ky";
const user = await ky.get("https://api.github.com/user").json();
console.log("logged in as", user.login);`,
    output: LOGGED_IN,
    notes: "the policy adds the header",
  },
  {
    name: "got",
    pkg: "got",
    version: "16.1.0",
    host: "api.github.com",
    credential: GITHUB_PLACEHOLDER,
    program: `import got from "got";
const user = await got("https://api.github.com/user", {
  headers: { Authorization: \`Bearer \${process.env.GITHUB_TOKEN}\` },
}).json();
console.log("logged in as", user.login);`,
    output: LOGGED_IN,
    notes: "`node:https` through NODE_USE_ENV_PROXY",
  },
  {
    name: "ws",
    pkg: "ws",
    version: "8.23.0",
    host: "api.openai.com",
    credential: {
      via: "placeholder",
      env: "OPENAI_API_KEY",
      header: "authorization",
      value: "Bearer <secret>",
    },
    program: `import WebSocket from "ws";
const ws = new WebSocket("wss://api.openai.com/v1/realtime?model=gpt-realtime", {
  headers: { Authorization: \`Bearer \${process.env.OPENAI_API_KEY}\` },
});
ws.on("open", () => ws.send("hello"));
ws.on("message", (data) => {
  console.log("received", data.toString());
  ws.close();
});
ws.on("error", (e) => { console.error("ws error", e.message); process.exit(1); });`,
    output: /^received echo:hello$/m,
    notes: "the credential rides on the upgrade request",
  },
  {
    name: "@google/genai",
    pkg: "@google/genai",
    version: "3.1.0",
    host: "generativelanguage.googleapis.com",
    credential: {
      via: "placeholder",
      env: "GEMINI_API_KEY",
      header: "x-goog-api-key",
      value: "<secret>",
    },
    program: `import { GoogleGenAI } from "@google/genai";
const ai = new GoogleGenAI({});
const response = await ai.models.generateContent({
  model: "gemini-2.5-flash",
  contents: "Say hello",
});
console.log(response.text);`,
    output: new RegExp(`^${REPLY_TEXT}$`, "m"),
    notes: "key in `x-goog-api-key`; an optional dependency is absent",
  },
  {
    name: "pg",
    pkg: "pg",
    version: "8.23.1",
    host: "db.internal.example",
    credential: { via: "none" },
    program: `import pg from "pg";
const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
await client.connect();
const { rows } = await client.query("SELECT version()");
console.log(rows[0].version);
await client.end();`,
    output: /^PostgreSQL 16\.0 \(airlock test\)$/m,
    notes: "`network.tcp` rule: a plain tunnel, no injected credential",
  },
];

// ---------------------------------------------------------------------------
// Shared per file: the upstreams, the Postgres server, the package cache.

let shared:
  | Promise<{ ups: ApiUpstreams; pg: PgServer; cacheDir: string }>
  | undefined;
const ownCache = Deno.env.get("AIRLOCK_SDK_CACHE_DIR") === undefined;

function setup() {
  shared ??= (async () => {
    const cacheDir = Deno.env.get("AIRLOCK_SDK_CACHE_DIR") ??
      await Deno.makeTempDir({ prefix: "airlock-sdk-matrix-" });
    await Deno.mkdir(cacheDir, { recursive: true });
    if (ownCache) {
      globalThis.addEventListener("unload", () => {
        try {
          Deno.removeSync(cacheDir, { recursive: true });
        } catch { /* gone */ }
      });
    }
    return { ups: await startApiUpstreams(), pg: startPgServer(), cacheDir };
  })();
  return shared;
}

/** The policy a row runs under. */
function policyFor(
  row: Row,
  ups: ApiUpstreams,
  pg: PgServer,
): PolicyInput {
  const credential = row.credential;
  const upstream = { connectTo: ups.connectTo, caCerts: [ups.caFile] };
  if (credential.via === "none") {
    return {
      limits: { timeoutMs: 60_000 },
      npm: { allow: [`${row.pkg}@${row.version}`] },
      network: { tcp: [`${row.host}:5432`] },
      env: { DATABASE_URL: `postgres://app@${row.host}:5432/appdb` },
      upstream: {
        ...upstream,
        connectTo: [
          ...upstream.connectTo,
          `${row.host}:5432:127.0.0.1:${pg.port}`,
        ],
      },
    };
  }
  const rules = credential.via === "rule"
    ? [{
      transform: [{
        headers: {
          [credential.header]: credential.value.replace("<secret>", SECRET_REF),
        },
      }],
    }]
    : [];
  return {
    limits: { timeoutMs: 60_000 },
    npm: { allow: [`${row.pkg}@${row.version}`] },
    network: { allow: { [row.host]: rules } },
    ...(credential.via === "placeholder"
      ? {
        secrets: {
          [credential.env]: { hosts: [row.host], value: SECRET_REF },
        },
      }
      : {}),
    upstream,
  };
}

for (const row of MATRIX) {
  Deno.test({
    name: `sdk matrix: ${row.name}@${row.version} works unmodified; ${
      row.credential.via === "none"
        ? "the server answers"
        : "the upstream gets the real credential, the output never holds it"
    }`,
    ignore: row.pending !== undefined,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const { ups, pg, cacheDir } = await setup();
      const secret = randomSecret(`sk-${row.pkg.replace(/\W/g, "")}`);
      const seenBefore = ups.seen(row.host).length;
      await using sandbox = await Sandbox.create({
        policy: policyFor(row, ups, pg),
        secrets: { KEY: secret },
        npmCacheDir: cacheDir,
      });
      const t0 = performance.now();
      const result = await sandbox.run({ code: row.program });
      const ms = performance.now() - t0;
      assert.equal(result.reason, "exit", result.stderr);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.match(result.stdout, row.output, result.stderr);
      // The program never had the key: not in its text, not in any byte
      // it produced, not in what the harness recorded of it.
      assert.ok(!row.program.includes(secret));
      for (
        const [where, bytes] of [
          ["stdout", result.stdoutBytes],
          ["stderr", result.stderrBytes],
          ["audit", JSON.stringify(result.audit)],
        ] as const
      ) {
        assertNoBytes(bytes, secret, where);
        assertNoBytes(bytes, btoa(secret).slice(0, -4), `${where} (base64)`);
      }
      const credential = row.credential;
      if (credential.via === "none") {
        assert.equal(pg.startups.at(-1)?.user, "app");
        assert.equal(pg.queries.at(-1), "SELECT version()");
        // One tunnel, audited with its target and the bytes each way.
        const tunnels = result.audit.filter((e): e is EgressEvent =>
          e.source === "injector" && e.kind === "tcp" && e.host === row.host
        );
        assert.ok(tunnels.length >= 1, "no TCP tunnel in the audit trail");
        for (const tunnel of tunnels) {
          assert.equal(tunnel.decision, "allow");
          assert.equal(tunnel.port, 5432);
          assert.ok(tunnel.bytesOut > 0 && tunnel.bytesIn > 0);
        }
      } else {
        // The upstream saw exactly the real credential on every request.
        const seen = ups.seen(row.host).slice(seenBefore);
        assert.ok(seen.length >= 1, `${row.host} saw no request`);
        const expected = credential.value.replace("<secret>", secret);
        for (const request of seen) {
          const values: string[] = request.headers.filter(([n]) =>
            n === credential.header
          ).map(([, v]) => v);
          assert.deepEqual(values, [expected], request.path);
        }
        // And the injector says so: placeholders swapped or headers added.
        const requests = result.audit.filter((e): e is EgressEvent =>
          e.source === "injector" &&
          (e.kind === "request" || e.kind === "websocket") &&
          e.host === row.host
        );
        assert.ok(requests.length >= 1, "no request in the audit trail");
        for (const event of requests) {
          assert.equal(event.decision, "allow");
          if (credential.via === "placeholder") {
            assert.deepEqual(event.placeholders, [credential.env]);
          } else {
            assert.ok(event.injected.includes(credential.header));
          }
        }
      }
      const env = result.audit.filter((e) =>
        e.source === "broker" && e.permission === "env"
      ).length;
      const denied = result.audit.filter((e) =>
        e.source === "broker" && e.decision === "deny"
      ).length;
      console.log(
        `  ${row.name}: ${
          (ms / 1000).toFixed(1)
        } s (bundle and run), ${env} env names read, ${denied} denied checks`,
      );
    },
  });
}

Deno.test("sdk matrix: README's compatibility table lists every row with its version and status", async () => {
  const readme = await Deno.readTextFile(
    new URL("../README.md", import.meta.url),
  );
  const section = readme.split("\n## SDK compatibility\n")[1]
    ?.split("\n## ")[0];
  assert.ok(section, "README has a '## SDK compatibility' section");
  const rows = section.split("\n").filter((l) => /^\| `/.test(l)).map((l) =>
    l.split("|").slice(1, -1).map((c) => c.trim())
  );
  assert.deepEqual(
    rows.map(([name, version, status]) => [name, version, status]),
    MATRIX.map((row) => [
      `\`${row.name}\``,
      row.version,
      row.pending === undefined ? "passes" : "pending",
    ]),
  );
});

Deno.test({
  name: "sdk matrix: the upstreams close",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    if (!shared) return;
    const { ups, pg } = await shared;
    await Promise.all([ups.close(), pg.close()]);
  },
});
