import assert from "node:assert/strict";
import { SandboxIdentityPool } from "./host_identity.ts";

const isRoot = Deno.uid() === 0;

Deno.test({
  name:
    "SandboxIdentityPool.acquire() gives concurrent sandboxes distinct host uids",
  ignore: !isRoot,
  fn() {
    const pool = new SandboxIdentityPool();
    assert.equal(pool.privateUids, true);
    const ids = Array.from({ length: 200 }, () => pool.acquire());
    const uids = new Set(ids.map((id) => id.hostUid));
    assert.equal(uids.size, ids.length);
    for (const id of ids) {
      assert.equal(typeof id.hostUid, "number");
      assert.equal(id.hostGid, id.hostUid);
      assert.equal(id.enforceProcesses, true);
      id.release();
    }
  },
});

Deno.test({
  name:
    "SandboxIdentityPool() picks uids below 2^31 (bwrap cannot map higher) and above login ranges",
  ignore: !isRoot,
  fn() {
    const pool = new SandboxIdentityPool();
    for (let i = 0; i < 500; i++) {
      const id = pool.acquire();
      assert.ok(id.hostUid! < 2 ** 31, `${id.hostUid}`);
      assert.ok(id.hostUid! >= 1000, `${id.hostUid}`);
      assert.notEqual(id.hostUid, 65534);
      id.release();
    }
  },
});

Deno.test({
  name:
    "SandboxIdentityPool.acquire() uses every uid of its range once, then refuses",
  ignore: !isRoot,
  fn() {
    const pool = new SandboxIdentityPool({
      first: 70_000,
      size: 3,
      lockDir: Deno.makeTempDirSync({ prefix: "airlock-uids-" }),
    });
    const ids = [pool.acquire(), pool.acquire(), pool.acquire()];
    assert.deepEqual(
      ids.map((id) => id.hostUid).sort(),
      [70_000, 70_001, 70_002],
    );
    assert.throws(
      () => pool.acquire(),
      /Cannot start another sandbox as all 3 sandbox uids are in use/,
    );
  },
});

Deno.test({
  name: "SandboxIdentity.release() lets the uid be reused",
  ignore: !isRoot,
  fn() {
    const pool = new SandboxIdentityPool({
      first: 70_000,
      size: 1,
      lockDir: Deno.makeTempDirSync({ prefix: "airlock-uids-" }),
    });
    const first = pool.acquire();
    first.release();
    const second = pool.acquire();
    assert.equal(second.hostUid, 70_000);
  },
});

Deno.test({
  name:
    "SandboxIdentity.release() twice never frees a uid another sandbox holds",
  ignore: !isRoot,
  fn() {
    const pool = new SandboxIdentityPool({
      first: 70_000,
      size: 1,
      lockDir: Deno.makeTempDirSync({ prefix: "airlock-uids-" }),
    });
    const first = pool.acquire();
    first.release();
    const second = pool.acquire();
    first.release(); // stale, must be a no-op
    assert.throws(() => pool.acquire(), RangeError);
    second.release();
    assert.equal(pool.acquire().hostUid, 70_000);
  },
});

Deno.test("SandboxIdentityPool({ shareHarnessUid }) keeps the harness uid and does not cap processes", () => {
  const pool = new SandboxIdentityPool({ shareHarnessUid: true });
  assert.equal(pool.privateUids, false);
  const id = pool.acquire();
  assert.equal(id.hostUid, null);
  assert.equal(id.hostGid, null);
  // RLIMIT_NPROC would count every process of the shared user.
  assert.equal(id.enforceProcesses, false);
  id.release();
});

// ---------------------------------------------------------------------------
// Across processes: a CLI run and a server on one host share the uid space.

const decoder = new TextDecoder();
const hostIdentity = new URL("./host_identity.ts", import.meta.url).href;

/** A uid range of `size` far from the defaults, different per test. */
function testRange(size: number): { first: number; size: number } {
  return {
    first: 2_100_000_000 + Math.floor(Math.random() * 40_000_000),
    size,
  };
}

/**
 * Runs `body` in a second harness process with `pool` (a
 * SandboxIdentityPool over `options`) in scope; returns its stdout lines.
 */
