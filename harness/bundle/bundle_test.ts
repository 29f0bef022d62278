import assert from "node:assert/strict";
import {
  BundleError,
  bundleProgram,
  type ProgramSource,
  stopBundler,
} from "./bundle.ts";
import { bundlerFor, BundlerProcess } from "./_process.ts";

/** Imports bundled JS as a module (the bundle must stand on its own). */
async function load(js: string): Promise<Record<string, unknown>> {
  const bytes = new TextEncoder().encode(js);
  const base64 = btoa(
    Array.from(bytes, (b) => String.fromCharCode(b)).join(""),
  );
  return await import(`data:text/javascript;base64,${base64}`);
}

/** Expects `source` to be refused; returns the error. */
async function refused(source: ProgramSource): Promise<BundleError> {
  try {
    await bundleProgram(source);
  } catch (error) {
    assert.ok(error instanceof BundleError, String(error));
    return error;
  }
  assert.fail("expected a BundleError");
}

/**
 * A program tree on disk:
 * top/outside.ts, top/secret.txt, top/prog/{main,lib}.ts, top/prog/sub/deep.ts
 */
async function programTree(): Promise<string> {
  const top = await Deno.makeTempDir({ prefix: "airlock-bundle-" });
  await Deno.mkdir(`${top}/prog/sub`, { recursive: true });
  await Deno.writeTextFile(
    `${top}/outside.ts`,
    'export const where = "outside";',
  );
  await Deno.writeTextFile(`${top}/secret.txt`, "host secret");
  await Deno.writeTextFile(
    `${top}/prog/lib.ts`,
    "export const double = (n: number): number => n * 2;",
  );
  await Deno.writeTextFile(
    `${top}/prog/sub/deep.ts`,
    'import { double } from "../lib.ts"; export const four = double(2);',
  );
  await Deno.writeTextFile(
    `${top}/prog/main.ts`,
    'import { four } from "./sub/deep.ts"; export const result = four + 1;',
  );
  return top;
}

Deno.test("bundleProgram() compiles TypeScript to plain JavaScript", async () => {
  const js = await bundleProgram({
    code: "const n: number = 41;\nexport const answer = n + 1;\n" +
      "interface Unused { a: string }\nenum Color { Red }\nexport const red = Color.Red;",
  });
  assert.doesNotMatch(js, /: number/);
  assert.doesNotMatch(js, /interface/);
  assert.match(js, /sourceMappingURL=data:application\/json/);
  const mod = await load(js);
  assert.equal(mod.answer, 42);
  assert.equal(mod.red, 0);
});

Deno.test("bundleProgram() bundles files and an entry with relative imports", async () => {
  const js = await bundleProgram({
    files: {
      "main.ts": 'import { add } from "./lib/math.ts";\n' +
        'import { name } from "./lib";\n' +
        'import data from "./data.json";\n' +
        "export const result = `${name}:${add(2, 3)}:${data.n}`;",
      "lib/math.ts": "export const add = (a: number, b: number) => a + b;",
      "lib/index.ts": 'export const name = "lib";',
      "data.json": '{ "n": 7 }',
      "unused.ts": "throw new Error('never imported');",
    },
    entry: "main.ts",
  });
  assert.doesNotMatch(js, /never imported/);
  assert.equal((await load(js)).result, "lib:5:7");
  // No import statement is left for the sandbox to resolve.
  assert.doesNotMatch(js, /^\s*import\s/m);
});

Deno.test("bundleProgram() refuses npm:, jsr:, URL and bare imports, naming the specifier", async () => {
  const cases: [string, RegExp][] = [
    ["npm:left-pad@1.3.0", /npm packages need the policy.s npm allowlist/],
    ["jsr:@std/path", /jsr packages are not available/],
    ["https://deno.land/x/mod.ts", /URL imports are refused/],
    ["http://127.0.0.1:8000/mod.ts", /URL imports are refused/],
    ["data:text/javascript,export default 1", /URL imports are refused/],
    ["lodash", /bare package imports need the policy.s npm allowlist/],
    ["@scope/pkg", /bare package imports need the policy.s npm allowlist/],
  ];
  for (const [spec, reason] of cases) {
    const error = await refused({
      code: `import x from ${JSON.stringify(spec)};\nconsole.log(x);`,
    });
    assert.equal(error.problems.length, 1, error.message);
    const [problem] = error.problems;
    assert.ok(problem!.message.includes(`Cannot import '${spec}'`), spec);
    assert.match(problem!.message, reason);
    assert.equal(problem!.file, "main.ts");
    assert.equal(problem!.line, 1);
  }
});

Deno.test("bundleProgram() refuses a dynamic import of a package too", async () => {
  const error = await refused({
    code: 'const m = await import("npm:chalk");\nconsole.log(m);',
  });
  assert.match(error.message, /Cannot import 'npm:chalk'/);
});

