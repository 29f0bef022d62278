import assert from "node:assert/strict";
import { capStream } from "./output_cap.ts";

function chunks(...sizes: number[]): ReadableStream<Uint8Array> {
  let next = 0;
  return ReadableStream.from(
    sizes.map((n) => Uint8Array.from({ length: n }, () => next++ % 256)),
  );
}

async function bytes(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

Deno.test("capStream() passes a stream under the cap through unchanged", async () => {
  let overflows = 0;
  const capped = capStream(chunks(3, 4, 5), 100, () => overflows++);
  const out = await bytes(capped.readable);
  assert.deepEqual([...out], Array.from({ length: 12 }, (_, i) => i));
  assert.equal(capped.truncated, false);
  assert.equal(overflows, 0);
});

Deno.test("capStream() lets exactly cap bytes through without truncating", async () => {
  let overflows = 0;
  const capped = capStream(chunks(4, 4), 8, () => overflows++);
  assert.equal((await bytes(capped.readable)).length, 8);
  assert.equal(capped.truncated, false);
  assert.equal(overflows, 0);
});

Deno.test("capStream() keeps only the first cap bytes and reports the overflow once", async () => {
  let overflows = 0;
  const capped = capStream(chunks(3, 4, 5, 100, 100), 9, () => overflows++);
  const out = await bytes(capped.readable);
  assert.deepEqual([...out], [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(capped.truncated, true);
  assert.equal(overflows, 1);
});

Deno.test("capStream() cuts a single huge chunk at the cap", async () => {
  let overflows = 0;
  const capped = capStream(chunks(1_000_000), 10, () => overflows++);
  assert.equal((await bytes(capped.readable)).length, 10);
  assert.equal(capped.truncated, true);
  assert.equal(overflows, 1);
});

Deno.test("capStream() keeps draining the source after the cap (the child never blocks)", async () => {
  let pulled = 0;
  let finished!: () => void;
  const drained = new Promise<void>((resolve) => finished = resolve);
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (++pulled > 50) {
        controller.close();
        finished();
        return;
      }
      controller.enqueue(new Uint8Array(1000));
    },
  }, { highWaterMark: 0 });
  const capped = capStream(source, 1500, () => {});
  assert.equal((await bytes(capped.readable)).length, 1500);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bounded = new Promise<"stalled">((resolve) => {
    timer = setTimeout(() => resolve("stalled"), 5000);
  });
  const outcome = await Promise.race([drained.then(() => "drained"), bounded]);
  clearTimeout(timer);
  assert.equal(outcome, "drained");
  assert.equal(pulled, 51);
});

Deno.test("capStream() records the source's first chunk (at most 256 bytes) as head", async () => {
  const capped = capStream(chunks(300, 100), 1000, () => {});
  await bytes(capped.readable);
  assert.equal(capped.head.length, 256);
  assert.deepEqual([...capped.head], Array.from({ length: 256 }, (_, i) => i));

  const small = capStream(chunks(5, 100), 1000, () => {});
  await bytes(small.readable);
  assert.deepEqual([...small.head], [0, 1, 2, 3, 4]);
});

Deno.test("capStream() reads head eagerly: known even when nobody consumes the stream", async () => {
  const capped = capStream(chunks(7), 1000, () => {});
  await capped.headReady;
  assert.deepEqual([...capped.head], [0, 1, 2, 3, 4, 5, 6]);
  // The consumer still gets every byte afterwards.
  assert.deepEqual([...await bytes(capped.readable)], [0, 1, 2, 3, 4, 5, 6]);
});

Deno.test("capStream() ends cleanly when the source errors", async () => {
  let pulls = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulls++ === 0) controller.enqueue(new Uint8Array([1, 2]));
      else controller.error(new Error("pipe broke"));
    },
  }, { highWaterMark: 0 });
  const capped = capStream(source, 100, () => {});
  assert.deepEqual([...await bytes(capped.readable)], [1, 2]);
  assert.equal(capped.truncated, false);
});
