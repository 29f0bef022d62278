/**
 * The documentation's code is real code: every JSDoc and Markdown example
 * type-checks against the current API, and every JSDoc example of the
 * library modules runs and passes its own assertions. Markdown examples are
 * only type-checked, never run: several would reach the internet (the
 * README's api.openai.com), and tests send no traffic beyond loopback.
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;
const LIBRARY_DIRS = [
  "runtime",
  "harness",
  "injector",
  "audit",
  "http",
  "deno_sandbox",
];

async function deno(args: string[]): Promise<{ code: number; out: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, out: decoder.decode(stdout) + decoder.decode(stderr) };
}

async function libraryModules(): Promise<string[]> {
  const files = ["mod.ts"];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(`${ROOT}${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (path.endsWith(".ts") && !path.endsWith("_test.ts")) {
        files.push(path);
      }
    }
  };
  for (const dir of LIBRARY_DIRS) await walk(dir);
  return files.sort();
}

async function markdownFiles(): Promise<string[]> {
  const files: string[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(`${ROOT}${dir}`)) {
      if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
      const path = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory) await walk(path);
      else if (path.endsWith(".md")) files.push(path);
    }
  };
  await walk("");
  return files.sort();
}

Deno.test("docs: every JSDoc and Markdown code example type-checks", async () => {
  const markdown = await markdownFiles();
  assert.ok(markdown.includes("README.md"), markdown.join(", "));
  // `--doc` alone covers JSDoc; Markdown files must be named.
  const { code, out } = await deno([
    "check",
    "--doc",
    "--quiet",
    ".",
    ...markdown,
  ]);
  assert.equal(code, 0, out);
});

Deno.test("docs: the Markdown check fails on a broken example (control)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airlock-docs-" });
  try {
    await Deno.writeTextFile(
      `${dir}/broken.md`,
      '```ts\nconst n: number = "text";\nconsole.log(n);\n```\n',
    );
    const { code, out } = await deno([
      "check",
      "--doc-only",
      "--quiet",
      `${dir}/broken.md`,
    ]);
    assert.notEqual(code, 0);
    assert.match(out, /TS2322/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("docs: every runnable JSDoc example of the library passes", async () => {
  const modules = await libraryModules();
  assert.ok(modules.length > 50, `found only ${modules.length} modules`);
  const { code, out } = await deno([
    "test",
    "--doc",
    "--allow-all",
    "--no-prompt",
    ...modules,
  ]);
  assert.equal(code, 0, out.slice(-4000));
  const passed = Number(/ok \| (\d+) passed \| 0 failed/.exec(out)?.[1]);
  // A control: the run really executed the examples (not zero of them).
  assert.ok(passed >= 90, `only ${passed} examples ran:\n${out.slice(-2000)}`);
});