Deno.test("bundleProgram() keeps node: built-ins as external imports", async () => {
  const js = await bundleProgram({
    code: 'import { join } from "node:path";\nexport const p = join("a", "b");',
  });
  assert.match(js, /from "node:path"/);
  assert.equal((await load(js)).p, "a/b");
});

Deno.test("bundleProgram() reports a syntax error as file:line:column", async () => {
  const error = await refused({
    files: {
      "main.ts": 'import "./broken.ts";',
      "broken.ts": "const ok = 1;\n\nconst = 2;\n",
    },
    entry: "main.ts",
  });
  const [problem] = error.problems;
  assert.equal(problem!.file, "broken.ts");
  assert.equal(problem!.line, 3);
  assert.equal(problem!.column, 7);
  assert.match(error.message, /^Cannot bundle the program: 1 problem\n/);
  assert.match(error.message, / - broken\.ts:3:7: /);
});

Deno.test("bundleProgram() lists every problem at once", async () => {
  const error = await refused({
    code: 'import "npm:a";\nimport "jsr:@b/c";\nimport "./missing.ts";',
  });
  assert.equal(error.problems.length, 3, error.message);
  assert.match(error.message, /3 problems/);
  assert.match(
    error.message,
    /Cannot find '\.\/missing\.ts' imported from 'main\.ts'/,
  );
});

Deno.test("bundleProgram() refuses an entry that is not among the files", async () => {
  const error = await refused({
    files: { "a.ts": "1", "lib/b.ts": "2" },
    entry: "main.ts",
  });
  assert.equal(
    error.problems[0]!.message,
    "entry 'main.ts' is not one of the files (a.ts, lib/b.ts)",
  );
});

Deno.test("bundleProgram() refuses a path that does not exist", async () => {
  const error = await refused({ path: "/nonexistent/airlock/main.ts" });
  assert.match(
    error.message,
    /program file '\/nonexistent\/airlock\/main\.ts' does not exist/,
  );
});

