import assert from "node:assert/strict";
import { CertificateAuthority } from "../injector/ca.ts";
import { SERVER_SCHEMA_PATH, serverSchemaText } from "../cli/schema.ts";
import { loadServerConfig, parseSize, ServerConfigError } from "./config.ts";

const TOKEN = "config-test-token-0123456789";

/** Writes files into a fresh directory; returns its path. */
async function directory(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-config-test-" });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text, { mode: 0o600 });
    await Deno.chmod(`${dir}/${name}`, 0o600);
  }
  return dir;
}

async function problems(
  config: string,
  files: Record<string, string> = {},
  env: Record<string, string> = {},
): Promise<{ path: string; message: string }[]> {
  const dir = await directory({ ...files, "server.jsonc": config });
  try {
    await loadServerConfig(`${dir}/server.jsonc`, { env: (n) => env[n] });
  } catch (error) {
    assert.ok(error instanceof ServerConfigError, String(error));
    assert.match(
      error.message,
      /^Cannot use server config '.*server\.jsonc': \d+ problems?/,
    );
    return error.issues;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.fail("expected the config to be refused");
}

Deno.test("loadServerConfig() resolves tokens, ceilings, rules, mappings and CAs", async () => {
  const ca = await CertificateAuthority.create({ commonName: "config test" });
  const dir = await directory({
    "ca.pem": ca.certificatePem,
    "agents.token": `${TOKEN}-file\n`,
    "tokens.txt": `# name token\nbob ${TOKEN}-bob\n${TOKEN}-anon\n`,
    "server.jsonc": `{
      // comments and trailing commas are fine
      "$schema": "../schema/server.schema.json",
      "listen": { "host": "0.0.0.0", "port": 9999 },
      "maxBodyBytes": "2MB",
      "tokens": [
        { "name": "ci", "env": "CI_TOKEN", "ceilings": { "runsPerToken": 4 } },
        { "name": "agents", "file": "agents.token" },
      ],
      "tokenFile": "tokens.txt",
      "defaultPolicy": { "scratch": true, "limits": { "timeoutMs": 5000 } },
      "ceilings": { "limits": { "memoryMb": 512 }, "sandboxes": 4 },
      "runSlots": 6,
      "clients": { "npm": true },
      "upstream": {
        "connectTo": ["api.internal.test:443:127.0.0.1:8443"],
        "caCerts": ["ca.pem"],
      },
      "tmpDir": "work",
    }`,
  });
  await Deno.mkdir(`${dir}/work`);
  try {
    const config = await loadServerConfig(`${dir}/server.jsonc`, {
      env: (name) => name === "CI_TOKEN" ? `${TOKEN}-ci` : undefined,
    });
    assert.equal(config.host, "0.0.0.0");
    assert.equal(config.port, 9999);
    assert.equal(config.maxBodyBytes, 2 * 1024 * 1024);
    assert.deepEqual(
      [...config.tokens].map(([token, info]) => [token, info.name]),
      [
        [`${TOKEN}-ci`, "ci"],
        [`${TOKEN}-file`, "agents"],
        [`${TOKEN}-bob`, "bob"],
        [`${TOKEN}-anon`, "tokenFile-3"],
      ],
    );
    assert.deepEqual(config.tokens.get(`${TOKEN}-ci`)?.ceilings, {
      runsPerToken: 4,
    });
    assert.deepEqual(config.app.clients, { npm: true });
    assert.equal(config.app.runSlots, 6);
    assert.deepEqual(config.app.ceilings, {
      limits: { memoryMb: 512 },
      sandboxes: 4,
    });
    assert.deepEqual(config.app.upstreamCaCerts, [`${dir}/ca.pem`]);
    assert.equal(config.app.sandboxDefaults?.connectTo?.[0]?.toPort, 8443);
    assert.equal(config.app.sandboxDefaults?.tmpDir, `${dir}/work`);
    assert.deepEqual(config.app.sandboxDefaults?.policy, {
      scratch: true,
      limits: { timeoutMs: 5000 },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadServerConfig() lists every problem by path", async () => {
  const issues = await problems(`{
    "listen": { "port": 70000 },
    "tokens": [
      { "name": "a b", "value": "${TOKEN}" },
      { "name": "two", "env": "X", "value": "${TOKEN}-2" },
      { "name": "short", "value": "abc" },
      { "name": "unset", "env": "NOT_SET" },
    ],
    "ceilings": { "limits": { "tmpMb": 8 }, "defaults": { "tmpMb": 16 }, "runsPerToken": 0 },
    "clients": { "npm": "yes" },
    "defaultPolicy": { "limits": { "memoryMb": 1 }, "inputs": ["relative/dir"] },
    "unknown": 1,
  }`);
  const paths = issues.map((i) => i.path);
  for (
    const expected of [
      "listen.port",
      "tokens.0.name",
      "tokens.1",
      "ceilings.runsPerToken",
      "clients.npm",
      "defaultPolicy.limits.memoryMb",
      "defaultPolicy.inputs.0",
      "",
    ]
  ) {
    assert.ok(paths.includes(expected), `${expected} in ${paths.join(", ")}`);
  }
  assert.match(
    issues.find((i) => i.path === "tokens.1")!.message,
    /exactly one of 'env', 'file' or 'value' \(got env, value\)/,
  );
  assert.match(
    issues.find((i) => i.path === "")!.message,
    /unknown/i,
  );

  // Once the shape is right, what the files and values hold is checked.
  const later = await problems(
    `{
    "tokens": [
      { "name": "short", "value": "abc" },
      { "name": "unset", "env": "NOT_SET" },
      { "name": "dup", "value": "${TOKEN}" },
      { "name": "dup", "value": "${TOKEN}-other" },
      { "name": "same", "value": "${TOKEN}" },
    ],
    "ceilings": { "limits": { "tmpMb": 8 }, "defaults": { "tmpMb": 16 } },
    "upstream": { "caCerts": ["missing.pem", "not-a-cert.pem"] },
    "tmpDir": "nowhere",
  }`,
    { "not-a-cert.pem": "hello" },
  );
  assert.deepEqual(later.map((i) => i.path), [
    "ceilings.defaults.tmpMb",
    "tokens.0",
    "tokens.1.env",
    "tokens.3",
    "tokens.4",
    "upstream.caCerts.0",
    "upstream.caCerts.1",
    "tmpDir",
  ]);
  assert.match(later[1]!.message, /at least 16 characters/);
  assert.match(later[2]!.message, /'NOT_SET' is unset or empty/);
  assert.match(later[3]!.message, /name 'dup' is also used by tokens\.2/);
  assert.match(later[4]!.message, /same token as 'dup'/);
  assert.match(later[6]!.message, /holds no PEM certificate/);
});

Deno.test("loadServerConfig() refuses token files other users may read", async () => {
  const dir = await directory({
    "tokens.txt": `${TOKEN}\n`,
    "server.jsonc": `{ "tokenFile": "tokens.txt" }`,
  });
  try {
    await Deno.chmod(`${dir}/tokens.txt`, 0o644);
    await assert.rejects(
      () => loadServerConfig(`${dir}/server.jsonc`),
      (error: unknown) =>
        error instanceof ServerConfigError &&
        error.issues[0]?.path === "tokenFile" &&
        /may be read by other users \(mode 0644\): run 'chmod 600/.test(
          error.issues[0].message,
        ),
    );
    // Control: the same file at 0600 is accepted.
    await Deno.chmod(`${dir}/tokens.txt`, 0o600);
    const config = await loadServerConfig(`${dir}/server.jsonc`);
    assert.equal(config.tokens.get(TOKEN)?.name, "tokenFile-1");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadServerConfig() reports an unreadable or malformed file", async () => {
  await assert.rejects(
    () => loadServerConfig("/nonexistent/server.jsonc"),
    /Cannot use server config '\/nonexistent\/server\.jsonc'.*cannot read the file/s,
  );
  const issues = await problems(`{ "listen": `);
  assert.match(issues[0]!.message, /Cannot parse JSON at line 1/);
});

Deno.test("parseSize() reads bytes and binary units", () => {
  assert.equal(parseSize(2048), 2048);
  assert.equal(parseSize("512K"), 512 * 1024);
  assert.equal(parseSize("4MiB"), 4 * 1024 * 1024);
  assert.equal(parseSize("1gb"), 1024 ** 3);
  assert.throws(() => parseSize("lots"), RangeError);
});

Deno.test("schema/server.schema.json is generated from the config schema and up to date", async () => {
  assert.equal(await Deno.readTextFile(SERVER_SCHEMA_PATH), serverSchemaText());
});
