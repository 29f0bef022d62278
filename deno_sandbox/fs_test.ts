/**
 * `sandbox.fs` of the `@deno/sandbox`-compatible API against real
 * sandboxes: the SDK's directory examples for `upload` and `download` work
 * as written; symlinks are refused on both sides before anything is
 * written; and no error shows where the harness keeps its workspaces (only
 * sandbox paths and the caller's own host paths).
 */

import assert from "node:assert/strict";
import { AirlockUnsupportedError, Sandbox } from "./mod.ts";

/** A private parent for workspaces, so a test can look for its path in errors. */
async function workspaces(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "airlock-sdk-fs-test-" });
  // The sandbox's own uid must be able to reach its workspace inside.
  await Deno.chmod(path, 0o711);
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** A host directory to play the user's project, made the cwd meanwhile. */
async function inProject<T>(fn: (project: string) => Promise<T>): Promise<T> {
  const project = await Deno.makeTempDir({ prefix: "airlock-sdk-project-" });
  const cwd = Deno.cwd();
  Deno.chdir(project);
  try {
    return await fn(project);
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(project, { recursive: true });
  }
}

async function hostFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) {
      out.push(
        `${path}/`,
        ...await hostFiles(`${dir}/${entry.name}`, `${path}/`),
      );
    } else out.push(path);
  }
  return out.sort();
}

Deno.test("sandbox.fs.upload/download: the SDK's directory examples work as written (destination created, tree under <dest>/<name>)", async () => {
  await using parent = await workspaces();
  await using sandbox = await Sandbox.create({
    allowNet: [],
    airlock: { tmpDir: parent.path },
  });
  await inProject(async (project) => {
    await Deno.mkdir("source-dir/src/deep", { recursive: true });
    await Deno.writeTextFile("source-dir/main.ts", "main");
    await Deno.writeTextFile("source-dir/src/deep/util.ts", "util");
    await Deno.mkdir("source-dir/empty");
    await Deno.writeTextFile("source.txt", "one file");

    // The SDK's d.ts examples, verbatim; "./dest-dir" does not exist yet.
    await sandbox.fs.upload("./source.txt", "./dest.txt");
    await sandbox.fs.upload("./source-dir", "./dest-dir");
    assert.equal(await sandbox.fs.readTextFile("dest.txt"), "one file");
    assert.equal(
      await sandbox.fs.readTextFile("/scratch/dest-dir/source-dir/main.ts"),
      "main",
    );
    assert.equal(
      await sandbox.fs.readTextFile("dest-dir/source-dir/src/deep/util.ts"),
      "util",
    );
    assert.equal(
      (await sandbox.fs.stat("dest-dir/source-dir/empty")).isDirectory,
      true,
    );
    // A nested destination, and a second upload merging into the first.
    await sandbox.fs.upload(`${project}/source-dir`, "a/b/c");
    await Deno.writeTextFile("source-dir/later.ts", "later");
    await sandbox.fs.upload(new URL(`file://${project}/source-dir`), "a/b/c");
    assert.equal(
      await sandbox.fs.readTextFile("a/b/c/source-dir/later.ts"),
      "later",
    );

    // A program's output, then the d.ts download examples.
    const child = await sandbox.deno.run({
      code: `await Deno.mkdir("source-dir/out", { recursive: true });
        await Deno.writeTextFile("source-dir/out/report.txt", "done");
        await Deno.writeTextFile("source.txt", "from the sandbox");`,
    });
    assert.equal((await child.status).success, true);
    await sandbox.fs.download("./source.txt", "./downloaded.txt");
    await sandbox.fs.download("./source-dir", "./download-dir");
    assert.equal(await Deno.readTextFile("downloaded.txt"), "from the sandbox");
    assert.deepEqual(await hostFiles("download-dir"), [
      "source-dir/",
      "source-dir/out/",
      "source-dir/out/report.txt",
    ]);
    // The whole tree of /scratch, into a nested host directory.
    await sandbox.fs.download("/scratch", `${project}/all/of/it`);
    assert.equal(
      await Deno.readTextFile(
        "all/of/it/scratch/dest-dir/source-dir/src/deep/util.ts",
      ),
      "util",
    );
  });
});

