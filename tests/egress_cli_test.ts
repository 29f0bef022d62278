/**
 * The CLI's network flags end to end, as a real subprocess:
 * `--allow-net`, `--inject 'PATTERN:Header=value'` with `${env:NAME}` from
 * the CLI's environment, `--connect-to`, `--upstream-cacert` and
 * `--audit FILE`. The upstream gets the token, the program's output holds
 * only the marker, and the audit file has one JSON event per line with the
 * documented fields and never the token.
 */

import assert from "node:assert/strict";
import {
  assertNoBytes,
  MARKER,
  randomSecret,
  startUpstreams,
  type Upstreams,
} from "./kits/upstreams.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const RUN = `${ROOT}cli/run.ts`;

interface CliResult {
  code: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  text: string;
  errText: string;
}

async function cli(
  args: string[],
  cwd: string,
  env: Record<string, string>,
): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, RUN, ...args],
    cwd,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: out.stdout,
    stderr: out.stderr,
    text: decoder.decode(out.stdout),
    errText: decoder.decode(out.stderr),
  };
}

/** A world-readable temp dir with `files`, removed after `fn`. */
async function withDir(
  files: Record<string, string>,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-test-egress-cli-" });
  try {
    await Deno.chmod(dir, 0o755);
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text, { mode: 0o644 });
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const PROGRAM = `
const echo = await fetch("https://api.example.test/echo", {
  headers: { authorization: "program-value" },
});
console.log("api", echo.status, await echo.text());
const other = await fetch("https://other.example.test/plain");
console.log("other", other.status);
try {
  await fetch("https://evil.example.test/");
  console.log("evil reached");
} catch (e) {
  console.log("evil refused", e.name);
}
// Past Deno's wall, by hand: the injector refuses and audits it.
const conn = await Deno.connect({ hostname: "127.0.0.1", port: 3128 });
await conn.write(new TextEncoder().encode("CONNECT evil.example.test:443 HTTP/1.1\\r\\nHost: evil.example.test:443\\r\\n\\r\\n"));
const buf = new Uint8Array(4096);
const n = await conn.read(buf);
console.log("raw", new TextDecoder().decode(buf.subarray(0, n ?? 0)).split("\\r\\n")[0]);
conn.close();
`;

const FIELDS: Record<string, string> = {
  time: "string",
  source: "string",
  kind: "string",
  sandboxId: "string",
  runId: "string",
  method: "string",
  scheme: "string",
  host: "string",
  port: "number",
  path: "string",
  decision: "string",
  rule: "string",
  injected: "object",
  placeholders: "object",
  bytesOut: "number",
  bytesIn: "number",
  durationMs: "number",
};

async function upstreamFiles(ups: Upstreams): Promise<string> {
  return await Deno.readTextFile(ups.caFile);
}

Deno.test("cli --inject with ${env:...}, --connect-to, --upstream-cacert, --audit: the upstream gets the token; output and audit file never do", async () => {
  await using ups = await startUpstreams([
    "api.example.test",
    "other.example.test",
  ]);
  const token = randomSecret("cli");
  await withDir({
    "prog.ts": PROGRAM,
    "ca.pem": await upstreamFiles(ups),
  }, async (dir) => {
    const result = await cli(
      [
        "--allow-net",
        "other.example.test",
        "--inject",
        "api.example.test:Authorization=Bearer ${env:TEST_TOKEN}",
        "--connect-to",
        `api.example.test:443:127.0.0.1:${ups.get("api.example.test").port}`,
        "--connect-to",
        `other.example.test:443:127.0.0.1:${
          ups.get("other.example.test").port
        }`,
        // Relative: resolved against the CLI's working directory.
        "--upstream-cacert",
        "ca.pem",
        "--audit",
        "audit.jsonl",
        "prog.ts",
      ],
      dir,
      { TEST_TOKEN: token },
    );
    assert.equal(result.code, 0, result.errText);
    const lines = result.text.trim().split("\n");
    assert.match(lines[0]!, /^api 200 /);
    const echo = JSON.parse(lines[0]!.slice("api 200 ".length)) as {
      headers: [string, string][];
    };
    assert.deepEqual(
      echo.headers.filter(([k]) => k === "authorization"),
      [["authorization", MARKER]],
    );
    assert.deepEqual(lines.slice(1), [
      "other 200",
      "evil refused NotCapable",
      "raw HTTP/1.1 403 Forbidden",
    ]);
    const api = ups.get("api.example.test");
    assert.equal(api.seen.length, 1);
    assert.deepEqual(
      api.seen[0]!.headers.filter(([k]) => k === "authorization"),
      [["authorization", `Bearer ${token}`]],
    );
    assert.equal(
      ups.get("other.example.test").header(0, "authorization"),
      null,
    );
    assertNoBytes(result.stdout, token, "cli stdout");
    assertNoBytes(result.stderr, token, "cli stderr");

    const auditBytes = await Deno.readFile(`${dir}/audit.jsonl`);
    assertNoBytes(auditBytes, token, "audit.jsonl");
    const text = new TextDecoder().decode(auditBytes);
    assert.ok(text.endsWith("\n"));
    const events = text.trimEnd().split("\n").map((line, i) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        return assert.fail(
          `audit line ${i + 1} is not one JSON object: ${line}`,
        );
      }
    });
    for (const event of events) {
      // Every line: when, who, what kind, for which sandbox and run.
      for (const field of ["time", "source", "kind", "sandboxId", "runId"]) {
        assert.equal(
          typeof event[field],
          "string",
          `${field} of ${JSON.stringify(event)}`,
        );
      }
      assert.ok(!Number.isNaN(Date.parse(event.time as string)));
    }
    assert.equal(new Set(events.map((e) => e.sandboxId)).size, 1);
    assert.equal(new Set(events.map((e) => e.runId)).size, 1);
    // The injector's events carry the fields the README documents.
    const egress = events.filter((e) => e.source === "injector");
    for (const event of egress) {
      for (const [field, type] of Object.entries(FIELDS)) {
        assert.equal(
          typeof event[field],
          type,
          `${field} of ${JSON.stringify(event)}`,
        );
      }
      assert.ok(event.status === null || typeof event.status === "number");
    }
    const summary = egress.map((e) =>
      `${e.kind} ${e.host}:${e.port} ${e.decision}`
    );
    assert.deepEqual(summary.filter((s) => !s.startsWith("secret-echo")), [
      "connect api.example.test:443 allow",
      "request api.example.test:443 allow",
      "connect other.example.test:443 allow",
      "request other.example.test:443 allow",
      "connect evil.example.test:443 deny",
    ]);
    const request = egress.find((e) =>
      e.kind === "request" && e.host === "api.example.test"
    )!;
    assert.deepEqual(request.injected, ["authorization"]);
    assert.equal(request.path, "/echo");
    assert.equal(request.status, 200);
    assert.ok(
      events.some((e) =>
        e.kind === "secret-echo" && e.host === "api.example.test"
      ),
      "the echo was audited",
    );
    const denied = egress.find((e) => e.decision === "deny")!;
    assert.equal(denied.rule, "not-in-allowlist");
    assert.equal(denied.status, 403);
  });
});

