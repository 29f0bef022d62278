import assert from "node:assert/strict";
import { readAhead } from "./_body.ts";

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

/** A source of `count` chunks of `size` bytes (byte i of the stream = i % 251), counting pulls. */
function source(count: number, size: number) {
  const state = { pulled: 0 };
  async function* chunks() {
    for (let c = 0; c < count; c++) {
      state.pulled++;
      await tick();
      const chunk = new Uint8Array(size);
      for (let i = 0; i < size; i++) chunk[i] = (c * size + i) % 251;
      yield chunk;
    }
  }
  return { state, chunks: chunks() };
}

Deno.test("readAhead hands over every byte in order, joined into fewer chunks while the consumer is busy", async () => {
  const { state, chunks } = source(64, 1000);
  const sizes: number[] = [];
  const out: number[] = [];
  for await (const chunk of readAhead(chunks, 1 << 20)) {
    sizes.push(chunk.length);
    out.push(...chunk);
    // A slow consumer (a TLS write in the injector): reads go on meanwhile.
    // It is busy until the reader has pulled 5 chunks past what it was
    // handed (a condition, not a 5 ms sleep: on a loaded machine the reader
    // got as little time as the sleep and the chunks were not joined).
    const want = Math.min(64, out.length / 1000 + 5);
    const deadline = Date.now() + 30_000;
    while (state.pulled < want) {
      assert.ok(Date.now() < deadline, `no read ahead: ${state.pulled}`);
      await tick();
    }
  }
  assert.equal(out.length, 64_000);
  assert.ok(out.every((byte, i) => byte === i % 251), "bytes out of order");
  assert.ok(
    sizes.length < 32,
    `expected joined chunks, got ${sizes.length} of sizes ${sizes}`,
  );
});

Deno.test("readAhead stops reading once `limit` bytes wait: a stalled consumer cannot make it buffer a whole download", async () => {
  const { state, chunks } = source(10_000, 1024);
  const iterator = readAhead(chunks, 8 * 1024)[Symbol.asyncIterator]();
  const first = await iterator.next();
  assert.equal(first.done, false);
  // The consumer now stalls; give the reader ample time.
  for (let i = 0; i < 200; i++) await tick();
  // At most the limit waits, plus the chunk delivered and one in flight.
  assert.ok(
    state.pulled <= 8 + 2 + 1,
    `read ${state.pulled} chunks of 1 KiB with an 8 KiB limit`,
  );
  await iterator.return(undefined);
});

Deno.test("readAhead delivers the bytes before a source error, then throws that error", async () => {
  async function* failing() {
    yield new Uint8Array([1, 2]);
    await tick();
    throw new Error("body ended 5 bytes early");
  }
  const out: number[] = [];
  await assert.rejects(async () => {
    for await (const chunk of readAhead(failing())) out.push(...chunk);
  }, /body ended 5 bytes early/);
  assert.deepEqual(out, [1, 2]);
});

Deno.test("readAhead stops reading when the consumer stops early", async () => {
  const { state, chunks } = source(10_000, 16);
  for await (const _ of readAhead(chunks, 1 << 20)) break;
  const pulledAtStop = state.pulled;
  for (let i = 0; i < 100; i++) await tick();
  assert.ok(
    state.pulled <= pulledAtStop + 1,
    `kept reading after the consumer left: ${pulledAtStop} -> ${state.pulled}`,
  );
});
