import assert from "node:assert/strict";
import { excludeFilter } from "./exclude.ts";

Deno.test("excludeFilter() matches globs like .gitignore: names at any depth, slashed patterns anchored", () => {
  const skip = excludeFilter(
    [
      "fixtures",
      "docs/old",
      "examples/**/*.md",
      "*.generated.ts",
      "tmp/",
      "{a,b}/x?.sh",
      "[0-9]*.md",
    ],
    { defaults: false },
  );
  const cases: [string, boolean, string | null][] = [
    ["fixtures", true, "--exclude fixtures"],
    ["tests/fixtures", true, "--exclude fixtures"],
    ["tests/fixtures/a/deno.json", false, "--exclude fixtures"],
    ["docs/old/a.md", false, "--exclude docs/old"],
    ["site/docs/old/a.md", false, null],
    ["examples/a.md", false, "--exclude examples/**/*.md"],
    ["examples/a/b/c.md", false, "--exclude examples/**/*.md"],
    ["examples/a/run.sh", false, null],
    ["src/x.generated.ts", false, "--exclude *.generated.ts"],
    ["tmp", true, "--exclude tmp/"],
    ["tmp/run.sh", false, "--exclude tmp/"],
    ["src/tmp", false, null],
    ["a/x1.sh", false, "--exclude {a,b}/x?.sh"],
    ["b/x22.sh", false, null],
    ["2024.md", false, "--exclude [0-9]*.md"],
    ["deno.json", false, null],
  ];
  for (const [path, dir, rule] of cases) {
    assert.equal(skip(path, dir), rule, path);
  }
  // A leading ./ or / anchors like a slash does.
  assert.equal(
    excludeFilter(["./docs"])("docs/a.md", false),
    "--exclude ./docs",
  );
  assert.equal(excludeFilter(["/docs"])("x/docs/a.md", false), null);
});

Deno.test("excludeFilter() skips dependencies, and only the Markdown of docs archives and changelogs, by default", () => {
  const skip = excludeFilter([]);
  const cases: [string, boolean, string | null][] = [
    ["node_modules", true, "default: node_modules/"],
    ["packages/a/node_modules", true, "default: node_modules/"],
    ["vendor", true, "default: vendor/"],
    [".git", true, "default: .git/"],
    ["docs/old/setup.md", false, "default: docs archive (old/)"],
    ["docs/archive/v1/install.md", false, "default: docs archive (archive/)"],
    [
      "website/versioned_docs/version-1/a.mdx",
      false,
      "default: docs archive (versioned_docs/)",
    ],
    ["legacy/README.md", false, "default: docs archive (legacy/)"],
    ["CHANGELOG.md", false, "default: changelog"],
    ["Releases.md", false, "default: changelog"],
    ["packages/x/HISTORY.md", false, "default: changelog"],
    ["release-notes.md", false, "default: changelog"],
    // What the archive's and changelog's rules do not cover is read.
    ["docs/old/run.sh", false, null],
    ["legacy/Dockerfile", false, null],
    ["docs/guide.md", false, null],
    ["README.md", false, null],
    ["node_modules", false, null],
    ["changelog.ts", false, null],
  ];
  for (const [path, dir, rule] of cases) {
    assert.equal(skip(path, dir), rule, path);
  }
  assert.equal(
    excludeFilter([], { defaults: false })("node_modules", true),
    null,
  );
});