Deno.test("cli --inject naming an unset environment variable exits 125 before running anything", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  await withDir({
    "prog.ts": `console.log("ran"); await fetch("https://api.example.test/");`,
    "ca.pem": await upstreamFiles(ups),
  }, async (dir) => {
    const result = await cli(
      [
        "--inject",
        "api.example.test:Authorization=Bearer ${env:AIRLOCK_TEST_UNSET_TOKEN}",
        "--connect-to",
        `api.example.test:443:127.0.0.1:${ups.get("api.example.test").port}`,
        "--upstream-cacert",
        "ca.pem",
        "prog.ts",
      ],
      dir,
      {},
    );
    assert.equal(result.code, 125, result.errText);
    assert.match(result.errText, /AIRLOCK_TEST_UNSET_TOKEN/);
    assert.equal(result.text, "", "the program did not run");
    assert.deepEqual(ups.get("api.example.test").seen, []);
  });
});

Deno.test("cli --policy with a placeholder secret from ${env:...} and a CA file relative to the policy; --json keeps the token out of the result", async () => {
  await using ups = await startUpstreams([
    "api.example.test",
    "other.example.test",
  ]);
  const token = randomSecret("ghp");
  const policy = `{
    // JSONC: comments allowed
    "network": { "allow": ["api.example.test", "other.example.test"] },
    "secrets": {
      "GH_TOKEN": { "hosts": ["api.example.test"], "value": "\${env:TEST_TOKEN}" }
    },
    "upstream": {
      "connectTo": ${JSON.stringify(ups.connectTo)},
      "caCerts": ["certs/ca.pem"]
    }
  }`;
  await withDir({
    "policy.jsonc": policy,
    "prog.ts": `const t = Deno.env.get("GH_TOKEN");
      for (const host of ["api.example.test", "other.example.test"]) {
        const r = await fetch("https://" + host + "/echo", { headers: { authorization: "token " + t } });
        console.log(host, r.status, await r.text());
      }
      console.log("placeholder", t);`,
  }, async (dir) => {
    await Deno.mkdir(`${dir}/certs`, { mode: 0o755 });
    await Deno.writeTextFile(`${dir}/certs/ca.pem`, await upstreamFiles(ups));
    // The CLI runs from another directory: the CA path is the policy's.
    const result = await cli(
      ["--json", "--policy", `${dir}/policy.jsonc`, `${dir}/prog.ts`],
      "/",
      { TEST_TOKEN: token },
    );
    assert.equal(result.code, 0, result.errText);
    assertNoBytes(result.stdout, token, "--json output");
    const json = JSON.parse(result.text) as {
      stdout: string;
      audit: { kind: string; host: string; placeholders: string[] }[];
    };
    const placeholder = json.stdout.match(
      /^placeholder (airlock-placeholder-GH_TOKEN-[0-9a-f]+)$/m,
    )?.[1];
    assert.ok(placeholder, json.stdout);
    assert.deepEqual(
      ups.get("api.example.test").seen[0]?.headers.filter(([k]) =>
        k === "authorization"
      ),
      [["authorization", `token ${token}`]],
    );
    assert.deepEqual(
      ups.get("other.example.test").seen[0]?.headers.filter(([k]) =>
        k === "authorization"
      ),
      [["authorization", `token ${placeholder}`]],
    );
    assert.match(json.stdout, new RegExp(`token ${escape(MARKER)}`));
    assert.deepEqual(
      json.audit.filter((e) => e.kind === "request").map((e) => [
        e.host,
        e.placeholders,
      ]),
      [["api.example.test", ["GH_TOKEN"]], ["other.example.test", []]],
    );
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
