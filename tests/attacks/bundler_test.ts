/**
 * Attack group "bundler": the trusted side reads a program's imports before
 * the program runs (resolution, package installs, source maps, error text).
 * Every case here is refused before any sandbox starts, so the corpus
 * runner's in-sandbox batches do not fit; each test asserts the same three
 * things the runner does:
 *
 * 1. contained: the attempt is refused with a clear BundleError, and no host
 *    file, harness variable or cache path shows up in any output;
 * 2. healthy: the same sandbox then bundles and runs an honest program that
 *    imports an allowed package;
 * 3. audited: the sandbox's trail holds an `import-refused` event naming the
 *    specifier (or the case says why there is none).
 *
 * The package cache is built here, offline, in the layout `deno install`
 * leaves (`<install>/node_modules/.deno/<name>@<version>/node_modules/<name>`),
 * with the attacker's tricks planted in it: links out of a package, `main`
 * fields naming host files, imports that walk into another install.
 * Installs that would need the registry are pointed at a dead one.
 *
 * @module
 */

import assert from "node:assert/strict";
import { BundleError, Sandbox } from "../../mod.ts";
import type { AuditEvent } from "../../mod.ts";
import { ENV_CANARY, ENV_CANARY_NAME, findCanaries } from "./_corpus.ts";
import { bundlerSandbox } from "../../harness/bundle/_process.ts";
import { installerSandbox } from "../../harness/bundle/_npm_installer.ts";
import {
  HELPER_DENO,
  helperCommand,
  helperIdentity,
} from "../../harness/bundle/_sandbox.ts";
import { printable } from "../../audit/render_text.ts";

// ---------------------------------------------------------------------------
// Fixtures

const HOST_SECRET = `bundler-host-secret-${crypto.randomUUID()}`;
const hostDir = await Deno.makeTempDir({ prefix: "airlock-bun-host-" });
await Deno.chmod(hostDir, 0o755);
const hostSecretFile = `${hostDir}/secret.txt`;
await Deno.writeTextFile(hostSecretFile, `${HOST_SECRET}\n${ENV_CANARY}\n`);

const cacheDir = await Deno.makeTempDir({ prefix: "airlock-bun-cache-" });

/** A cached install of `name@version`, as `deno install` lays it out. */
async function plant(
  name: string,
  version: string,
  files: Record<string, string | { link: string }>,
): Promise<string> {
  const install = `${cacheDir}/${name}@${version}`;
  const store = `node_modules/.deno/${name}@${version}/node_modules/${name}`;
  const root = `${install}/${store}`;
  await Deno.mkdir(root, { recursive: true });
  await Deno.symlink(
    `.deno/${name}@${version}/node_modules/${name}`,
    `${install}/node_modules/${name}`,
  );
  const all: Record<string, string | { link: string }> = {
    "package.json": JSON.stringify({ name, version, main: "index.js" }),
    ...files,
  };
  for (const [path, content] of Object.entries(all)) {
    await Deno.mkdir(`${root}/${path}`.replace(/\/[^/]+$/, ""), {
      recursive: true,
    });
    if (typeof content === "string") {
      await Deno.writeTextFile(`${root}/${path}`, content);
    } else {
      await Deno.symlink(content.link, `${root}/${path}`);
    }
  }
  await Deno.writeTextFile(`${install}/.airlock-installed`, "test");
  return root;
}