Deno.test("sandbox.fs.upload/download: a symlink refuses the transfer before anything is written", async () => {
  await using parent = await workspaces();
  await using sandbox = await Sandbox.create({
    allowNet: [],
    airlock: { tmpDir: parent.path },
  });
  await inProject(async (project) => {
    await Deno.mkdir("tree/a", { recursive: true });
    await Deno.writeTextFile("tree/a/file.txt", "x");
    await Deno.symlink("/etc/passwd", "tree/z-link");
    await assert.rejects(
      sandbox.fs.upload("tree", "dest"),
      (e) =>
        e instanceof AirlockUnsupportedError &&
        e.message.includes(`'${project}/tree/z-link'`),
    );
    await assert.rejects(sandbox.fs.stat("dest"), Deno.errors.NotFound);

    // A link left in the sandbox's files (planted from the host: Deno's
    // --allow-write=/scratch cannot make one) is never copied out: the
    // user's tools would follow it on the host.
    await sandbox.fs.mkdir("out/sub", { recursive: true });
    await sandbox.fs.writeTextFile("out/sub/r.txt", "r");
    await Deno.symlink("/etc/shadow", `${sandbox.airlock.scratchPath}/out/zz`);
    await assert.rejects(
      sandbox.fs.download("out", "got"),
      (e) =>
        e instanceof AirlockUnsupportedError &&
        e.message.includes("'/scratch/out/zz'"),
    );
    await assert.rejects(Deno.stat("got"), Deno.errors.NotFound);
    await assert.rejects(
      sandbox.fs.download("out/zz", "got.txt"),
      AirlockUnsupportedError,
    );
    // Control: without the link the same download goes through.
    await sandbox.fs.remove("out/zz");
    await sandbox.fs.download("out", "got");
    assert.equal(await Deno.readTextFile("got/out/sub/r.txt"), "r");
  });
});

Deno.test("sandbox.fs errors name sandbox paths and the caller's own paths, never the harness's workspace", async () => {
  await using parent = await workspaces();
  await using sandbox = await Sandbox.create({
    allowNet: [],
    airlock: { tmpDir: parent.path },
  });
  const fs = sandbox.fs;
  await fs.writeTextFile("file.txt", "x");
  await fs.mkdir("dir/inner", { recursive: true });
  await inProject(async () => {
    await Deno.writeTextFile("local.txt", "l");
    const failures: [string, () => Promise<unknown>, RegExp][] = [
      [
        "read a missing file",
        () => fs.readTextFile("missing.txt"),
        /'\/scratch\/missing\.txt'/,
      ],
      [
        "mkdir without parents",
        () => fs.mkdir("no/such/dir"),
        /'\/scratch\/no\/such\/dir'/,
      ],
      ["mkdir an existing dir", () => fs.mkdir("dir"), /'\/scratch\/dir'/],
      [
        "list a file",
        () => Array.fromAsync(fs.readDir("file.txt")),
        /'\/scratch\/file\.txt'/,
      ],
      [
        "write into a file",
        () => fs.writeTextFile("file.txt/x", "y"),
        /\/scratch\/file\.txt/,
      ],
      [
        "write onto a directory",
        () => fs.writeTextFile("dir", "y"),
        /'\/scratch\/dir'/,
      ],
      ["remove a non-empty dir", () => fs.remove("dir"), /'\/scratch\/dir'/],
      [
        "upload into a file",
        () => fs.upload("local.txt", "file.txt/x"),
        /\/scratch\/file\.txt/,
      ],
      [
        "upload a missing host path",
        () => fs.upload("nope", "."),
        new RegExp(`nope`),
      ],
      [
        "download a missing file",
        () => fs.download("missing.txt", "x"),
        /'\/scratch\/missing\.txt'/,
      ],
      [
        "download onto a host file's child",
        () => fs.download("file.txt", "local.txt/x"),
        /'local\.txt\/x'/,
      ],
      [
        "airlock's own fs",
        () => sandbox.airlock.fs.readTextFile("/scratch/gone"),
        /'\/scratch\/gone'/,
      ],
    ];
    for (const [what, promise, names] of failures) {
      const error = await promise().then(
        () => assert.fail(`${what}: expected an error`),
        (e: unknown) => e as Error,
      );
      assert.match(error.message, names, `${what}: ${error.message}`);
      for (const text of [error.message, String(error.stack)]) {
        assert.ok(
          !text.includes(parent.path),
          `${what} shows the harness's workspace: ${text}`,
        );
      }
    }
  });
});
