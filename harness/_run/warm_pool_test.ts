/**
 * The waiting process's rules, against a fake sandbox: a run only takes a
 * process launched for it (same key, still alive), and no process waits
 * while a run is live, the sandbox is closing or warm start is off. The
 * launches themselves are covered with real sandboxes by
 * tests/warm_start_test.ts.
 */
import assert from "node:assert/strict";
import { type WarmHost, WarmPool, type WarmProcess } from "./warm_pool.ts";

interface Fake extends WarmProcess {
  key: string;
  alive: boolean;
}

interface FakeHost extends WarmHost<Fake> {
  launched: Fake[];
  discarded: Fake[];
  settled: Promise<unknown>[];
  isBusy: boolean;
}

function fakeHost(overrides: Partial<WarmHost<Fake>> = {}): FakeHost {
  const host: FakeHost = {
    launched: [],
    discarded: [],
    settled: [],
    isBusy: false,
    enabled: true,
    busy: (): boolean => host.isBusy,
    key: (env) => JSON.stringify(env),
    launch: (env) => {
      const process = { key: JSON.stringify(env), alive: true };
      host.launched.push(process);
      return Promise.resolve(process);
    },
    discard: (process) => void host.discarded.push(process),
    settle: (work) => void host.settled.push(work),
    ...overrides,
  };
  return host;
}

Deno.test("WarmPool.take() returns the process refilled for the same env, once", async () => {
  const host = fakeHost();
  const pool = new WarmPool(host);
  pool.refill({ A: "1" });
  assert.equal(await pool.take({ A: "1" }), host.launched[0]);
  assert.equal(await pool.take({ A: "1" }), null);
  assert.deepEqual(host.discarded, []);
});

Deno.test("WarmPool.take() discards a process launched for another env or policy", async () => {
  const host = fakeHost();
  const pool = new WarmPool(host);
  pool.refill({ A: "1" });
  assert.equal(await pool.take({ A: "2" }), null);
  assert.deepEqual(host.discarded, host.launched);
});

Deno.test("WarmPool.take() discards a process that died while waiting", async () => {
  const host = fakeHost();
  const pool = new WarmPool(host);
  pool.refill({});
  host.launched[0]!.alive = false;
  assert.equal(await pool.take({}), null);
  assert.deepEqual(host.discarded, host.launched);
});

Deno.test("WarmPool.refill() launches nothing while busy, when off, or when full", async () => {
  const busy = fakeHost();
  busy.isBusy = true;
  new WarmPool(busy).refill({});
  assert.equal(busy.launched.length, 0);

  const off = fakeHost({ enabled: false });
  new WarmPool(off).refill({});
  assert.equal(off.launched.length, 0);

  const full = fakeHost();
  const pool = new WarmPool(full);
  pool.refill({});
  pool.refill({});
  assert.equal(full.launched.length, 1);
  // Control: the same host launches once idle and empty.
  await pool.take({});
  pool.refill({});
  assert.equal(full.launched.length, 2);
});

Deno.test("WarmPool.refill() swallows a failed launch: the next run launches its own", async () => {
  const host = fakeHost({
    launch: () => Promise.reject(new Error("no bwrap")),
  });
  const pool = new WarmPool(host);
  pool.refill({});
  assert.equal(await pool.take({}), null);
});

Deno.test("WarmPool.keep() keeps an unused process only when it may serve", async () => {
  const host = fakeHost();
  const pool = new WarmPool(host);
  const kept = { key: "{}", alive: true };
  pool.keep(kept);
  assert.equal(await pool.take({}), kept);

  const dead = { key: "{}", alive: false };
  pool.keep(dead);
  host.isBusy = true;
  const duringRun = { key: "{}", alive: true };
  pool.keep(duringRun);
  assert.deepEqual(host.discarded, [dead, duringRun]);
  assert.equal(await pool.take({}), null);

  const off = fakeHost({ enabled: false });
  const unwanted = { key: "{}", alive: true };
  new WarmPool(off).keep(unwanted);
  assert.deepEqual(off.discarded, [unwanted]);
});

Deno.test("WarmPool.drop() discards the waiting process and hands the work to close()", async () => {
  const host = fakeHost();
  const pool = new WarmPool(host);
  pool.refill({});
  pool.drop();
  assert.equal(host.settled.length, 1);
  await Promise.all(host.settled);
  assert.deepEqual(host.discarded, host.launched);
  assert.equal(await pool.take({}), null);
  // Nothing waiting: nothing to hand over.
  pool.drop();
  assert.equal(host.settled.length, 1);
});