const otherRoot = await plant("other", "1.0.0", {
  "index.js": 'export const x = "other";',
});
await plant("evil", "1.0.0", {
  "index.js": "export const ok = 1;",
  "throws.js":
    'export function boom() { throw new Error("boom from the package"); }',
  "dir/inner.js": 'export const inner = "inner";',
  // A dependency bundled inside the package (its own node_modules).
  "node_modules/nested/package.json": JSON.stringify({
    name: "nested",
    version: "0.1.0",
    main: "index.js",
  }),
  "node_modules/nested/index.js": 'export const y = "nested";',
  "uses-nested.js": 'export { y } from "nested";',
  "nested-escape.js": 'export { ok } from "nested/../../index.js";',
  // Links planted in the package (a tarball or a tampered cache).
  "link-host.txt": { link: hostSecretFile },
  "link-environ.txt": { link: "/proc/self/environ" },
  "link-other.js": { link: `${otherRoot}/index.js` },
  "link-root": { link: "/" },
  // Imports made by package files that walk out of the package.
  "escape-rel.js":
    'export { x } from "../../../../../../other@1.0.0/node_modules/other/index.js";',
  "escape-abs.js": `import s from ${
    JSON.stringify(hostSecretFile)
  } with { type: "text" }; export { s };`,
  "escape-bare.js": 'export { x } from "evil/../other/index.js";',
  "escape-link.js":
    'import s from "./link-host.txt" with { type: "text" }; export { s };',
});
await plant("mainout", "1.0.0", {
  // `main` and `exports` name files outside the package.
  "package.json": JSON.stringify({
    name: "mainout",
    version: "1.0.0",
    main: "../../../../../../../../../../../proc/self/environ",
  }),
});
await plant("exportsout", "1.0.0", {
  "package.json": JSON.stringify({
    name: "exportsout",
    version: "1.0.0",
    exports: { ".": "./index.js", "./secret": "./link.txt" },
  }),
  "index.js": "export default 1;",
  "link.txt": { link: hostSecretFile },
});

await plant("optional", "1.0.0", {
  // debug's supports-color, ws's bufferutil: a package that works without
  // an optional dependency requires it inside try/catch.
  "index.js": `let found;
try { found = require("absent-optional-dep"); } catch (e) { found = "absent: " + e.name; }
module.exports = { found };`,
  "hard.js": 'module.exports = require("absent-hard-dep");',
  "relative.js": `let found;
try { found = require("./missing-file.js"); } catch (e) { found = "absent"; }
try { found = require("../../../../../../other@1.0.0/node_modules/other/index.js"); } catch (e) { found = "absent"; }
module.exports = { found };`,
});

function cacheListing(): string[] {
  return [...Deno.readDirSync(cacheDir)].map((e) => e.name).sort();
}
const CACHE_BEFORE = cacheListing();

const POLICY = {
  npm: {
    allow: ["evil@^1.0.0", "other", "mainout", "exportsout", "optional"],
  },
};

async function sandbox(policy = POLICY) {
  return await Sandbox.create({ policy, npmCacheDir: cacheDir });
}

/** Every string a case must never let through. */
const FORBIDDEN = [HOST_SECRET, cacheDir];

function assertClean(label: string, text: string): void {
  for (const needle of FORBIDDEN) {
    assert.ok(!text.includes(needle), `${label}: leaked '${needle}'`);
  }
  assert.deepEqual(findCanaries(text), [], `${label}: canary leaked`);
}

/** Runs `code`, expecting a BundleError; returns it and new audit events. */
async function refusedRun(
  box: Sandbox,
  code: string,
): Promise<{ error: BundleError; audit: AuditEvent[] }> {
  const before = box.auditTrail.length;
  let caught: unknown;
  try {
    const result = await box.run({ code });
    assert.fail(
      `expected a BundleError, the program ran: ${
        result.stdout + result.stderr
      }`,
    );
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof BundleError, String(caught));
  assertClean(code, caught.message);
  assertClean(code, JSON.stringify(caught.problems));
  const audit = box.auditTrail.slice(before);
  assertClean(code, JSON.stringify(audit));
  return { error: caught, audit };
}

function refusalsOf(audit: AuditEvent[]): Record<string, unknown>[] {
  return audit.filter((e) => e.kind === "import-refused") as Record<
    string,
    unknown
  >[];
}

/** Health: the same sandbox still bundles and runs an allowed package. */
async function assertHealthy(box: Sandbox): Promise<void> {
  const result = await box.run({
    code:
      'import { ok } from "evil"; import { inner } from "evil/dir/inner.js";\n' +
      "console.log(ok, inner);",
  });
  assert.equal(result.stdout, "1 inner\n", result.stderr);
  assert.deepEqual(cacheListing(), CACHE_BEFORE, "the cache did not change");
}

// ---------------------------------------------------------------------------
// Cases

