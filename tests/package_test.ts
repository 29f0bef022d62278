/**
 * The package as a new user meets it, outside this checkout: what `deno
 * publish` would ship, the library imported from a separate project (the
 * deno.json `links` form, offline), and the `airlock` command installed
 * with `deno install` into a temporary root (the README's flags, from this
 * checkout instead of JSR) and run from another directory.
 */

import assert from "node:assert/strict";
import config from "../deno.json" with { type: "json" };

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const ENV = { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" };
const decoder = new TextDecoder();

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

async function command(
  program: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<Output> {
  const out = await new Deno.Command(program, {
    args,
    cwd: options.cwd,
    env: { ...ENV, ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

const deno = (args: string[], cwd: string, env?: Record<string, string>) =>
  command(Deno.execPath(), args, { cwd, ...(env ? { env } : {}) });

/** A world-readable temp dir holding `files` (sandbox uids read inputs). */
async function tempDir(
  prefix: string,
  files: Record<string, string> = {},
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  await Deno.chmod(dir, 0o755);
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text, { mode: 0o644 });
  }
  return dir;
}

Deno.test("package: deno publish --dry-run passes without --allow-slow-types, shipping library, CLI, server, schemas and LICENSE, not tests, benchmarks, test kits or examples", async () => {
  const { code, stdout, stderr } = await deno(
    ["publish", "--dry-run", "--allow-dirty"],
    ROOT,
  );
  const text = stdout + stderr;
  assert.equal(code, 0, text);
  assert.doesNotMatch(text, /slow-type|missing-license|missing-explicit/);
  const files = [...text.matchAll(/file:\/\/\/\S+/g)]
    .map((m) => m[0].slice(`file://${ROOT}/`.length));
  for (
    const shipped of [
      "LICENSE",
      "README.md",
      "mod.ts",
      "cli/mod.ts",
      "cli/run.ts",
      "http/client.ts",
      "http/serve.ts",
      "deno_sandbox/mod.ts",
      "audit/mod.ts",
      "schema/policy.schema.json",
      "schema/server.schema.json",
      // `airlock demo` runs it, so it ships; the other examples do not.
      "examples/demo/demo.ts",
      "examples/demo/logs/api-error.log",
    ]
  ) {
    assert.ok(files.includes(shipped), `${shipped} not shipped:\n${text}`);
  }
  for (const file of files) {
    assert.doesNotMatch(file, /_test\.ts$|^tests\/|^bench\//, file);
    if (file.startsWith("examples/")) {
      assert.match(file, /^examples\/demo\//, file);
    }
  }
  // Every export points at a shipped module.
  for (const [name, path] of Object.entries(config.exports)) {
    assert.ok(files.includes(path.replace(/^\.\//, "")), `${name} -> ${path}`);
  }
});

Deno.test("package: a separate project imports every export through deno.json links and runs a sandbox", async () => {
  const project = await tempDir("airlock-user-project-", {
    "deno.json": JSON.stringify({
      links: [ROOT],
      imports: {
        "@airlock/airlock": `jsr:@airlock/airlock@^${config.version}`,
      },
    }),
    "main.ts": `
import { Sandbox } from "@airlock/airlock";
import { VERSION } from "@airlock/airlock/cli";
import { AirlockClient } from "@airlock/airlock/http";
import { Sandbox as CompatSandbox } from "@airlock/airlock/deno-sandbox";
import { auditText } from "@airlock/airlock/audit";

await using sandbox = await Sandbox.create();
const result = await sandbox.run({ code: "const n: number = 6 * 7; console.log(n);" });
const [finding] = auditText("deno run -A main.ts\\n", "run.sh");
console.log(JSON.stringify({
  stdout: result.stdout,
  version: VERSION,
  client: typeof AirlockClient,
  compat: typeof CompatSandbox.create,
  severity: finding?.severity,
}));
`,
  });
  try {
    const check = await deno(["check", "main.ts"], project);
    assert.equal(check.code, 0, check.stderr);
    const run = await deno(["run", "-A", "main.ts"], project);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), {
      stdout: "42\n",
      version: config.version,
      client: "function",
      compat: "function",
      severity: "critical",
    });
  } finally {
    await Deno.remove(project, { recursive: true });
  }
});

Deno.test("package: the installed airlock command runs from another directory, resolving paths there", async () => {
  const root = await tempDir("airlock-install-root-");
  const home = await tempDir("airlock-user-dir-", {
    "hello.ts": `const data = await Deno.readTextFile("/inputs/data.csv");
console.log("hello", data.trim());`,
    "data.csv": "a,b",
    "deno.json": JSON.stringify({
      tasks: { start: "deno run -A hello.ts" },
    }),
  });
  try {
    const install = await deno([
      "install",
      "-g",
      "-A",
      "--unstable-no-legacy-abort",
      "--root",
      root,
      "-n",
      "airlock",
      "--config",
      `${ROOT}/deno.json`,
      `${ROOT}/cli/mod.ts`,
    ], home);
    assert.equal(install.code, 0, install.stderr);
    const airlock = `${root}/bin/airlock`;
    const run = (...args: string[]) => command(airlock, args, { cwd: home });

    const version = await run("--version");
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, new RegExp(`^airlock ${config.version} `));

    // The program and the input are relative to the user's directory.
    const hello = await run("run", "--input", "./data.csv", "hello.ts");
    assert.equal(hello.code, 0, hello.stderr);
    assert.equal(hello.stdout, "hello a,b\n");

    // `audit-flags .` audits this directory, not airlock's own deno.json.
    const flags = await run("audit-flags", "--json", "--fail-on", "none", ".");
    assert.equal(flags.code, 0, flags.stderr);
    const findings: { file: string; command: string; severity: string }[] = JSON
      .parse(flags.stdout);
    assert.deepEqual(
      findings.map((f) => [f.file, f.command, f.severity]),
      [["deno.json", "deno run -A hello.ts", "critical"]],
    );

    for (
      const name of ["run", "audit", "audit-flags", "serve", "doctor", "demo"]
    ) {
      const help = await run(name, "--help");
      assert.equal(help.code, 0, `${name} --help: ${help.stderr}`);
      assert.ok(help.stdout.length > 100, `${name} --help is empty`);
    }
    const top = await run("--help");
    assert.equal(top.code, 0);
    for (
      const name of ["run", "audit", "audit-flags", "serve", "doctor", "demo"]
    ) {
      assert.match(top.stdout, new RegExp(`^  ${name} `, "m"));
    }
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("package: the installed airlock serve reads a config relative to its directory, answers the HTTP API and stops on SIGTERM", async () => {
  const root = await tempDir("airlock-install-root-");
  try {
    const install = await deno([
      "install",
      "-g",
      "-A",
      "--unstable-no-legacy-abort",
      "--root",
      root,
      "-n",
      "airlock",
      "--config",
      `${ROOT}/deno.json`,
      `${ROOT}/cli/mod.ts`,
    ], root);
    assert.equal(install.code, 0, install.stderr);
    await Deno.writeTextFile(
      `${root}/server.jsonc`,
      `{
  // what a sandbox created without a policy gets
  "listen": { "host": "127.0.0.1", "port": 0 },
  "defaultPolicy": { "limits": { "timeoutMs": 7000 } }
}`,
    );
    // An INIT_CWD inherited from an outer `deno task` (of the user's own
    // project, or this suite's) is not where the user stands.
    const check = await command(
      `${root}/bin/airlock`,
      ["serve", "--config", "server.jsonc", "--check"],
      { cwd: root, env: { INIT_CWD: ROOT } },
    );
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /the config is valid/);
    const child = new Deno.Command(`${root}/bin/airlock`, {
      args: ["serve", "--config", "server.jsonc"],
      cwd: root,
      env: ENV,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    try {
      let printed = "";
      while (!printed.includes("\n")) {
        const { done, value } = await lines.read();
        if (done) break;
        printed += value;
      }
      const url = printed.match(/listening on (http:\/\/\S+?)\/? /)?.[1];
      assert.ok(url, printed);
      const created = await fetch(`${url}/sandboxes`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      const { id, policy } = await created.json();
      assert.equal(policy.limits.timeoutMs, 7000, "the config's default");
      const ran = await fetch(`${url}/sandboxes/${id}/runs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ code: "console.log(1 + 1)" }),
      });
      assert.equal((await ran.json()).stdout, "2\n");
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await lines.cancel();
      await child.stderr.cancel();
      await child.status;
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("package: the README's install lines name this package, its version and every export", async () => {
  const readme = await Deno.readTextFile(`${ROOT}/README.md`);
  for (
    const line of [
      `deno install -g -A --unstable-no-legacy-abort -n airlock jsr:${config.name}/cli`,
      `deno add jsr:${config.name}`,
      `"links": ["../airlock"]`,
      `"imports": { "${config.name}": "jsr:${config.name}@^${config.version}" }`,
    ]
  ) {
    assert.ok(readme.includes(line), `README lacks: ${line}`);
  }
  for (const name of Object.keys(config.exports)) {
    const specifier = name === "."
      ? config.name
      : `${config.name}/${name.slice(2)}`;
    assert.ok(readme.includes(`\`${specifier}\``), `README lacks ${specifier}`);
  }
});
