import assert from "node:assert/strict";
import { atOrAbove, auditPath, auditText, sortFindings } from "./mod.ts";

const FIXTURE = new URL("../../tests/fixtures/risky_project", import.meta.url)
  .pathname;

/** Findings of one deno.json task, as `severity flag`. */
function rateTask(command: string): string[] {
  const text = JSON.stringify({ tasks: { t: command } });
  return auditText(text, "deno.json").map((f) => `${f.severity} ${f.flag}`);
}

async function tempProject(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-flags-audit-" });
  for (const [name, text] of Object.entries(files)) {
    const path = `${dir}/${name}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, text);
  }
  return dir;
}

Deno.test("auditPath() reports each risky pattern of the fixture project at its file, line and severity", async () => {
  const findings = await auditPath(FIXTURE);
  const got = findings.map((f) => `${f.file}:${f.line} ${f.severity} ${f.flag}`)
    .sort();
  const expected = [
    // deno.json tasks, at each task's key line.
    "deno.json:7 critical -A",
    "deno.json:8 high --allow-net",
    "deno.json:8 medium --allow-read=.",
    "deno.json:9 critical --allow-run=git,bash",
    "deno.json:13 high --allow-env",
    "deno.json:14 medium --allow-env=HOME,GITHUB_TOKEN",
    "deno.json:15 high --allow-read=~/.ssh,./data",
    "deno.json:16 info --allow-net=localhost:8000",
    "deno.json:17 high -R",
    "deno.json:18 high --allow-net",
    "deno.json:18 low (no --no-prompt)",
    "deno.json:19 high --allow-read",
    "deno.json:20 high --allow-write (from -P=build)",
    "deno.json:20 low --allow-read=./src (from -P=build)",
    // A literal program that calls no gated API: every permission, no harm.
    "deno.json:21 info deno eval",
    // deno.jsonc with comments and trailing commas, in a subfolder.
    "sub/deno.jsonc:5 critical --allow-ffi=./libsqlite.so",
    "sub/deno.jsonc:6 high --allow-write=./src,./out",
    "sub/deno.jsonc:7 medium --allow-import=jsr.io,evil.example.net",
    // #!/usr/bin/env -S deno run ...
    "bin/fetch.ts:1 low --allow-net=api.example.com",
    "bin/fetch.ts:1 medium --allow-sys",
    "bin/fetch.ts:1 low (no --no-prompt)",
    // Shell: continued lines, quoted values, chains, sh -c, combined shorts.
    "scripts/deploy.sh:5 low --allow-read=./dist",
    "scripts/deploy.sh:5 high --allow-write=$HOME/.cache/deploy",
    "scripts/deploy.sh:5 medium --allow-env=AWS_SECRET_ACCESS_KEY,AWS_REGION",
    "scripts/deploy.sh:10 critical --allow-run=curl",
    "scripts/deploy.sh:11 info --allow-hrtime",
    "scripts/deploy.sh:12 high -R (in -RW=./out)",
    "scripts/deploy.sh:12 low -W=./out (in -RW=./out)",
    // Makefile recipes with @ and - prefixes.
    "Makefile:5 medium --allow-import",
    "Makefile:8 critical --allow-ffi",
    "Makefile:8 medium --allow-foo",
    "Makefile:11 info --allow-net=127.0.0.1",
    "Makefile:11 low (no --no-prompt)",
    // package.json scripts; -P=ci resolves in the sibling deno.json.
    "package.json:5 low --allow-read=./data",
    "package.json:6 high --allow-scripts",
    "package.json:7 critical --allow-all (from -P=ci)",
    // GitHub workflow: plain, block scalar with continuations, quoted
    // scalar. No terminal in CI, so no --no-prompt note.
    ".github/workflows/ci.yml:7 critical -A",
    ".github/workflows/ci.yml:9 high --allow-net",
    ".github/workflows/ci.yml:9 high --allow-read=/etc/passwd",
    ".github/workflows/ci.yml:12 low --allow-write=/tmp/out",
    // Dockerfile: shell form and exec form.
    "Dockerfile:5 medium --allow-read=.",
    "Dockerfile:5 high --allow-write=.",
    "Dockerfile:6 info --allow-net=0.0.0.0:8000",
    // Markdown: the fenced block only.
    "README.md:7 high -R (in -RN)",
    "README.md:7 high -N (in -RN)",
  ].sort();
  assert.deepEqual(got, expected);
});

Deno.test("auditPath() puts the most severe findings first and commands in them as written", async () => {
  const findings = await auditPath(FIXTURE);
  assert.deepEqual(findings, sortFindings(findings));
  assert.equal(findings[0]!.severity, "critical");
  const deploy = findings.find((f) =>
    f.file === "scripts/deploy.sh" && f.line === 5
  );
  assert.equal(
    deploy?.command,
    'deno run --allow-read=./dist "--allow-write=$HOME/.cache/deploy" --allow-env=AWS_SECRET_ACCESS_KEY,AWS_REGION deploy.ts',
  );
});

Deno.test("auditPath() skips node_modules, .git, vendor and excluded paths, and takes one file", async () => {
  const risky = '{ "tasks": { "x": "deno run -A --no-prompt x.ts" } }';
  const dir = await tempProject({
    "deno.json": risky,
    "node_modules/pkg/deno.json": risky,
    ".git/hooks/deno.json": risky,
    "vendor/lib/deno.json": risky,
    "fixtures/deno.json": risky,
    ".github/deno.json": risky,
  });
  try {
    const files = (await auditPath(dir, { exclude: ["fixtures"] })).map((f) =>
      f.file
    );
    assert.deepEqual(files.sort(), [".github/deno.json", "deno.json"]);
    const one = await auditPath(`${dir}/fixtures/deno.json`);
    assert.deepEqual(one.map((f) => f.file), ["deno.json"]);
    // The path given is followed even when it is a link; links inside are not.
    await Deno.symlink(`${dir}/fixtures`, `${dir}/link`);
    assert.equal((await auditPath(`${dir}/link`)).length, 1);
    assert.equal((await auditPath(dir, { exclude: ["fixtures"] })).length, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("auditPath() finds nothing at or above low in a clean project", async () => {
  const dir = await tempProject({
    "deno.json": JSON.stringify({
      tasks: {
        start: "deno run --no-prompt main.ts",
        dev: "deno run --allow-net=localhost:8000 --no-prompt main.ts",
        test: "deno test --no-prompt",
        ok: "deno fmt --check && deno lint && deno task test",
      },
    }),
    "main.ts": "#!/usr/bin/env -S deno run --no-prompt\nconsole.log(1);\n",
    "README.md":
      "Run `deno run -A main.ts`? No:\n\n```sh\ndeno task start\n```\n",
    "ci.sh": "#!/bin/sh\ndeno --version && deno check main.ts\n",
  });
  try {
    const findings = await auditPath(dir);
    // The localhost grant is the one (info) finding: the audit did run.
    assert.deepEqual(findings.map((f) => `${f.severity} ${f.flag}`), [
      "info --allow-net=localhost:8000",
    ]);
    assert.ok(findings.every((f) => !atOrAbove(f.severity, "low")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("auditText() reports a missing --no-prompt only where a person runs the command in a terminal", () => {
  const noPrompt = (text: string, path: string) =>
    auditText(text, path).filter((f) => f.id === "no-prompt").length;
  assert.equal(
    noPrompt(`{ "tasks": { "t": "deno run x.ts" } }`, "deno.json"),
    1,
  );
  assert.equal(
    noPrompt(`{ "scripts": { "t": "deno test" } }`, "package.json"),
    1,
  );
  assert.equal(noPrompt("#!/usr/bin/env -S deno run\n", "tool.ts"), 1);
  assert.equal(noPrompt("run:\n\tdeno run x.ts\n", "Makefile"), 1);
  // Deno prompts only when stdin and stderr are terminals: never in CI, an
  // image build or a container.
  assert.equal(noPrompt("- run: deno serve x.ts", "ci.yml"), 0);
  assert.equal(noPrompt("CMD deno run x.ts", "Dockerfile"), 0);
  assert.equal(noPrompt("RUN deno run x.ts", "Dockerfile"), 0);
  assert.equal(noPrompt("deno run x.ts", ".github/scripts/release.sh"), 0);
  assert.equal(noPrompt("deno run x.ts", "ci/build.sh"), 0);
  assert.equal(noPrompt("DENO_NO_PROMPT=1 deno run x.ts", "Makefile"), 0);
  assert.equal(
    noPrompt(`{ "tasks": { "t": "deno run -A x.ts" } }`, "deno.json"),
    0,
  );
  assert.equal(
    noPrompt(`{ "tasks": { "t": "deno compile x.ts" } }`, "deno.json"),
    0,
  );
  assert.equal(noPrompt("deno run x.ts", "dev.sh"), 0);
  assert.equal(noPrompt("```\ndeno run x.ts\n```", "README.md"), 0);
  // The fix is the project's command with the flag added.
  const [finding] = auditText(
    `{ "tasks": { "t": "deno run --allow-net=localhost x.ts" } }`,
    "deno.json",
  ).filter((f) => f.id === "no-prompt");
  assert.equal(
    finding?.suggestion,
    "add --no-prompt so a missing grant fails fast: deno run --no-prompt --allow-net=localhost x.ts",
  );
});

Deno.test("auditText() rates deno eval by its code: literal and harmless is info, gated APIs medium, spawning high, built at run time critical", () => {
  // Deno 2.9 runs eval with every permission whatever its flags, so the
  // flags are not rated: the code is.
  assert.deepEqual(rateTask("deno eval --deny-run --allow-read=. 'x'"), [
    "info deno eval",
  ]);
  assert.deepEqual(rateTask("deno eval -p 1"), ["info deno eval"]);
  assert.deepEqual(rateTask(`deno eval "console.log(Deno.version.deno)"`), [
    "info deno eval",
  ]);
  assert.deepEqual(
    rateTask(`deno eval "console.log(await Deno.readTextFile('x'))"`),
    ["medium deno eval"],
  );
  assert.deepEqual(
    rateTask(`deno eval 'await fetch("https://example.com")'`),
    ["medium deno eval"],
  );
  assert.deepEqual(
    rateTask(`deno eval 'new Deno.Command("sh").spawn()'`),
    ["high deno eval"],
  );
  assert.deepEqual(rateTask(`deno eval 'await import("https://x.dev/a.ts")'`), [
    "high deno eval",
  ]);
  // Code the shell builds when the command runs is whatever that input is.
  assert.deepEqual(rateTask(`deno eval "$CODE"`), ["critical deno eval"]);
  assert.deepEqual(rateTask('deno eval "console.log($(cat x))"'), [
    "critical deno eval",
  ]);
  assert.deepEqual(rateTask("deno eval $(cat code.js)"), [
    "critical deno eval",
  ]);
  // A single-quoted $ is literal (and a template literal's ${} is JS).
  assert.deepEqual(rateTask("deno eval 'console.log(`${1 + 1}`)'"), [
    "info deno eval",
  ]);
  // In a Dockerfile's exec form nothing is expanded.
  const docker = auditText(
    'FROM denoland/deno:2.0.2\nCMD ["eval", "console.log(\'$HOME\')"]\n',
    "Dockerfile",
  );
  assert.deepEqual(docker.map((f) => `${f.severity} ${f.id} ${f.line}`), [
    "info deno-eval 2",
  ]);
});

Deno.test("auditPath() of one file reads the script beside it, as for its directory, never through a link or outside", async () => {
  const server = "Deno.serve({ port: 7000 }, () => new Response(''));";
  const dockerfile =
    'FROM denoland/deno\nCMD ["run", "--allow-net", "main.ts"]\n';
  const dir = await tempProject({
    "app/Dockerfile": dockerfile,
    "app/main.ts": server,
    "app/linked/Dockerfile": dockerfile,
    "elsewhere/main.ts": server,
  });
  try {
    const fix = async (path: string) =>
      (await auditPath(path)).find((f) => f.flag === "--allow-net")
        ?.suggestion;
    const listens = /--allow-net=0\.0\.0\.0:7000/;
    assert.match((await fix(`${dir}/app/Dockerfile`))!, listens);
    assert.match((await fix(`${dir}/app`))!, listens, "as for its directory");
    // Attack: a link beside the audited file, to a file outside the
    // project, must not make the audit read it.
    await Deno.symlink(`${dir}/elsewhere/main.ts`, `${dir}/app/linked/main.ts`);
    assert.doesNotMatch((await fix(`${dir}/app/linked/Dockerfile`))!, listens);
    // Control: the same file there, not a link, is read.
    await Deno.remove(`${dir}/app/linked/main.ts`);
    await Deno.writeTextFile(`${dir}/app/linked/main.ts`, server);
    assert.match((await fix(`${dir}/app/linked/Dockerfile`))!, listens);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