Deno.test("bun-001 [bundler] a package path walking out of its package is refused before resolution, and audited", async () => {
  await using box = await sandbox();
  const specs = [
    `evil/../../../../../../../../..${hostSecretFile}`,
    "npm:evil@^1.0.0/../../../../../other@1.0.0/node_modules/other/index.js",
    "npm:/evil@1/../other/index.js",
    "evil/dir/../../../other/index.js",
    "evil/./index.js",
    "evil//index.js",
    "evil/dir/..",
    "evil/dir\\..\\..\\x.js",
  ];
  for (const spec of specs) {
    const { error, audit } = await refusedRun(
      box,
      `import s from ${JSON.stringify(spec)} with { type: "text" };\n` +
        "console.log(s);",
    );
    assert.match(error.message, /may not contain '\.', '\.\.' or empty/, spec);
    const [event] = refusalsOf(audit);
    assert.equal(event?.specifier, spec);
    assert.equal(event?.importer, "main.ts");
  }
  await assertHealthy(box);
});

Deno.test("bun-002 [bundler] a link in a cached package pointing out of it is refused by real path, with type text too", async () => {
  await using box = await sandbox();
  const cases: [string, RegExp][] = [
    // To a host file: the bundler's sandbox does not even have it.
    ["evil/link-host.txt", /outside every installed package/],
    // To another install in the same cache.
    [
      "evil/link-other.js",
      /outside every installed package|outside the package 'evil'/,
    ],
    // To the root of the bundler's own filesystem.
    ["evil/link-root/proc/self/environ", /outside every installed package/],
  ];
  for (const [spec, reason] of cases) {
    const { error, audit } = await refusedRun(
      box,
      `import s from ${JSON.stringify(spec)} with { type: "text" };\n` +
        "console.log(s);",
    );
    assert.match(error.message, reason, spec);
    assert.equal(refusalsOf(audit)[0]?.specifier, spec, spec);
  }
  // Through exports: a link to a host file behind a valid-looking subpath.
  // audit: none, because the wall held before any check could run: the
  // bundler's sandbox has no such file, so esbuild finds nothing to load.
  const hidden = await refusedRun(
    box,
    'import s from "exportsout/secret" with { type: "text" }; console.log(s);',
  );
  assert.match(hidden.error.message, /Could not resolve "exportsout\/secret"/);
  await assertHealthy(box);
});

Deno.test("bun-003 [bundler] package files cannot import out of their package: relative, absolute, bare with '..', or through a link", async () => {
  await using box = await sandbox();
  const cases: [string, string, RegExp][] = [
    ["escape-rel.js", "../../../../../../other@1.0.0/", /another install/],
    ["escape-abs.js", hostSecretFile, /may not import an absolute path/],
    [
      "escape-bare.js",
      "evil/../other/index.js",
      /may not contain '\.', '\.\.'/,
    ],
    ["escape-link.js", "./link-host.txt", /outside every installed package/],
    ["nested-escape.js", "nested/../../index.js", /may not contain/],
  ];
  for (const [file, specPart, reason] of cases) {
    const { error, audit } = await refusedRun(
      box,
      `import * as m from "evil/${file}"; console.log(m);`,
    );
    assert.match(error.message, reason, `${file}: ${error.message}`);
    const event = refusalsOf(audit)[0];
    assert.ok(String(event?.specifier).includes(specPart), file);
    // The importer is named as the program sees packages, not by cache path.
    assert.equal(event?.importer, `npm:evil@1.0.0/${file}`);
  }
  // Control: a dependency nested in the package is a package of its own.
  const nested = await box.run({
    code: 'import { y } from "evil/uses-nested.js"; console.log(y);',
  });
  assert.equal(nested.stdout, "nested\n", nested.stderr);
  await assertHealthy(box);
});