Deno.test("bundleProgram() reads a path's sibling and nested files", async () => {
  const top = await programTree();
  try {
    const js = await bundleProgram({ path: `${top}/prog/main.ts` });
    assert.equal((await load(js)).result, 5);
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});

Deno.test("bundleProgram() never reads a file outside the path's directory via '..'", async () => {
  const top = await programTree();
  try {
    await Deno.writeTextFile(
      `${top}/prog/escape.ts`,
      'import { where } from "../outside.ts"; console.log(where);',
    );
    const error = await refused({ path: `${top}/prog/escape.ts` });
    assert.match(error.message, /'\.\.\/outside\.ts'/);

    await Deno.writeTextFile(
      `${top}/prog/deep_escape.ts`,
      'import "./sub/../../secret.txt";',
    );
    const deep = await refused({ path: `${top}/prog/deep_escape.ts` });
    assert.doesNotMatch(deep.message, /host secret/);
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});

Deno.test("bundleProgram() refuses '../x.ts' even when the root holds a file named x.ts", async () => {
  // '../outside.ts' from the root must not be clamped to './outside.ts'.
  const top = await programTree();
  try {
    await Deno.writeTextFile(
      `${top}/prog/outside.ts`,
      'export const where = "inside";',
    );
    await Deno.writeTextFile(
      `${top}/prog/escape.ts`,
      'import { where } from "../outside.ts"; export { where };',
    );
    await refused({ path: `${top}/prog/escape.ts` });
    await refused({
      files: {
        "main.ts": 'import { w } from "../x.ts"; export { w };',
        "x.ts": "export const w = 1;",
      },
      entry: "main.ts",
    });
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});

Deno.test("bundleProgram() refuses a symlink that points outside the path's directory", async () => {
  const top = await programTree();
  try {
    await Deno.symlink(`${top}/outside.ts`, `${top}/prog/link.ts`);
    await Deno.symlink(`${top}/secret.txt`, `${top}/prog/secret.txt`);
    await Deno.writeTextFile(
      `${top}/prog/via_link.ts`,
      'import { where } from "./link.ts"; console.log(where);',
    );
    const error = await refused({ path: `${top}/prog/via_link.ts` });
    assert.match(error.message, /Cannot find '\.\/link\.ts'/);

    await Deno.writeTextFile(
      `${top}/prog/via_text.ts`,
      'import s from "./secret.txt"; console.log(s);',
    );
    const text = await refused({ path: `${top}/prog/via_text.ts` });
    assert.doesNotMatch(text.message, /host secret/);

    // A link that stays inside the directory is fine.
    await Deno.symlink(`${top}/prog/lib.ts`, `${top}/prog/alias.ts`);
    await Deno.writeTextFile(
      `${top}/prog/via_alias.ts`,
      'import { double } from "./alias.ts"; export const r = double(4);',
    );
    const js = await bundleProgram({ path: `${top}/prog/via_alias.ts` });
    assert.equal((await load(js)).r, 8);
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});

Deno.test("BundleError makes every program-controlled character printable", () => {
  const error = new BundleError([{
    message: "Cannot import './\x1b[2J\u202eevil.ts'",
    file: "lib/\x9b31m.ts",
    line: 1,
    column: 2,
  }]);
  assert.equal(
    error.problems[0]!.message,
    "Cannot import './\\x1b[2J\\u202eevil.ts'",
  );
  assert.equal(error.problems[0]!.file, "lib/\\x9b31m.ts");
  // deno-lint-ignore no-control-regex -- the raw characters are the point
  assert.doesNotMatch(error.message, /[\x1b\x9b\u202e]/);
});

Deno.test("bundleProgram() names package-free programs' sources airlock:/ in the source map", async () => {
  const js = await bundleProgram({
    files: {
      "main.ts": 'import "./b.ts";\nconsole.log(2);',
      "b.ts": "console.log(1);",
    },
    entry: "main.ts",
  });
  const map = JSON.parse(
    atob(js.slice(js.lastIndexOf("base64,") + 7).trim()),
  ) as { sources: string[] };
  assert.deepEqual(map.sources.sort(), ["airlock:/b.ts", "airlock:/main.ts"]);
});

Deno.test("bundleProgram() reports a syntax error in import-free code alike from the one-shot and the long-lived bundler", async () => {
  const code = "const ok = 1;\n\nconst = 2;\n";
  await stopBundler();
  // No bundler is up: the one-shot sandbox (esbuild's binary alone).
  const once = await refused({ code });
  await bundlerFor(null).start();
  assert.ok(bundlerFor(null).running, "control: the bundler is up");
  const worker = await refused({ code });
  for (const error of [once, worker]) {
    assert.equal(error.problems.length, 1, error.message);
    const [problem] = error.problems;
    assert.equal(problem!.file, "main.ts");
    assert.equal(problem!.line, 3);
    assert.equal(problem!.column, 7);
    assert.match(problem!.message, /Expected identifier/);
  }
  await stopBundler();
});

Deno.test("bundleProgram() survives a bundler killed from outside: the next bundle starts a new one", async () => {
  const files = {
    "main.ts": 'import { a } from "./a.ts"; export { a };',
    "a.ts": "export const a = 1;",
  };
  await bundleProgram({ files, entry: "main.ts" });
  const pid = bundlerFor(null).pid;
  assert.ok(pid !== null, "control: the bundler runs");
  Deno.kill(pid, "SIGKILL");
  // Whatever was in flight fails with a clear error; later bundles work.
  const deadline = Date.now() + 30_000;
  while (bundlerFor(null).pid === pid && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const js = await bundleProgram({ files, entry: "main.ts" });
  assert.equal((await load(js)).a, 1);
  assert.notEqual(bundlerFor(null).pid, pid);
  await stopBundler();
});

Deno.test("stopBundler() stops the sandboxed bundler process", async () => {
  await stopBundler();
  // The next bundle starts a fresh helper.
  const js = await bundleProgram({ code: "export const x = 1;" });
  assert.equal((await load(js)).x, 1);
  await stopBundler();
});

/** The host uid a process runs as. */
function uidOf(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(status.match(/^Uid:\s+(\d+)/m)?.[1]);
}

/** Live (not zombie) host processes running as `uid`. */
function processesOf(uid: number): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const status = Deno.readTextFileSync(`/proc/${entry.name}/status`);
      if (/^State:\s+[ZX]/m.test(status)) continue;
      const uids = status.match(/^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m);
      if (uids?.slice(1).map(Number).includes(uid)) found.push(+entry.name);
    } catch {
      // exited while we looked
    }
  }
  return found;
}

Deno.test({
  name:
    "BundlerProcess.stop() at any moment of its start returns and leaves no process of the helper (bwrap's child, killed mid-setup, would wait forever holding the pipes)",
  // Only a root harness gives helpers a uid of their own to sweep.
  ignore: Deno.uid() !== 0,
  async fn() {
    await stopBundler();
    // Each round kills bwrap's monitor a little later into its start, from
    // before its clone to after the worker is up.
    for (let round = 0; round < 24; round++) {
      const bundler = new BundlerProcess(null);
      await bundler.start();
      // The helper's own uid: bwrap's monitor and all it forks run as it.
      const uid = uidOf(bundler.pid!);
      assert.ok(uid !== 0, "control: a helper never runs as root");
      for (let i = 0; i < round; i++) await Promise.resolve();
      if (round % 3 === 2) await new Promise((r) => setTimeout(r, round));
      await bundler.stop();
      assert.deepEqual(processesOf(uid), [], `round ${round}`);
    }
  },
});
