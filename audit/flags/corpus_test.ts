/**
 * The flag audit over a corpus of samples shaped like real projects
 * (tests/fixtures/flags_corpus/: Fresh, std, saaskit, oak, hono, lume and
 * the official Deno Docker images), each compared exactly with its
 * expected_findings.txt (id, severity, file:line, flag, in report order,
 * each with its proposed fix),
 * plus the properties the corpus exists for: Docker CMDs on Deno images
 * found, `adduser deno` not, servers fixed with their listening address,
 * no --no-prompt note where no terminal can prompt, docs archives skipped.
 */

import assert from "node:assert/strict";
import { auditPath, auditProject, type Finding } from "./mod.ts";

const CORPUS = new URL("../../tests/fixtures/flags_corpus/", import.meta.url)
  .pathname;
const PROJECTS = [
  "deno_docker",
  "fresh",
  "hono",
  "lume",
  "oak",
  "saaskit",
  "std",
];

function line(f: Finding): string {
  return `${f.id} ${f.severity} ${f.file}:${f.line} ${f.flag}`;
}

/** A finding as expected_findings.txt writes it: its line, then its fix. */
function entry(f: Finding): string[] {
  return [line(f), `  fix: ${f.suggestion}`];
}

async function expected(project: string): Promise<string[]> {
  const text = await Deno.readTextFile(
    `${CORPUS}${project}/expected_findings.txt`,
  );
  return text.split("\n").map((l) => l.trimEnd())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

async function findings(project: string): Promise<Finding[]> {
  return await auditPath(`${CORPUS}${project}`);
}

/** The finding at `file:line` with `flag`, or a failed assertion. */
function at(all: Finding[], where: string, flag: string): Finding {
  const found = all.find((f) =>
    `${f.file}:${f.line}` === where && f.flag === flag
  );
  assert.ok(
    found,
    `no finding ${flag} at ${where}: ${all.map(line).join("\n")}`,
  );
  return found;
}

Deno.test("corpus: every project's findings and fixes are exactly its expected_findings.txt", async () => {
  const found: string[] = [];
  for await (const entry of Deno.readDir(CORPUS)) {
    if (entry.isDirectory) found.push(entry.name);
  }
  assert.deepEqual(found.sort(), PROJECTS, "a project without a check");
  for (const project of PROJECTS) {
    assert.deepEqual(
      (await findings(project)).flatMap(entry),
      await expected(project),
      project,
    );
  }
});

Deno.test("corpus: exec-form CMD on a denoland/deno image is deno's command; adduser/chown/USER deno are not", async () => {
  const docker = await findings("deno_docker");
  // CMD ["run", "--allow-net", "main.ts"] on FROM denoland/deno.
  const cmd = at(docker, "example/Dockerfile:19", "--allow-net");
  assert.equal(cmd.command, "deno run --allow-net main.ts");
  assert.equal(
    cmd.suggestion,
    'main.ts listens (0.0.0.0:1993): CMD ["run", "--allow-net=0.0.0.0:1993", "main.ts"]; add any host it calls',
  );
  // `RUN addgroup ... deno && adduser ... deno --ingroup deno` (line 14)
  // and `USER deno` are no commands.
  assert.deepEqual(
    docker.filter((f) => f.file === "alpine.dockerfile").map(line),
    ["deno-eval info alpine.dockerfile:32 deno eval"],
  );
  // The official images' own CMD: a literal eval is harmless; the Debian
  // one runs an unpinned remote script through docker-entrypoint.sh.
  assert.equal(
    at(docker, "distroless.dockerfile:15", "deno eval").severity,
    "info",
  );
  assert.equal(
    at(
      docker,
      "debian.dockerfile:22",
      "https://deno.land/std/examples/welcome.ts",
    )
      .id,
    "remote-unpinned",
  );
  // Multi-stage, ENTRYPOINT ["deno"] + CMD ["run", ...], ENV PORT=8080.
  const hono = await findings("hono");
  assert.equal(
    at(hono, "Dockerfile:22", "--allow-net").suggestion,
    'main.ts listens (0.0.0.0:8080) and fetches api.open-meteo.com: CMD ["run", "--allow-net=0.0.0.0:8080,api.open-meteo.com", "--allow-env", "main.ts"]',
  );
  assert.equal(
    at(hono, "Dockerfile:22", "--allow-env").suggestion,
    'main.ts reads PORT: CMD ["run", "--allow-net", "--allow-env=PORT", "main.ts"]',
  );
});

Deno.test("corpus: a server's --allow-net is fixed with its own listening address, never an example host", async () => {
  const hono = await findings("hono");
  assert.equal(
    at(hono, "deno.json:6", "--allow-net").suggestion,
    "main.ts listens (0.0.0.0:8000) and fetches api.open-meteo.com: deno run --allow-net=0.0.0.0:8000,api.open-meteo.com main.ts",
  );
  const oak = await findings("oak");
  assert.match(
    at(oak, "deno.json:17", "--allow-net").suggestion,
    /: deno run --allow-net=127\.0\.0\.1:8000 examples\/server\.ts;/,
  );
  const std = await findings("std");
  assert.equal(
    at(std, "deno.json:13", "--allow-env").suggestion,
    "./_tools/check_circular_package_dependencies.ts reads CI: deno run --allow-env=CI --allow-read --allow-net=deno.land,jsr.io ./_tools/check_circular_package_dependencies.ts",
  );
  for (const project of PROJECTS) {
    for (const f of await findings(project)) {
      // The old generic examples are gone: every fix is about this project.
      assert.doesNotMatch(
        f.suggestion,
        /api\.example\.com|\.\/data,\.\/config\.json|PORT,LOG_LEVEL/,
        `${project} ${line(f)}: ${f.suggestion}`,
      );
      if (/^allow-(read|write|net|env)$/.test(f.id) && f.severity === "high") {
        assert.match(
          f.suggestion,
          /(?:deno (?:run|test|serve)|CMD \[|#!|docker run)/,
          `${project} ${line(f)} quotes no command: ${f.suggestion}`,
        );
      }
    }
  }
});

Deno.test("corpus: no --no-prompt note where no terminal can prompt (CI, Dockerfiles, compose)", async () => {
  let tasks = 0;
  for (const project of PROJECTS) {
    for (
      const f of (await findings(project)).filter((f) => f.id === "no-prompt")
    ) {
      assert.match(
        f.file,
        /(?:^|\/)deno\.json$|\.ts$/,
        `${project} ${line(f)}`,
      );
      tasks++;
    }
  }
  assert.ok(tasks > 0, "control: tasks without --no-prompt are still noted");
});

Deno.test("corpus: docs archives, changelogs and vendored trees are skipped by default, and named", async () => {
  for (
    const [project, skipped] of [
      ["fresh", [
        "docs/old/concepts/deployment.md",
        "docs/old/getting-started/create-a-project.md",
      ]],
      ["lume", ["CHANGELOG.md", "docs/archive/v1/install.md", "vendor"]],
      ["std", ["Releases.md"]],
    ] as const
  ) {
    const dir = `${CORPUS}${project}`;
    const audit = await auditProject(dir);
    assert.deepEqual(
      audit.skipped.map((s) => s.path).sort(),
      [...skipped],
      project,
    );
    // Control: without the defaults those files are read and have findings.
    const all = await auditProject(dir, { defaultExcludes: false });
    for (const path of skipped) {
      assert.ok(
        all.findings.some((f) => f.file.startsWith(path)),
        `${project}: ${path} has no findings to skip`,
      );
    }
    assert.ok(all.findings.length > audit.findings.length);
  }
});

Deno.test("corpus: --exclude keeps a gate to what it owns, and names each skipped path with its pattern", async () => {
  const dir = `${CORPUS}deno_docker`;
  const audit = await auditProject(dir, {
    exclude: ["README.md", ".github/", "*.dockerfile"],
  });
  assert.deepEqual(audit.findings.map(line), [
    "allow-all critical example/Dockerfile:17 -A",
    "allow-net high example/Dockerfile:19 --allow-net",
  ]);
  assert.deepEqual(audit.skipped, [
    { path: ".github", rule: "--exclude .github/" },
    { path: "README.md", rule: "--exclude README.md" },
    { path: "alpine.dockerfile", rule: "--exclude *.dockerfile" },
    { path: "bin.dockerfile", rule: "--exclude *.dockerfile" },
    { path: "debian.dockerfile", rule: "--exclude *.dockerfile" },
    { path: "distroless.dockerfile", rule: "--exclude *.dockerfile" },
  ]);
  // Control: a pattern that matches nothing skips nothing.
  const none = await auditProject(dir, { exclude: ["no-such-dir/"] });
  assert.deepEqual(none.skipped, []);
  assert.deepEqual(
    none.findings.map(line),
    (await findings("deno_docker")).map(line),
  );
});

Deno.test("corpus: an unpinned remote script has its own finding and -A text; a pinned or local one has neither", async () => {
  const lume = await findings("lume");
  const remote = at(lume, "README.md:10", "-A");
  assert.match(
    remote.message,
    /^every permission, for code fetched from lume\.land at run time with no pin/,
  );
  assert.equal(
    at(lume, "README.md:10", "https://lume.land/init.ts").id,
    "remote-unpinned",
  );
  // Pinned (nudd@v0.2.9): where the code comes from, but no pin finding.
  const pinned = at(lume, "deno.json:9", "-A");
  assert.match(pinned.message, /^every permission, for code fetched from/);
  assert.doesNotMatch(pinned.message, /no pin/);
  assert.ok(!lume.some((f) => f.line === 9 && f.id === "remote-unpinned"));
  // Local: the plain -A text, no pin finding.
  const fresh = await findings("fresh");
  assert.match(at(fresh, "deno.json:9", "-A").message, /^every permission: /);
  assert.ok(
    !fresh.some((f) => f.line === 9 && f.id === "remote-unpinned"),
  );
});