Deno.test("bun-004 [bundler] /proc/self/environ through a package (link or main field) is refused; the harness's variables never appear", async () => {
  assert.equal(Deno.env.get(ENV_CANARY_NAME), ENV_CANARY, "control: set");
  await using box = await sandbox();
  for (
    const code of [
      'import s from "evil/link-environ.txt" with { type: "text" }; console.log(s);',
      'import s from "mainout" with { type: "text" }; console.log(s);',
      'const s = await import("mainout"); console.log(s);',
      'import s from "/proc/self/environ" with { type: "text" }; console.log(s);',
    ]
  ) {
    const { error, audit } = await refusedRun(box, code);
    assert.match(
      error.message,
      /outside every installed package|Cannot find|Cannot resolve/,
    );
    if (!code.includes('"/proc')) {
      assert.equal(refusalsOf(audit).length, 1, code);
    }
  }
  await assertHealthy(box);
});

Deno.test("bun-005 [bundler] a program's version range outside the policy's is refused naming both; nothing is installed", async () => {
  await using box = await sandbox();
  for (
    const range of ["0.9.0", ">=0.1.0", "*", "1 || 2", "^2.0.0", "<1.0.0"]
  ) {
    const spec = `npm:evil@${range}`;
    const { error, audit } = await refusedRun(
      box,
      `import * as m from ${JSON.stringify(spec)}; console.log(m);`,
    );
    assert.ok(
      error.message.includes(`'evil@${range}'`) &&
        error.message.includes("'evil@^1.0.0'"),
      error.message,
    );
    assert.equal(refusalsOf(audit)[0]?.specifier, spec);
  }
  // A tag is no range: refused, not looked up.
  const tag = await refusedRun(box, 'import * as m from "npm:evil@latest"; m;');
  assert.match(tag.error.message, /not a semver range/);
  // Inside the ceiling: served from the cache.
  const ok = await box.run({
    code: 'import { ok } from "npm:evil@~1.0.0"; console.log(ok);',
  });
  assert.equal(ok.stdout, "1\n", ok.stderr);
  await assertHealthy(box);
});