async function inOtherHarness(
  options: object,
  body: string,
): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { SandboxIdentityPool } from ${JSON.stringify(hostIdentity)};
       const pool = new SandboxIdentityPool(${JSON.stringify(options)});
       ${body}`,
    ],
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, decoder.decode(out.stderr));
  return decoder.decode(out.stdout).trim().split("\n");
}

/** Whether `pid` is gone or dead (a zombie runs nothing). */
function gone(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(Deno.readTextFileSync(`/proc/${pid}/status`));
  } catch {
    return true;
  }
}

async function pollUntil(what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (let wait = 1; !done(); wait = Math.min(wait * 2, 100)) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

Deno.test({
  name:
    "SandboxIdentityPool.acquire() never gives two harness processes the same uid",
  ignore: !isRoot,
  async fn() {
    const lockDir = await Deno.makeTempDir({ prefix: "airlock-uids-" });
    try {
      const options = { ...testRange(2), lockDir };
      const pool = new SandboxIdentityPool(options);
      const mine = pool.acquire();
      const [theirs, second] = await inOtherHarness(
        options,
        `console.log(pool.acquire().hostUid);
         try { pool.acquire(); console.log("acquired"); }
         catch (e) { console.log(e.name + ": " + e.message); }`,
      );
      assert.notEqual(Number(theirs), mine.hostUid);
      // The range has two uids: one each, then none left for either.
      assert.match(
        second!,
        /^RangeError: Cannot start another sandbox as all 2 sandbox uids are in use \(by this harness or another on this host\)/,
      );
      // The other harness exited without releasing: the kernel dropped its
      // lock, so its uid is free again.
      assert.equal(pool.acquire().hostUid, Number(theirs));
      assert.throws(() => pool.acquire(), RangeError);
    } finally {
      await Deno.remove(lockDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "SandboxIdentityPool: control, harnesses with separate claim directories do collide",
  ignore: !isRoot,
  async fn() {
    const range = testRange(1);
    const [a, b] = [
      await Deno.makeTempDir({ prefix: "airlock-uids-" }),
      await Deno.makeTempDir({ prefix: "airlock-uids-" }),
    ];
    try {
      const mine = new SandboxIdentityPool({ ...range, lockDir: a }).acquire();
      const [theirs] = await inOtherHarness(
        { ...range, lockDir: b },
        "console.log(pool.acquire().hostUid);",
      );
      assert.equal(Number(theirs), mine.hostUid);
    } finally {
      await Deno.remove(a, { recursive: true });
      await Deno.remove(b, { recursive: true });
    }
  },
});

/** Another harness takes a uid, leaves a process running as it, and dies. */
async function harnessDiesLeavingProcess(
  options: object,
): Promise<{ uid: number; pid: number }> {
  const [uid, pid] = await inOtherHarness(
    options,
    `const id = pool.acquire();
     const child = new Deno.Command("sleep", {
       args: ["300"], uid: id.hostUid, gid: id.hostGid, cwd: "/",
       stdin: "null", stdout: "null", stderr: "null",
     }).spawn();
     child.unref();
     console.log(id.hostUid);
     console.log(child.pid);
     Deno.exit(0); // no release: the claim file stays behind`,
  );
  return { uid: Number(uid), pid: Number(pid) };
}

