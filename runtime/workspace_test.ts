import assert from "node:assert/strict";
import { SandboxIdentityPool } from "./host_identity.ts";
import { Workspace } from "./workspace.ts";

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
async function waitUntilGone(path: string, ms = 5000): Promise<boolean> {
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