Deno.test("bun-006 [bundler] many ranges for one package create no installs: any cached version that satisfies one is used", async () => {
  const previous = Deno.env.get("NPM_CONFIG_REGISTRY");
  // Any install attempt goes to a dead registry and fails loudly.
  Deno.env.set("NPM_CONFIG_REGISTRY", "http://127.0.0.1:9/");
  try {
    await using box = await sandbox({
      npm: { allow: ["evil@^1.0.0", "other"] },
    });
    const ranges = [
      "^1.0.0",
      "~1.0.0",
      "1.0.0",
      "1.0.x",
      "1.x",
      "1",
      ">=1.0.0 <1.0.1",
      "=1.0.0",
      "v1.0.0",
      "1.0.0 - 1.0.0",
      "^1",
      "~1",
      ">=1.0.0 <2.0.0-0",
    ];
    const code = ranges.map((r, i) =>
      `import { ok as ok${i} } from "npm:evil@${r}";`
    ).join("\n") + `\nconsole.log(${
      ranges.map((_, i) => `ok${i}`).join("+")
    });`;
    const result = await box.run({ code });
    assert.equal(result.stdout, `${ranges.length}\n`, result.stderr);
    assert.deepEqual(cacheListing(), CACHE_BEFORE);
    // Unpinned packages resolve to what is cached too.
    const other = await box.run({
      code: 'import { x } from "other"; console.log(x);',
    });
    assert.equal(other.stdout, "other\n", other.stderr);
    // A range inside the ceiling that nothing cached satisfies needs an
    // install: it fails (dead registry) and leaves nothing behind.
    const { error } = await refusedRun(
      box,
      'import * as m from "npm:evil@^1.5.0"; console.log(m);',
    );
    assert.match(error.message, /Cannot install npm package 'evil@/);
    assert.deepEqual(cacheListing(), CACHE_BEFORE, "no staging left behind");
    await assertHealthy(box);
  } finally {
    if (previous === undefined) Deno.env.delete("NPM_CONFIG_REGISTRY");
    else Deno.env.set("NPM_CONFIG_REGISTRY", previous);
  }
});

Deno.test("bun-013 [bundler] a program asking for many uncached versions gets a bounded number of install attempts, then refusals", async () => {
  const previous = Deno.env.get("NPM_CONFIG_REGISTRY");
  // Every install attempt fails fast against a dead registry.
  Deno.env.set("NPM_CONFIG_REGISTRY", "http://127.0.0.1:9/");
  try {
    // No range in the policy: any version is allowed, none but 1.0.0 cached.
    await using box = await sandbox({ npm: { allow: ["evil", "other"] } });
    const versions = Array.from({ length: 24 }, (_, i) => `0.0.${i + 1}`);
    const code = versions.map((v, i) =>
      `import * as m${i} from "npm:evil@${v}";`
    ).join("\n") + `\nconsole.log(${
      versions.map((_, i) => `m${i}`).join(",")
    });`;
    const { error, audit } = await refusedRun(box, code);
    const budget = error.problems.filter((p) =>
      /more than \d+ new package installs in one bundle/.test(p.message)
    );
    const failedInstalls = error.problems.filter((p) =>
      /Cannot install npm package/.test(p.message)
    );
    assert.equal(budget.length + failedInstalls.length, versions.length);
    assert.ok(budget.length >= versions.length - 16, error.message);
    assert.ok(failedInstalls.length <= 16, error.message);
    assert.equal(refusalsOf(audit).length, budget.length);
    assert.deepEqual(cacheListing(), CACHE_BEFORE, "nothing persisted");
    await assertHealthy(box);
  } finally {
    if (previous === undefined) Deno.env.delete("NPM_CONFIG_REGISTRY");
    else Deno.env.set("NPM_CONFIG_REGISTRY", previous);
  }
});

/** Runs a Deno probe in a helper sandbox; returns its JSON report. */
async function probe(
  sandbox: Awaited<ReturnType<typeof bundlerSandbox>>,
  script: string,
): Promise<Record<string, unknown>> {
  const { command, args, ...ids } = await helperCommand({
    ...sandbox,
    // One line: bwrap's argv builder refuses line breaks.
    command: [HELPER_DENO, "eval", "--quiet", script.replaceAll("\n", " ")],
  });
  const out = await new Deno.Command(command, {
    args,
    ...ids,
    cwd: "/",
    clearEnv: true,
    env: {},
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  assertClean("probe", text);
  return JSON.parse(text);
}

const PROBE = (port: number) => `
const report = {};
const attempt = async (name, fn) => {
  try { report[name] = { ok: true, value: await fn() }; }
  catch (e) { report[name] = { ok: false, error: e.name }; }
};
await attempt("secret", () => Deno.readTextFile(${
  JSON.stringify(hostSecretFile)
}));
await attempt("shadow", () => Deno.readTextFile("/etc/shadow"));
await attempt("home", () => Deno.readDir("/root").next());
await attempt("environ", () => Deno.readTextFile("/proc/self/environ"));
await attempt("net", async () => {
  const c = await Deno.connect({ hostname: "127.0.0.1", port: ${port} });
  c.close(); return "connected";
});
await attempt("write", () => Deno.writeTextFile("/npm-write-test", "x"));
report.env = Deno.env.toObject();
report.root = [...Deno.readDirSync("/")].map((e) => e.name).sort();
report.interfaces = Deno.networkInterfaces().map((i) => i.name);
console.log(JSON.stringify(report));
`;

Deno.test("bun-007 [bundler] the bundler's sandbox has no host file, no network, no harness variable (probed from inside)", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  const serving = (async () => {
    for await (const conn of listener) {
      accepted++;
      conn.close();
    }
  })().catch(() => {});
  // The worker's own uid (when the harness is root), as in production.
  const identity = helperIdentity();
  try {
    const report = await probe(
      await bundlerSandbox(cacheDir, identity),
      PROBE(listener.addr.port),
    );
    for (const name of ["secret", "shadow", "home", "net", "write"]) {
      assert.equal((report[name] as { ok: boolean }).ok, false, name);
    }
    // Its environment is the one bundlerSandbox sets: nothing of ours.
    const env = report.env as Record<string, string>;
    assert.equal(env[ENV_CANARY_NAME], undefined);
    assert.equal(env.PATH?.includes("/usr/local"), false);
    assert.deepEqual(
      report.root,
      ["dev", "lib", "lib64", "npm", "opt", "proc", "tmp", "usr"].filter((d) =>
        (report.root as string[]).includes(d)
      ),
      `unexpected top-level entries: ${report.root}`,
    );
    assert.ok(!(report.root as string[]).includes("etc"));
    assert.ok(!(report.root as string[]).includes("root"));
    // Only loopback (IPv4 and IPv6 entries), when Deno lists any at all.
    assert.deepEqual(
      [...new Set(report.interfaces as string[])].filter((i) => i !== "lo"),
      [],
    );
    assert.equal(accepted, 0, "no connection reached the host listener");
  } finally {
    identity.release();
    listener.close();
    await serving;
  }
});

Deno.test("bun-008 [bundler] the installer's sandbox writes only its staging directory and sees no host secret or harness variable", async () => {
  const staging = await Deno.makeTempDir({ prefix: "airlock-bun-staging-" });
  const identity = helperIdentity();
  try {
    // As installInSandbox does: the installer's own uid owns the staging.
    if (identity.hostUid !== null) {
      await Deno.chown(staging, identity.hostUid, identity.hostGid);
    }
    const sandbox = await installerSandbox(staging, [], identity);
    assert.equal(sandbox.network, "host", "it must reach the registry");
    const report = await probe(
      sandbox,
      PROBE(9) + `
      await Deno.writeTextFile("/install/ok.txt", "written");
    `,
    );
    for (const name of ["secret", "shadow", "home", "write"]) {
      assert.equal((report[name] as { ok: boolean }).ok, false, name);
    }
    const env = report.env as Record<string, string>;
    assert.equal(env[ENV_CANARY_NAME], undefined);
    assert.equal(env.HOME, "/install");
    // Control: the staging directory is writable, and it is the host's.
    assert.equal(await Deno.readTextFile(`${staging}/ok.txt`), "written");
    const root = report.root as string[];
    assert.ok(!root.includes("root") && !root.includes("home"), `${root}`);
  } finally {
    identity.release();
    await Deno.remove(staging, { recursive: true });
  }
});

Deno.test("bun-009 [bundler] the running bundler process holds none of the harness's environment", async () => {
  await using box = await sandbox();
  await box.run({ code: 'import { ok } from "evil"; console.log(ok);' });
  // The worker: a deno process whose command line names the worker file.
  const workers: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      if (
        cmdline.startsWith("/usr/bin/deno\0run") &&
        cmdline.includes("/opt/airlock/worker.ts")
      ) workers.push(Number(entry.name));
    } catch { /* gone */ }
  }
  assert.ok(workers.length > 0, "control: the worker is running");
  for (const pid of workers) {
    // A root harness runs its helpers as uids of their own, like sandboxes.
    if (Deno.uid() === 0) {
      let status = "";
      try {
        status = Deno.readTextFileSync(`/proc/${pid}/status`);
      } catch {
        continue; // exited
      }
      const uid = Number(status.match(/^Uid:\s+(\d+)/m)?.[1]);
      assert.ok(uid >= 1000, `the worker runs as host uid ${uid}`);
    }
    let environ: string;
    try {
      environ = Deno.readTextFileSync(`/proc/${pid}/environ`);
    } catch {
      continue; // exited (another test file's worker stopping)
    }
    assert.ok(!environ.includes(ENV_CANARY), "no harness variable");
    const names = environ.split("\0").filter(Boolean).map((v) =>
      v.slice(0, v.indexOf("="))
    ).sort();
    assert.deepEqual(
      names.filter((n) =>
        ![
          "DENO_DIR",
          "DENO_NO_UPDATE_CHECK",
          "NO_COLOR",
          "HOME",
          "PWD", // bwrap's --chdir sets it: "/"
          "ESBUILD_BINARY_PATH",
        ].includes(n)
      ),
      [],
    );
  }
});

