import assert from "node:assert/strict";
import { SandboxIdentityPool } from "./host_identity.ts";
import { Workspace } from "./workspace.ts";
import { scratchFsSupport, sweepLeftoverWorkspaces } from "./scratch_volume.ts";

const isRoot = Deno.uid() === 0;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Polls until `path` is gone, for at most `ms` (no timing is asserted). */
async function waitUntilGone(path: string, ms = 30_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!(await exists(path))) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return !(await exists(path));
}

const mode = async (path: string) =>
  ((await Deno.stat(path)).mode ?? 0) & 0o7777;

Deno.test({
  name:
    "Workspace.create() lays out root 0711, private 0700 and box 0700 owned by the sandbox uid",
  ignore: !isRoot,
  async fn() {
    const parent = await Deno.makeTempDir({ prefix: "airlock-ws-test-" });
    // Traversable by the sandbox uid, as a workspace parent must be.
    await Deno.chmod(parent, 0o711);
    const identity = new SandboxIdentityPool().acquire();
    const ws = await Workspace.create({ identity, tmpDir: parent });
    try {
      assert.ok(ws.root.startsWith(`${parent}/airlock-`));
      assert.equal(ws.privateDir, `${ws.root}/private`);
      assert.equal(ws.boxDir, `${ws.root}/box`);
      // Traversable by the sandbox uid, listable by no one else.
      assert.equal(await mode(ws.root), 0o711);
      assert.equal(await mode(ws.privateDir), 0o700);
      assert.equal(await mode(ws.boxDir), 0o700);
      const root = await Deno.stat(ws.root);
      assert.equal(root.uid, Deno.uid());
      const priv = await Deno.stat(ws.privateDir);
      assert.equal(priv.uid, Deno.uid());
      const box = await Deno.stat(ws.boxDir);
      assert.equal(box.uid, identity.hostUid);
      assert.equal(box.gid, identity.hostGid);
      assert.notEqual(box.uid, Deno.uid());
    } finally {
      await ws.close();
      identity.release();
      await Deno.remove(parent, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "Workspace files: private files are 0600, scratch belongs to the sandbox uid",
  ignore: !isRoot,
  async fn() {
    const parent = await Deno.makeTempDir({ prefix: "airlock-ws-test-" });
    // Traversable by the sandbox uid, as a workspace parent must be.
    await Deno.chmod(parent, 0o711);
    const identity = new SandboxIdentityPool().acquire();
    const ws = await Workspace.create({ identity, tmpDir: parent });
    try {
      const filter = await ws.writePrivate("seccomp.bpf", new Uint8Array([1]));
      assert.equal(filter, `${ws.privateDir}/seccomp.bpf`);
      assert.equal(await mode(filter), 0o600);

      const scratch = await ws.scratchDir();
      assert.equal(scratch, `${ws.boxDir}/scratch`);
      assert.equal((await Deno.stat(scratch)).uid, identity.hostUid);
      assert.equal(await mode(scratch), 0o700);
      assert.equal(await ws.scratchDir(), scratch, "idempotent");

      const run1 = await ws.newRunDir();
      const run2 = await ws.newRunDir();
      assert.notEqual(run1, run2);
      assert.ok(run1.startsWith(`${ws.boxDir}/`));
    } finally {
      await ws.close();
      identity.release();
      await Deno.remove(parent, { recursive: true });
    }
  },
});

Deno.test({
  name: "Workspace.close() removes the whole tree, is idempotent and ends use",
  async fn() {
    const parent = await Deno.makeTempDir({ prefix: "airlock-ws-test-" });
    // Traversable by the sandbox uid, as a workspace parent must be.
    await Deno.chmod(parent, 0o711);
    const identity = new SandboxIdentityPool({ shareHarnessUid: true })
      .acquire();
    const ws = await Workspace.create({ identity, tmpDir: parent });
    try {
      await ws.writePrivate("a", new Uint8Array(10));
      await Deno.writeTextFile(`${await ws.scratchDir()}/out.txt`, "data");
      assert.equal(ws.closed, false);
      await ws.close();
      assert.equal(ws.closed, true);
      assert.equal(await exists(ws.root), false);
      await ws.close(); // no throw
      await assert.rejects(
        ws.newRunDir(),
        /Cannot use a workspace after close/,
      );
      await assert.rejects(
        ws.writePrivate("b", new Uint8Array()),
        /after close/,
      );
      assert.deepEqual([...Deno.readDirSync(parent)], []);
    } finally {
      await Deno.remove(parent, { recursive: true });
    }
  },
});

Deno.test({
  name: "Workspace watchdog deletes the tree when the harness is SIGKILLed",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "airlock-ws-test-" });
    const script = `${dir}/harness.ts`;
    const runtime = new URL(".", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { Workspace } from "${runtime}workspace.ts";
import { SandboxIdentityPool } from "${runtime}host_identity.ts";
const identity = new SandboxIdentityPool({ shareHarnessUid: true }).acquire();
const ws = await Workspace.create({ identity, tmpDir: ${JSON.stringify(dir)} });
await Deno.writeTextFile(ws.privateDir + "/secret", "x");
console.log(ws.root);
setInterval(() => {}, 60_000);
`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", "--no-lock", script],
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    let root = "";
    try {
      const reader = child.stdout.pipeThrough(new TextDecoderStream())
        .getReader();
      let text = "";
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        assert.ok(!done, `harness child ended early: '${text}'`);
        text += value;
      }
      root = text.trim();
      assert.ok(root.startsWith(`${dir}/airlock-`), root);
      assert.ok(await exists(`${root}/private/secret`));

      child.kill("SIGKILL");
      assert.equal((await child.status).signal, "SIGKILL");
      await reader.cancel();

      assert.ok(
        await waitUntilGone(root),
        `workspace '${root}' survived its harness`,
      );
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("Workspace.create() refuses a parent the sandbox uid cannot traverse, naming it", async () => {
  const parent = await Deno.makeTempDir({ prefix: "airlock-ws-test-" }); // 0700
  try {
    const identity = new SandboxIdentityPool().acquire();
    if (identity.hostUid === null) return; // only meaningful with private uids
    await assert.rejects(
      () => Workspace.create({ identity, tmpDir: parent }),
      (error: Error) =>
        error.message.includes(parent) && /chmod 0711/.test(error.message),
    );
    identity.release();
    assert.deepEqual([...Deno.readDirSync(parent)], [], "nothing was created");
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

// --- the scratch quota as a filesystem -------------------------------------

const loopSupported = scratchFsSupport().loop === null;
const MIB = 1024 * 1024;

/** The mount on `dir` in this mount namespace: type, source, options. */
function mountOf(
  dir: string,
): { fstype: string; source: string; options: string[] } | null {
  for (
    const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
  ) {
    const [left, right] = line.split(" - ");
    const fields = left?.split(" ") ?? [];
    if (fields[4] !== dir || !right) continue;
    const [fstype = "", source = "", superOptions = ""] = right.split(" ");
    return {
      fstype,
      source,
      options: [...(fields[5] ?? "").split(","), ...superOptions.split(",")],
    };
  }
  return null;
}

/** Loop devices whose backing file lies under `dir` (deleted ones too). */
async function loopsUnder(dir: string): Promise<string[]> {
  const out = await new Deno.Command("losetup", {
    args: ["--list", "--noheadings", "--output", "NAME,BACK-FILE"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n")
    .filter((line) => line.includes(`${dir}/`));
}

async function loopWorkspace(
  parent: string,
  quotaMb = 4,
): Promise<{ ws: Workspace; uid: number | null; release: () => void }> {
  const identity = new SandboxIdentityPool().acquire();
  const ws = await Workspace.create({
    identity,
    tmpDir: parent,
    scratch: { quotaBytes: quotaMb * MIB, fs: "loop" },
  });
  return { ws, uid: identity.hostUid, release: () => identity.release() };
}

Deno.test({
  name:
    "Workspace with a scratch quota: box/ is an ext4 loop mount of exactly the quota, nosuid,nodev,noexec, 0700 and owned by the sandbox uid",
  ignore: !isRoot || !loopSupported,
  async fn() {
    const parent = await Deno.makeTempDir({ prefix: "airlock-ws-test-" });
    await Deno.chmod(parent, 0o711);
    const { ws, uid, release } = await loopWorkspace(parent);
    try {
      assert.equal(ws.quotaMode, "loop");
      const mount = mountOf(ws.boxDir);
      assert.ok(mount, "box/ is a mount point");
      assert.equal(mount.fstype, "ext4");
      assert.match(mount.source, /^\/dev\/loop\d+$/);
      for (const flag of ["nosuid", "nodev", "noexec"]) {
        assert.ok(mount.options.includes(flag), `${flag}: ${mount.options}`);
      }
      const image = `${ws.privateDir}/scratch.img`;
      assert.equal((await Deno.stat(image)).size, 4 * MIB);
      assert.equal(await mode(image), 0o600);
      assert.equal((await loopsUnder(ws.root)).length, 1);
      const box = await Deno.stat(ws.boxDir);
      assert.equal(await mode(ws.boxDir), 0o700);
      assert.equal(box.uid, uid);
      assert.notEqual(box.uid, Deno.uid());
      assert.deepEqual([...Deno.readDirSync(ws.boxDir)], [], "no lost+found");
      const scratch = await ws.scratchDir();
      assert.equal((await Deno.stat(scratch)).uid, box.uid);
    } finally {
      await ws.close();
      release();
      await Deno.remove(parent, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "Workspace scratch filesystem: the sandbox uid's writes past the quota fail with ENOSPC; the image never grows past the quota",
  ignore: !isRoot || !loopSupported,
  async fn() {
    const parent = await Deno.makeTempDir({ prefix: "airlock-ws-test-" });
    await Deno.chmod(parent, 0o711);
    const { ws, release } = await loopWorkspace(parent);
    try {
      const scratch = await ws.scratchDir();
      const owner = await Deno.stat(scratch);
      // Write 3x the quota as the sandbox's uid.
      const out = await new Deno.Command("setpriv", {
        args: [
          `--reuid=${owner.uid}`,
          `--regid=${owner.gid}`,
          "--clear-groups",
          "dd",
          "if=/dev/zero",
          `of=${scratch}/fill`,
          "bs=64K",
          "count=192",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const said = new TextDecoder().decode(out.stderr);
      assert.equal(out.success, false, said);
      assert.match(said, /No space left on device/);
      const written = (await Deno.stat(`${scratch}/fill`)).size;
      assert.ok(written > 3 * MIB && written < 4 * MIB, `${written}`);
      const image = await Deno.stat(`${ws.privateDir}/scratch.img`);
      assert.ok((image.blocks ?? 0) * 512 <= 4 * MIB);
      assert.ok(await ws.volume!.hostBytes() <= 4 * MIB);
      // Root's reserve: the harness can still write its own files.
      await Deno.writeTextFile(`${ws.boxDir}/harness-file`, "x".repeat(8192));
    } finally {
      await ws.close();
      release();
      await Deno.remove(parent, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "Workspace.close() unmounts the scratch filesystem, detaches its loop device and deletes its image",
  ignore: !isRoot || !loopSupported,
  async fn() {
    const parent = await Deno.makeTempDir({ prefix: "airlock-ws-test-" });
    await Deno.chmod(parent, 0o711);
    const { ws, release } = await loopWorkspace(parent);
    try {
      await Deno.writeTextFile(`${await ws.scratchDir()}/out.txt`, "data");
      assert.ok(mountOf(ws.boxDir));
      await ws.close();
      assert.equal(mountOf(ws.boxDir), null);
      assert.deepEqual(await loopsUnder(ws.root), []);
      assert.equal(await exists(ws.root), false);
      assert.deepEqual([...Deno.readDirSync(parent)], []);
    } finally {
      release();
      await Deno.remove(parent, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "Workspace.create() with tmpfs mounts a sized tmpfs (nosuid,nodev,noexec) that refuses writes past the quota",
  ignore: !isRoot || scratchFsSupport().tmpfs !== null,
  async fn() {
    const parent = await Deno.makeTempDir({ prefix: "airlock-ws-test-" });
    await Deno.chmod(parent, 0o711);
    const identity = new SandboxIdentityPool().acquire();
    const ws = await Workspace.create({
      identity,
      tmpDir: parent,
      scratch: { quotaBytes: 2 * MIB, fs: "tmpfs" },
    });
    try {
      assert.equal(ws.quotaMode, "tmpfs");
      const mount = mountOf(ws.boxDir);
      assert.equal(mount?.fstype, "tmpfs");
      for (const flag of ["nosuid", "nodev", "noexec"]) {
        assert.ok(mount?.options.includes(flag), `${flag}`);
      }
      assert.equal((await Deno.stat(ws.boxDir)).uid, identity.hostUid);
      await assert.rejects(
        Deno.writeFile(`${ws.boxDir}/big`, new Uint8Array(3 * MIB)),
        /No space left on device/,
      );
      await ws.close();
      assert.equal(mountOf(ws.boxDir), null);
      assert.equal(await exists(ws.root), false);
    } finally {
      await ws.close();
      identity.release();
      await Deno.remove(parent, { recursive: true });
    }
  },
});

/** Starts a harness process that makes a loop workspace and prints its root. */
async function harnessWithVolume(dir: string, ownGroup: boolean) {
  const script = `${dir}/harness.ts`;
  const runtime = new URL(".", import.meta.url).href;
  await Deno.writeTextFile(
    script,
    `import { Workspace } from "${runtime}workspace.ts";
import { SandboxIdentityPool } from "${runtime}host_identity.ts";
const identity = new SandboxIdentityPool().acquire();
const ws = await Workspace.create({ identity, tmpDir: ${
      JSON.stringify(dir)
    }, scratch: { quotaBytes: ${2 * MIB}, fs: "loop" } });
await Deno.writeTextFile((await ws.scratchDir()) + "/data", "x");
console.log(ws.root);
setInterval(() => {}, 60_000);
`,
  );
  const deno = [Deno.execPath(), "run", "-A", "--no-config", "--no-lock"];
  // setsid: the harness leads its own process group, which its watchdog
  // joins, so one kill can take both (a container stop does that).
  const [cmd, ...args] = ownGroup
    ? ["setsid", ...deno, script]
    : [...deno, script];
  const child = new Deno.Command(cmd!, {
    args,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    assert.ok(!done, `harness child ended early: '${text}'`);
    text += value;
  }
  await reader.cancel();
  return { child, root: text.trim() };
}

Deno.test({
  name:
    "Workspace watchdog unmounts the scratch filesystem and deletes its image when the harness is SIGKILLed",
  ignore: !isRoot || !loopSupported,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "airlock-ws-test-" });
    await Deno.chmod(dir, 0o711);
    const { child, root } = await harnessWithVolume(dir, false);
    try {
      assert.ok(mountOf(`${root}/box`), "mounted while the harness lives");
      child.kill("SIGKILL");
      await child.status;
      assert.ok(await waitUntilGone(root), `'${root}' survived its harness`);
      assert.equal(mountOf(`${root}/box`), null);
      assert.ok(
        await pollUntil(async () => (await loopsUnder(root)).length === 0),
        "the loop device stayed attached",
      );
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "sweepLeftoverWorkspaces() removes a mounted workspace whose harness and watchdog both died, and leaves live ones alone",
  ignore: !isRoot || !loopSupported,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "airlock-ws-test-" });
    await Deno.chmod(dir, 0o711);
    const { child, root } = await harnessWithVolume(dir, true);
    const { ws: live, release } = await loopWorkspace(dir);
    try {
      // The whole group: the harness and its watchdog (nothing cleans up).
      Deno.kill(-child.pid, "SIGKILL");
      await child.status;
      assert.ok(mountOf(`${root}/box`), "the dead harness left its mount");
      assert.equal((await loopsUnder(root)).length, 1);
      assert.ok(await exists(`${root}/private/scratch.img`));

      assert.equal(await sweepLeftoverWorkspaces(dir), 1);
      assert.equal(await exists(root), false);
      assert.equal(mountOf(`${root}/box`), null);
      assert.ok(
        await pollUntil(async () => (await loopsUnder(root)).length === 0),
        "the loop device stayed attached",
      );
      // Ours is alive: untouched, still mounted and usable.
      assert.ok(mountOf(live.boxDir));
      await Deno.writeTextFile(`${await live.scratchDir()}/still`, "here");
      assert.equal(await sweepLeftoverWorkspaces(dir), 0);
    } finally {
      try {
        Deno.kill(-child.pid, "SIGKILL");
      } catch { /* already gone */ }
      await live.close();
      release();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Polls an async condition until it holds, for at most `ms`. */
async function pollUntil(
  check: () => Promise<boolean>,
  ms = 30_000,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return await check();
}
