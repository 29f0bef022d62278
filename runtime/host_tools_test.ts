import assert from "node:assert/strict";
import {
  discoverHostTools,
  findOnPath,
  MissingHostToolError,
  sharedLibraries,
} from "./host_tools.ts";

/** A temp dir holding an executable `tool` script. */
async function dirWithTool(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-path-" });
  await Deno.writeTextFile(`${dir}/tool`, "#!/bin/sh\n", { mode: 0o755 });
  return dir;
}

/** `to` as a path relative to the current directory. */
function relativeFromCwd(to: string): string {
  const depth = Deno.cwd().split("/").filter(Boolean).length;
  return "../".repeat(depth) + to.replace(/^\//, "");
}

Deno.test("findOnPath() finds an executable on an absolute PATH entry", async () => {
  const dir = await dirWithTool();
  try {
    assert.equal(
      findOnPath("tool", `/nonexistent:${dir}`),
      await Deno.realPath(`${dir}/tool`),
    );
    assert.equal(findOnPath("missing-tool", dir), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("findOnPath() ignores relative PATH entries (a planted ./bwrap is never run)", async () => {
  const dir = await dirWithTool();
  try {
    const relative = relativeFromCwd(dir);
    // The relative entry does name the directory from here.
    assert.ok((await Deno.stat(`${relative}/tool`)).isFile);
    assert.equal(findOnPath("tool", relative), null);
    assert.equal(findOnPath("tool", `:.:${relative}`), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("findOnPath() skips files that are not executable", async () => {
  const dir = await dirWithTool();
  try {
    await Deno.chmod(`${dir}/tool`, 0o644);
    assert.equal(findOnPath("tool", dir), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("findOnPath() resolves symlinks to the real file", async () => {
  const dir = await dirWithTool();
  try {
    await Deno.mkdir(`${dir}/bin`);
    await Deno.symlink(`${dir}/tool`, `${dir}/bin/alias`);
    assert.equal(
      findOnPath("alias", `${dir}/bin`),
      await Deno.realPath(`${dir}/tool`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("discoverHostTools() returns absolute paths of existing programs", async () => {
  const tools = await discoverHostTools();
  for (
    const [name, path] of Object.entries({
      bwrap: tools.bwrap,
      prlimit: tools.prlimit,
      sh: tools.sh,
      deno: tools.deno,
    })
  ) {
    assert.ok(path.startsWith("/"), `${name}: ${path}`);
    assert.ok((await Deno.stat(path)).isFile, `${name}: ${path}`);
  }
  assert.equal(tools.denoVersion, Deno.version.deno);
});

Deno.test("discoverHostTools() lists the libraries Deno loads, as absolute paths", async () => {
  const tools = await discoverHostTools();
  assert.ok(tools.libraries.deno.length > 0);
  for (const lib of [...tools.libraries.deno, ...tools.libraries.sh]) {
    assert.ok(lib.startsWith("/"), lib);
    assert.ok((await Deno.stat(lib)).isFile, lib);
  }
  assert.ok(tools.libraries.deno.some((lib) => /\/libc\.so/.test(lib)));
  assert.ok(tools.libraries.deno.some((lib) => /\/ld-linux/.test(lib)));
  assert.equal(
    new Set(tools.libraries.deno).size,
    tools.libraries.deno.length,
    "no duplicates",
  );
});

Deno.test("discoverHostTools() fails closed with the missing tool and its apt-get fix", async () => {
  const empty = await Deno.makeTempDir({ prefix: "airlock-path-" });
  try {
    // Each step adds the tool the previous one reported missing.
    const steps = [
      ["bwrap", "apt-get install -y bubblewrap"],
      ["prlimit", "apt-get install -y util-linux"],
      ["ldd", "apt-get install -y libc-bin"],
    ];
    for (const [tool, fix] of steps) {
      await assert.rejects(
        discoverHostTools({ path: empty }),
        (error: unknown) => {
          assert.ok(error instanceof MissingHostToolError);
          assert.equal(error.tool, tool);
          assert.equal(error.fix, fix);
          assert.equal(
            error.message,
            `Cannot start a sandbox as '${tool}' is not available: run '${fix}'`,
          );
          return true;
        },
      );
      const real = findOnPath(tool!, "/usr/local/bin:/usr/bin:/bin:/usr/sbin");
      assert.ok(real, `${tool} must be installed for this test`);
      await Deno.symlink(real, `${empty}/${tool}`);
    }
    // With all of them present, discovery succeeds (the failure was not cached).
    const tools = await discoverHostTools({ path: empty });
    assert.ok(tools.bwrap.startsWith("/"));
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});

Deno.test("discoverHostTools() reports a Deno binary that does not exist", async () => {
  await assert.rejects(
    discoverHostTools({ denoPath: "/nonexistent/deno" }),
    (error: unknown) => {
      assert.ok(error instanceof MissingHostToolError);
      assert.equal(error.tool, "deno");
      assert.match(error.message, /cannot resolve '\/nonexistent\/deno'/);
      return true;
    },
  );
});

Deno.test("sharedLibraries() lists /bin/sh's libc and nothing relative", async () => {
  const libs = await sharedLibraries("/usr/bin/ldd", "/bin/sh");
  assert.ok(libs.some((lib) => /\/libc\.so/.test(lib)), libs.join(" "));
  assert.ok(libs.every((lib) => lib.startsWith("/")));
  assert.ok(!libs.some((lib) => lib.includes("vdso")));
});