Deno.test("bun-010 [bundler] control characters in specifiers and file names are escaped in errors and in the CLI's output", async () => {
  await using box = await sandbox();
  const nasty = [
    "./\x1b]0;pwned\x07\x1b[2J.ts",
    "npm:evil\u202e@1",
    "\x9b31mred",
    "evil/\x1b[31m",
  ];
  for (const spec of nasty) {
    const { error, audit } = await refusedRun(
      box,
      `import x from ${JSON.stringify(spec)}; console.log(x);`,
    );
    // Line breaks are the message's own layout; nothing else is raw.
    const lines = error.message.replaceAll("\n", "");
    assert.equal(printable(lines), lines, "printable");
    for (const p of error.problems) {
      assert.equal(printable(p.message), p.message);
    }
    // The audit record keeps the raw value (renderers escape it).
    if (refusalsOf(audit).length > 0) {
      assert.equal(refusalsOf(audit)[0]?.specifier, spec);
    }
  }
  const names = await refusedRun(box, "1").catch(() => null);
  assert.equal(names, null, "control: plain code runs");
  await assertHealthy(box);

  // Through the CLI: the terminal never receives the raw sequence.
  const dir = await Deno.makeTempDir({ prefix: "airlock-bun-cli-" });
  try {
    await Deno.writeTextFile(
      `${dir}/main.ts`,
      `import x from "./\x1b]0;pwned\x07\x1b[2J\u202e.ts"; console.log(x);`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../../cli/run.ts", import.meta.url).pathname,
        `${dir}/main.ts`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.notEqual(out.code, 0);
    assert.match(stderr, /Cannot find '\.\/\\x1b\]0;pwned\\x07/);
    // deno-lint-ignore no-control-regex -- the raw bytes are the point
    assert.doesNotMatch(stderr, /[\x1b\x07\u202e]/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bun-011 [bundler] a package's stack trace names npm:pkg@version/file, never the host's package cache", async () => {
  await using box = await sandbox();
  const result = await box.run({
    code: 'import { boom } from "evil/throws.js"; boom();',
  });
  assert.notEqual(result.exitCode, 0);
  assert.match(result.stderr, /boom from the package/);
  assert.match(result.stderr, /npm:evil@1\.0\.0\/throws\.js/, result.stderr);
  assertClean("stderr", result.stderr);
  assert.doesNotMatch(result.stderr, /\/npm\/|node_modules/);
});

Deno.test("bun-012 [bundler] without npm.allow, or with npm turned off by the operator, packages never reach the bundler", async () => {
  await using plain = await Sandbox.create({ npmCacheDir: cacheDir });
  const { audit } = await refusedRun(
    plain,
    'import { ok } from "evil"; console.log(ok);',
  );
  assert.equal(refusalsOf(audit)[0]?.specifier, "evil");
  await assert.rejects(
    () => Sandbox.create({ policy: POLICY, allowNpm: false }),
    /npm packages are turned off/,
  );
  const ok = await plain.run({ code: "console.log(1 + 1);" });
  assert.equal(ok.stdout, "2\n");
});

Deno.test("bun-014 [bundler] a package's optional require of an absent package inside try/catch bundles and throws at run time; outside try, and a relative path, are still refused", async () => {
  await using box = await sandbox();
  const ok = await box.run({
    code: 'import m from "optional"; console.log(JSON.stringify(m));',
  });
  assert.equal(ok.exitCode, 0, ok.stderr);
  // The require ran in the sandbox and found nothing: no package is on its
  // disk, and reading one would be refused anyway.
  assert.match(ok.stdout, /"found":"absent: \w+"/, ok.stderr);
  assertClean("stdout", ok.stdout + ok.stderr);
  const hard = await refusedRun(
    box,
    'import m from "optional/hard.js"; console.log(m);',
  );
  assert.match(hard.error.message, /absent-hard-dep/);
  // A relative require is never left for run time, in try or not: it names
  // a file of the package, or a walk out of it.
  const relative = await refusedRun(
    box,
    'import m from "optional/relative.js"; console.log(m);',
  );
  assert.match(relative.error.message, /missing-file\.js|another install/);
  await assertHealthy(box);
});

if (!Deno.env.get("BUN_KEEP")) {
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(cacheDir, { recursive: true });
      Deno.removeSync(hostDir, { recursive: true });
    } catch { /* gone */ }
  });
}