Deno.test({
  name:
    "SandboxIdentityPool.acquire() kills what a dead harness left running as the uid before handing it out",
  ignore: !isRoot,
  async fn() {
    const lockDir = await Deno.makeTempDir({ prefix: "airlock-uids-" });
    try {
      const options = { ...testRange(1), lockDir };
      const left = await harnessDiesLeavingProcess(options);
      // Control: the orphan outlived its harness.
      assert.ok(!gone(left.pid), "control: the leftover process runs");
      const id = new SandboxIdentityPool(options).acquire();
      assert.equal(id.hostUid, left.uid);
      await pollUntil("the leftover process to die", () => gone(left.pid));
      id.release();
      assert.deepEqual([...Deno.readDirSync(lockDir)], []);
    } finally {
      await Deno.remove(lockDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "SandboxIdentityPool sweeps the uids of dead harnesses on first use, whatever their range",
  ignore: !isRoot,
  async fn() {
    const lockDir = await Deno.makeTempDir({ prefix: "airlock-uids-" });
    try {
      const left = await harnessDiesLeavingProcess({
        ...testRange(1),
        lockDir,
      });
      assert.ok(!gone(left.pid), "control: the leftover process runs");
      const pool = new SandboxIdentityPool({ ...testRange(4), lockDir });
      const id = pool.acquire();
      assert.notEqual(id.hostUid, left.uid);
      await pollUntil("the leftover process to die", () => gone(left.pid));
      // The stale claim is gone; only ours is left.
      assert.deepEqual(
        [...Deno.readDirSync(lockDir)].map((e) => e.name),
        [String(id.hostUid)],
      );
      id.release();
    } finally {
      await Deno.remove(lockDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "SandboxIdentityPool refuses a claim directory others can write (fail closed)",
  ignore: !isRoot,
  async fn() {
    const lockDir = await Deno.makeTempDir({ prefix: "airlock-uids-" });
    try {
      await Deno.chmod(lockDir, 0o777);
      const pool = new SandboxIdentityPool({ ...testRange(2), lockDir });
      assert.throws(
        () => pool.acquire(),
        /Cannot claim sandbox uids in '.*': it must be a directory owned by the harness's user and writable by no one else/,
      );
    } finally {
      await Deno.remove(lockDir, { recursive: true });
    }
  },
});

/** Whether `/usr/bin/perl` (Debian's essential perl-base) is here. */
const hasPerl = (() => {
  try {
    return Deno.statSync("/usr/bin/perl").isFile;
  } catch {
    return false;
  }
})();

/** A leftover the sweep cannot kill; the test kills it (or disposal does). */
interface Unkillable extends AsyncDisposable {
  /** Its host pid. */
  pid: number;
  /** Kills it (as root) and waits for its end. */
  kill(): Promise<void>;
}

/**
 * A process the sweep cannot kill, running as `uid`: effective uid `uid`,
 * real and saved uid root, so a process of `uid` may not signal it (as a
 * killed process still exiting on a busy host, it stays alive through the
 * sweep). Returns it once its uid has changed.
 */
async function unkillableAs(uid: number): Promise<Unkillable> {
  const child = new Deno.Command("/usr/bin/perl", {
    args: ["-e", `$| = 1; $> = ${uid}; print "ready\\n"; sleep 300`],
    cwd: "/",
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  assert.equal((await reader.read()).value, "ready\n");
  reader.releaseLock();
  const uids = Deno.readTextFileSync(`/proc/${child.pid}/status`)
    .match(/^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m)?.slice(1);
  assert.deepEqual(uids, ["0", String(uid), "0"]);
  const kill = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* already dead */ }
    await child.status;
    await child.stdout.cancel().catch(() => {});
  };
  return { pid: child.pid, kill, [Symbol.asyncDispose]: kill };
}

Deno.test({
  name:
    "SandboxIdentityPool.acquire() skips a uid whose leftovers outlive the sweep, never hands it out, and takes it once they are gone",
  ignore: !isRoot || !hasPerl,
  async fn() {
    const lockDir = await Deno.makeTempDir({ prefix: "airlock-uids-" });
    const range = testRange(2);
    const stuck = range.first;
    // A dead harness's mark: its claim file, unlocked.
    Deno.writeFileSync(`${lockDir}/${stuck}`, new Uint8Array(), {
      mode: 0o600,
    });
    await using leftover = await unkillableAs(stuck);
    try {
      // A pool over another range sweeps the mark on first use: the uid is
      // still occupied, which must not stop it from starting a sandbox
      // (before the fix: "Cannot hand out sandbox uid ...").
      const other = new SandboxIdentityPool({ ...testRange(4), lockDir });
      const elsewhere = other.acquire();
      assert.notEqual(elsewhere.hostUid, stuck);
      elsewhere.release();

      const pool = new SandboxIdentityPool({ ...range, lockDir });
      const first = pool.acquire();
      assert.equal(first.hostUid, stuck + 1);
      assert.ok(!gone(leftover.pid), "control: the sweep could not kill it");
      // The mark stays for the next sweep.
      assert.ok(Deno.statSync(`${lockDir}/${stuck}`).isFile);
      assert.throws(
        () => pool.acquire(),
        (error: Error) =>
          error instanceof RangeError &&
          /the free sandbox uids \(1\) still have processes left by a dead harness running as them; kill them \(e\.g\. 'pkill -KILL -U \d+'\)/
            .test(error.message),
      );

      await leftover.kill();
      const second = pool.acquire();
      assert.equal(second.hostUid, stuck);
      first.release();
      second.release();
      assert.deepEqual([...Deno.readDirSync(lockDir)], []);
    } finally {
      await Deno.remove(lockDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "SandboxIdentity.release() kills what still runs as the uid before it frees it (a process that outlived its sandbox never meets the next one)",
  ignore: !isRoot,
  async fn() {
    const lockDir = await Deno.makeTempDir({ prefix: "airlock-uids-" });
    try {
      const pool = new SandboxIdentityPool({ ...testRange(1), lockDir });
      const id = pool.acquire();
      const left = new Deno.Command("sleep", {
        args: ["300"],
        uid: id.hostUid!,
        gid: id.hostGid!,
        cwd: "/",
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      assert.ok(!gone(left.pid), "control: it runs as the uid");
      id.release();
      assert.ok(gone(left.pid), "release() returned with it alive");
      assert.equal((await left.status).signal, "SIGKILL");
      assert.deepEqual([...Deno.readDirSync(lockDir)], []);
      pool.acquire().release();
    } finally {
      await Deno.remove(lockDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "SandboxIdentity.release() keeps the uid marked when what runs as it survives the sweep; it is handed out only once that is gone",
  ignore: !isRoot || !hasPerl,
  async fn() {
    const lockDir = await Deno.makeTempDir({ prefix: "airlock-uids-" });
    const range = testRange(1);
    const pool = new SandboxIdentityPool({ ...range, lockDir });
    const id = pool.acquire();
    await using leftover = await unkillableAs(range.first);
    try {
      id.release();
      assert.ok(Deno.statSync(`${lockDir}/${range.first}`).isFile, "marked");
      assert.throws(() => pool.acquire(), /still have processes left/);
      // Another harness (its own pool) does not take it either.
      assert.throws(
        () => new SandboxIdentityPool({ ...range, lockDir }).acquire(),
        RangeError,
      );
      await leftover.kill();
      const again = pool.acquire();
      assert.equal(again.hostUid, range.first);
      again.release();
      assert.deepEqual([...Deno.readDirSync(lockDir)], []);
    } finally {
      await Deno.remove(lockDir, { recursive: true });
    }
  },
});
