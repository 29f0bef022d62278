import assert from "node:assert/strict";
import { findDenoCommands } from "./extract.ts";

Deno.test("findDenoCommands() handles quotes, continuations, chains, redirections, sh -c and comments", () => {
  const words = (text: string, path = "x.sh") =>
    findDenoCommands(text, path).map((s) => `${s.line}: ${s.words.join(" ")}`);
  assert.deepEqual(
    words(`deno run --allow-read="./a b,./c" 'x.ts'`),
    ["1: deno run --allow-read=./a b,./c x.ts"],
  );
  assert.deepEqual(words("deno run \\\n  -N \\\n  x.ts\ndeno test"), [
    "1: deno run -N x.ts",
    "4: deno test",
  ]);
  assert.deepEqual(
    words("a && deno run -R x.ts; deno test -N | tee l || deno bench -E &"),
    [
      "1: deno run -R x.ts",
      "1: deno test -N",
      "1: deno bench -E",
    ],
  );
  assert.deepEqual(words("deno run -R x.ts 2>&1 >/dev/null < in"), [
    "1: deno run -R x.ts",
  ]);
  assert.deepEqual(words("out=$(deno run -N x.ts)"), ["1: deno run -N x.ts"]);
  assert.deepEqual(words(`bash -lc "deno run -E x.ts"`), [
    "1: deno run -E x.ts",
  ]);
  assert.deepEqual(words(`echo "deno run -A x.ts" # deno run -A`), []);
  assert.deepEqual(words(`echo deno run -A x.ts`), []);
  assert.deepEqual(words("npx -y deno@2.9.6 run -W x.ts"), [
    "1: deno@2.9.6 run -W x.ts",
  ]);
  assert.deepEqual(words("/usr/bin/deno run -W x.ts"), [
    "1: /usr/bin/deno run -W x.ts",
  ]);
  // Deno counts only in command position: as an argument, a user or a
  // group name it is no deno command.
  assert.deepEqual(words("cp deno.json out/ && which deno"), []);
  assert.deepEqual(
    words(
      "addgroup --gid 1000 deno && adduser --uid 1000 --disabled-password deno --ingroup deno && chown deno:deno /deno-dir/",
    ),
    [],
  );
  assert.deepEqual(words("command -v deno && gosu deno deno run -N x.ts"), [
    "1: deno run -N x.ts",
  ]);
  assert.deepEqual(
    words("sudo -E -u deno env DENO_DIR=/d timeout 10s deno test -R"),
    ["1: deno test -R"],
  );
  assert.deepEqual(
    words(
      "docker run --rm -it -p 8000:8000 -v $PWD:/app denoland/deno:2.0.2 run -N /app/main.ts",
    ),
    ["1: deno run -N /app/main.ts"],
  );
  assert.deepEqual(words("docker run --rm node:22 deno run -A x.ts"), [
    "1: deno run -A x.ts",
  ]);
  assert.deepEqual(words("docker run --rm denoland/deno:2.0.2"), []);
  // In a file type that is not a script, only the #! line counts.
  assert.deepEqual(
    words(
      "#!/usr/bin/env -S deno run -N\nconst s = 'deno run -A x.ts';",
      "x.ts",
    ),
    [
      "1: deno run -N",
    ],
  );
});

Deno.test("findDenoCommands() reads deno.jsonc with comments and trailing commas, and a broken deno.json line by line", () => {
  const lines = (text: string, path: string) =>
    findDenoCommands(text, path).map((s) => `${s.line}: ${s.words.join(" ")}`);
  const jsonc =
    '{\n  // dev\n  "tasks": {\n    /* a */ "a": "deno run -N x.ts",\n  },\n}\n';
  assert.deepEqual(lines(jsonc, "deno.jsonc"), ["4: deno run -N x.ts"]);
  const broken =
    '{\n  "tasks": {\n    "a": "deno run -E x.ts"\n    "b": "deno test -R"\n';
  assert.deepEqual(lines(broken, "deno.json"), [
    "3: deno run -E x.ts",
    "4: deno test -R",
  ]);
  // Object tasks, at their key's line.
  const objects = JSON.stringify(
    { tasks: { b: "deno task a", a: { command: "deno run -W x.ts" } } },
    null,
    2,
  );
  assert.deepEqual(lines(objects, "deno.json"), [
    "3: deno task a",
    "4: deno run -W x.ts",
  ]);
});

Deno.test("findDenoCommands() reads Markdown code blocks only, YAML scalars and Dockerfile exec form", () => {
  const words = (text: string, path: string) =>
    findDenoCommands(text, path).map((s) => `${s.line}: ${s.words.join(" ")}`);
  assert.deepEqual(
    words(
      "deno run -A prose\n```sh\n$ deno run -N x.ts\n```\ndeno run -E prose",
      "a.md",
    ),
    ["3: deno run -N x.ts"],
  );
  assert.deepEqual(
    words(
      `steps:\n  - run: "deno run -N 'x y.ts'"\n  - run: 'deno test -R'`,
      "ci.yaml",
    ),
    ["2: deno run -N x y.ts", "3: deno test -R"],
  );
  assert.deepEqual(
    words(
      `CMD ["deno", "run", "--allow-net=:8000", "main.ts"]\nRUN ["sh", "-c", "deno run -E x.ts"]`,
      "Dockerfile",
    ),
    ["1: deno run --allow-net=:8000 main.ts", "2: deno run -E x.ts"],
  );
  assert.deepEqual(words("web: deno serve -N main.ts", "Procfile"), [
    "1: deno serve -N main.ts",
  ]);
});
