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
    const pool = new SandboxIdentityPool({ first: 70_000, size: 3 });
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
    const pool = new SandboxIdentityPool({ first: 70_000, size: 1 });
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
    const pool = new SandboxIdentityPool({ first: 70_000, size: 1 });
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
