/**
 * Every case of the harness's one path normaliser in one table, with what
 * the five normalisers it replaced used to disagree on: climbing above the
 * root is refused (null) wherever it happens, never clamped to the root.
 * The bundler's worker carries its own copy (it imports nothing at run
 * time): the same table holds it to the same answers.
 */
import assert from "node:assert/strict";
import { normalisePath, type NormalisePathOptions } from "./paths.ts";
import { normalise as workerNormalise } from "./bundle/_worker.ts";

interface Row {
  path: string;
  options?: NormalisePathOptions;
  expected: string | null;
  /** Why the row is there (what a normaliser used to do differently). */
  why: string;
}

const TABLE: Row[] = [
  // Plain normal forms.
  { path: "/a/./b//c/", expected: "/a/b/c", why: "empty and . segments go" },
  { path: "/a/b/../c", expected: "/a/c", why: ".. takes back one segment" },
  { path: "/", expected: "/", why: "the root" },
  { path: "", expected: "/", why: "empty: the root (or cwd)" },
  { path: ".", expected: "/", why: "dot: the root (or cwd)" },
  { path: "/a/b/../..", expected: "/", why: "back to the root exactly" },
  { path: "/a/...", expected: "/a/...", why: "three dots are a name" },
  { path: "/a/..b/.c", expected: "/a/..b/.c", why: "dot-prefixed names" },
  // Climbing above the root: refused everywhere.
  {
    path: "/..",
    expected: null,
    why: "the bundler threw; policy, inputs, broker and fs clamped to '/'",
  },
  {
    path: "/../x",
    expected: null,
    why: "clamping bound it to /x (the root's own x)",
  },
  {
    path: "/scratch/../../etc/passwd",
    expected: null,
    why: "clamping made it /etc/passwd",
  },
  { path: "/a/b/../../../x", expected: null, why: "one level too many" },
  // Relative paths, default: taken from the root (the bundler's program files).
  { path: "main.ts", expected: "/main.ts", why: "rooted at /" },
  {
    path: "./lib/../main.ts",
    expected: "/main.ts",
    why: "rooted, then normal",
  },
  { path: "../x.ts", expected: null, why: "above the program's root" },
  // Relative paths against a cwd (the broker, inputs' symlinks, the policy).
  {
    path: "out.txt",
    options: { cwd: "/scratch" },
    expected: "/scratch/out.txt",
    why: "resolved against cwd",
  },
  {
    path: "../etc/hostname",
    options: { cwd: "/scratch" },
    expected: "/etc/hostname",
    why: "climbing within the root is fine",
  },
  {
    path: "../../etc/hostname",
    options: { cwd: "/scratch" },
    expected: null,
    why: "the broker clamped it to /etc/hostname",
  },
  {
    path: "/etc/hostname",
    options: { cwd: "/scratch" },
    expected: "/etc/hostname",
    why: "an absolute path ignores cwd",
  },
  {
    path: "c",
    options: { cwd: "/a/../b" },
    expected: "/b/c",
    why: "cwd is normalised too",
  },
  {
    path: "x",
    options: { cwd: "base" },
    expected: "/base/x",
    why: "a relative cwd is taken from the root (the policy's baseDir did so)",
  },
  {
    path: "x",
    options: { cwd: "/.." },
    expected: null,
    why: "a cwd above the root is refused with its path",
  },
  // Relative paths kept relative (deno_sandbox's fs, resolved later).
  {
    path: "src/../main.ts",
    options: { relative: "keep" },
    expected: "main.ts",
    why: "normal, still relative",
  },
  {
    path: "../a/./b",
    options: { relative: "keep" },
    expected: "../a/b",
    why: "leading .. kept: no root to climb above yet",
  },
  {
    path: "a/../../b",
    options: { relative: "keep" },
    expected: "../b",
    why: ".. past the start is kept",
  },
  {
    path: "",
    options: { relative: "keep" },
    expected: ".",
    why: "empty relative path: here",
  },
  {
    path: "a/..",
    options: { relative: "keep" },
    expected: ".",
    why: "back to here",
  },
  {
    path: "x",
    options: { relative: "keep", cwd: "/scratch" },
    expected: "x",
    why: "keep wins over cwd",
  },
  {
    path: "/../a",
    options: { relative: "keep" },
    expected: null,
    why:
      "an absolute path is refused above / either way (deno_sandbox clamped)",
  },
];

for (const row of TABLE) {
  const shown = row.options ? ` ${JSON.stringify(row.options)}` : "";
  Deno.test(`normalisePath(${JSON.stringify(row.path)}${shown}) is ${JSON.stringify(row.expected)}: ${row.why}`, () => {
    assert.equal(normalisePath(row.path, row.options), row.expected);
  });
}

Deno.test("normalisePath() never returns a path holding '..' unless asked to keep relative ones", () => {
  for (const row of TABLE) {
    const result = normalisePath(row.path, row.options);
    if (result === null || row.options?.relative === "keep") continue;
    assert.ok(result.startsWith("/"), result);
    assert.ok(!result.split("/").includes(".."), result);
    assert.ok(!result.split("/").includes("."), result);
  }
});

Deno.test("the bundler worker's copy answers every default-option row alike", () => {
  const rows = TABLE.filter((row) => row.options === undefined);
  assert.ok(rows.length >= 10, "the control: rows were compared");
  for (const row of rows) {
    assert.equal(workerNormalise(row.path), row.expected, row.path);
  }
});
