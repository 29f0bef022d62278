import assert from "node:assert/strict";
import {
  type Release,
  RunScheduler,
  type TenantCaps,
  TooManyRunsError,
} from "./_scheduler.ts";

const CAPS: TenantCaps = {
  runsPerToken: 2,
  runsPerSandbox: 2,
  queuedRunsPerToken: 4,
};

/** Tracks which acquisitions were granted, in order. */
function tracker() {
  const granted: string[] = [];
  const releases = new Map<string, Release>();
  return {
    granted,
    take(scheduler: RunScheduler, label: string, caps = CAPS) {
      const [tenant, sandbox] = label.split("/") as [string, string];
      const p = scheduler.acquire(tenant, caps, sandbox).then((release) => {
        granted.push(label);
        releases.set(label, release);
        return release;
      });
      p.catch(() => {});
      return p;
    },
    release(label: string) {
      releases.get(label)!();
    },
  };
}

/** Lets granted promises settle. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("RunScheduler caps each tenant's live runs and queues the rest", async () => {
  const scheduler = new RunScheduler(10);
  const t = tracker();
  t.take(scheduler, "a/s1");
  t.take(scheduler, "a/s2");
  t.take(scheduler, "a/s3");
  await settle();
  assert.deepEqual(t.granted, ["a/s1", "a/s2"]);
  assert.deepEqual(scheduler.usage("a"), { running: 2, queued: 1 });
  t.release("a/s1");
  await settle();
  assert.deepEqual(t.granted, ["a/s1", "a/s2", "a/s3"]);
  // A release twice gives back one slot only.
  t.release("a/s1");
  assert.deepEqual(scheduler.usage("a"), { running: 2, queued: 0 });
});

Deno.test("RunScheduler refuses a run once the tenant's queue is full (too_many_runs)", async () => {
  const scheduler = new RunScheduler(10);
  const caps = { ...CAPS, queuedRunsPerToken: 1 };
  const t = tracker();
  t.take(scheduler, "a/s1", caps);
  t.take(scheduler, "a/s1", caps);
  t.take(scheduler, "a/s1", caps);
  await settle();
  await assert.rejects(
    () => scheduler.acquire("a", caps, "s1"),
    (error: unknown) =>
      error instanceof TooManyRunsError &&
      /'a'.*2 runs live.*limit is 2.*1 waiting.*queue holds 1/.test(
        error.message,
      ),
  );
  // Another tenant is not affected.
  await t.take(scheduler, "b/s9", caps);
  // A queue of 0 refuses as soon as the caps are reached.
  const none = { ...CAPS, queuedRunsPerToken: 0 };
  await t.take(scheduler, "c/s5", none);
  await t.take(scheduler, "c/s6", none);
  await assert.rejects(
    () => scheduler.acquire("c", none, "s7"),
    TooManyRunsError,
  );
});

Deno.test("RunScheduler caps the runs of one sandbox; a later run of another sandbox goes first", async () => {
  const scheduler = new RunScheduler(10);
  const caps = { ...CAPS, runsPerToken: 3, runsPerSandbox: 1 };
  const t = tracker();
  t.take(scheduler, "a/s1", caps);
  t.take(scheduler, "a/s1", caps);
  t.take(scheduler, "a/s2", caps);
  await settle();
  assert.deepEqual(t.granted, ["a/s1", "a/s2"]);
  assert.deepEqual(scheduler.usage("a"), { running: 2, queued: 1 });
});

Deno.test("RunScheduler hands a free slot to the next tenant in turn, not to the burst's queue", async () => {
  const scheduler = new RunScheduler(2);
  const t = tracker();
  // A holds every slot and has two more waiting.
  t.take(scheduler, "a/s1");
  t.take(scheduler, "a/s2");
  t.take(scheduler, "a/s3");
  t.take(scheduler, "a/s4");
  await settle();
  // B and C arrive later, one run each.
  t.take(scheduler, "b/s5");
  t.take(scheduler, "c/s6");
  await settle();
  assert.deepEqual(t.granted, ["a/s1", "a/s2"]);
  t.release("a/s1");
  await settle();
  assert.equal(t.granted.at(-1), "b/s5");
  t.release("a/s2");
  await settle();
  assert.equal(t.granted.at(-1), "c/s6");
  t.release("b/s5");
  await settle();
  // Only now does A's queue move, first come first served.
  assert.equal(t.granted.at(-1), "a/s3");
});

Deno.test("RunScheduler: an aborted wait leaves the queue and a deleted sandbox's waits are refused", async () => {
  const scheduler = new RunScheduler(1);
  const t = tracker();
  await t.take(scheduler, "a/s1");
  const controller = new AbortController();
  const waiting = scheduler.acquire("b", CAPS, "s2", controller.signal);
  const doomed = scheduler.acquire("c", CAPS, "s3");
  waiting.catch(() => {});
  doomed.catch(() => {});
  assert.deepEqual(scheduler.usage("b"), { running: 0, queued: 1 });
  controller.abort(new Error("client went away"));
  await assert.rejects(waiting, /client went away/);
  assert.deepEqual(scheduler.usage("b"), { running: 0, queued: 0 });
  scheduler.cancelSandbox("s3", new Error("sandbox deleted"));
  await assert.rejects(doomed, /sandbox deleted/);
  t.release("a/s1");
  assert.equal(scheduler.running, 0);
  // An already aborted signal never queues.
  await assert.rejects(
    () => scheduler.acquire("d", CAPS, "s4", AbortSignal.abort()),
  );
});
