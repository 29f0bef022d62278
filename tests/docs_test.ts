/**
 * The documentation's code is real code: every JSDoc and Markdown example
 * type-checks against the current API, and every JSDoc example of the
 * library modules runs and passes its own assertions. Markdown TypeScript
 * examples are only type-checked, never run: several would reach the
 * internet (the README's api.openai.com), and tests send no traffic beyond
 * loopback. The README's shell walkthroughs that stay on loopback (the
 * secret-injection walkthrough, the HTTP API with curl) run as written, and
 * its policy reference names every key of the policy schema.
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

// ------------------------------------------------------ README, shell

const README = `${ROOT}README.md`;

/** The first ```sh block after `marker` in the README. */
async function shellBlockAfter(marker: string): Promise<string> {
  const text = await Deno.readTextFile(README);
  const at = text.indexOf(marker);
  assert.ok(at !== -1, `README lacks '${marker}'`);
  const start = text.indexOf("```sh\n", at);
  assert.ok(start !== -1, `no sh block after '${marker}'`);
  const end = text.indexOf("\n```\n", start);
  return text.slice(start + "```sh\n".length, end + 1);
}

const hasTool = (name: string) =>
  ["/usr/bin", "/bin", "/usr/local/bin"].some((dir) => {
    try {
      return Deno.statSync(`${dir}/${name}`).isFile;
    } catch {
      return false;
    }
  });

/**
 * A directory holding an `airlock` that runs this checkout exactly as the
 * README's install line makes it run (`deno run -A
 * --unstable-no-legacy-abort cli/mod.ts`).
 */
async function airlockOnPath(): Promise<string> {
  const bin = await Deno.makeTempDir({ prefix: "airlock-docs-bin-" });
  await Deno.writeTextFile(
    `${bin}/airlock`,
    `#!/bin/sh\nexec "${Deno.execPath()}" run -A --unstable-no-legacy-abort --config "${ROOT}deno.json" "${ROOT}cli/mod.ts" "$@"\n`,
    { mode: 0o755 },
  );
  // The walkthrough's own `deno` is this one.
  await Deno.symlink(Deno.execPath(), `${bin}/deno`);
  return bin;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function bash(
  script: string,
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("bash", {
    args: ["-c", script],
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", INIT_CWD: "", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

Deno.test({
  name:
    "docs: the README's walkthrough is examples/walkthrough.sh, and it injects a secret the program never sees",
  ignore: !hasTool("openssl"),
  async fn() {
    const script = await Deno.readTextFile(`${ROOT}examples/walkthrough.sh`);
    const shown = await shellBlockAfter("## Walkthrough");
    assert.equal(shown, script.replace(/^#!.*\n/, ""));
    const bin = await airlockOnPath();
    try {
      const { code, stdout, stderr } = await bash(script, {
        PATH: `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
        PORT: String(freePort()),
      });
      assert.equal(code, 0, stderr);
      // The expected lines are the script's own closing comment.
      const expected = script.trimEnd().split("\n").slice(-2)
        .map((line) => line.replace(/^# /, ""));
      assert.deepEqual(stdout.trimEnd().split("\n"), expected, stderr);
      assert.deepEqual(expected, [
        "200 hello, holder of the token",
        "does the program see API_TOKEN? no",
      ]);
    } finally {
      await Deno.remove(bin, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "docs: the README's HTTP API curl examples (create, run, stream, close) work against airlock serve",
  ignore: !hasTool("curl") || !hasTool("jq"),
  async fn() {
    const shown = await shellBlockAfter(
      "With curl, against a server on loopback",
    );
    const port = String(freePort());
    const bin = await airlockOnPath();
    try {
      const { code, stdout, stderr } = await bash(
        // The documented port, moved to a free one.
        `set -e\n${shown.replaceAll("8787", port)}`,
        { PATH: `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}` },
      );
      assert.equal(code, 0, stderr);
      // Each documented answer (the '# ' comments after a command) is what
      // the server said.
      for (
        const line of [
          '{"stdout":"42\\n","exitCode":0,"reason":"exit"}',
          "event: stdout",
          'data: {"text":"one\\n"}',
          'data: {"text":"two\\n"}',
          "event: status",
          "204",
        ]
      ) {
        assert.ok(shown.includes(`# ${line}`), `the README lacks '# ${line}'`);
        assert.ok(stdout.includes(line), `'${line}' not in:\n${stdout}`);
      }
    } finally {
      await Deno.remove(bin, { recursive: true });
    }
  },
});

Deno.test("docs: the policy reference names every key of the policy schema", async () => {
  const readme = await Deno.readTextFile(README);
  const from = readme.indexOf("## Policy reference");
  const section = readme.slice(from, readme.indexOf("\n## ", from + 1));
  const example = section.slice(
    section.indexOf("```jsonc"),
    section.indexOf("```\n", section.indexOf("```jsonc") + 8),
  );
  const schema = JSON.parse(
    await Deno.readTextFile(`${ROOT}schema/policy.schema.json`),
  );
  const keys = new Set<string>();
  const walk = (node: unknown, path: string, depth: number) => {
    if (typeof node !== "object" || node === null || depth > 2) return;
    const { properties, anyOf, oneOf } = node as Record<string, unknown>;
    if (properties && typeof properties === "object") {
      for (const [key, value] of Object.entries(properties)) {
        keys.add(`${path}${key}`);
        walk(value, `${path}${key}.`, depth + 1);
      }
    }
    for (const alternatives of [anyOf, oneOf]) {
      if (Array.isArray(alternatives)) {
        for (const a of alternatives) walk(a, path, depth);
      }
    }
  };
  walk(schema, "", 0);
  assert.ok(keys.size > 20, [...keys].join(", "));
  const missing = [...keys].filter((key) => {
    const name = key.split(".").at(-1)!;
    return !example.includes(`"${name}"`);
  });
  assert.deepEqual(missing, [], "keys missing from the README's example");
});
