import assert from "node:assert/strict";
import { directorySize, walkQuota } from "./scratch_quota.ts";

const KIB = 1024;

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-quota-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Resolves true when `check` holds, false after `ms` (no timing asserted). */
async function eventually(
  check: () => boolean,
  ms = 30_000,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return check();
}

Deno.test("directorySize() sums files in nested directories", async () => {
  await withDir(async (dir) => {
    const empty = await directorySize(dir);
    await Deno.mkdir(`${dir}/a/b`, { recursive: true });
    await Deno.writeFile(`${dir}/one`, new Uint8Array(64 * KIB).fill(1));
    await Deno.writeFile(`${dir}/a/b/two`, new Uint8Array(128 * KIB).fill(1));
    const size = await directorySize(dir);
    assert.ok(size >= empty + 192 * KIB, `${size}`);
    // Directories themselves count only their own blocks.
    assert.ok(size < empty + 192 * KIB + 64 * KIB, `${size}`);
  });
});

Deno.test("directorySize() does not follow symlinks (a link to a big host file counts as a link)", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/scratch`);
    await Deno.mkdir(`${dir}/host`);
    await Deno.writeFile(`${dir}/host/big`, new Uint8Array(1024 * KIB).fill(1));
    await Deno.symlink(`${dir}/host/big`, `${dir}/scratch/file-link`);
    await Deno.symlink(`${dir}/host`, `${dir}/scratch/dir-link`);
    assert.ok(await directorySize(`${dir}/scratch`) < 64 * KIB);
  });
});

Deno.test("directorySize() counts allocated blocks, so a sparse file is small", async () => {
  await withDir(async (dir) => {
    const file = await Deno.open(`${dir}/sparse`, {
      write: true,
      create: true,
    });
    await file.truncate(512 * 1024 * KIB);
    file.close();
    assert.ok(await directorySize(dir) < 64 * KIB);
  });
});

Deno.test("directorySize() of a missing directory is 0", async () => {
  assert.equal(await directorySize("/nonexistent/airlock-scratch"), 0);
});

Deno.test("directorySize() fails closed: a tree nested past PATH_MAX measures as Infinity, not as skipped", async () => {
  await withDir(async (dir) => {
    // Each rename keeps its own paths short, but the data ends up below
    // PATH_MAX (4096 bytes): a walk by absolute paths cannot reach it.
    const name = "d".repeat(250);
    const chain = (top: string) => {
      let path = top;
      Deno.mkdirSync(path);
      for (let i = 0; i < 12; i++) Deno.mkdirSync(path += `/${name}`);
      return path;
    };
    const bottom = chain(`${dir}/a`);
    const hidden = chain(`${dir}/b`);
    await Deno.writeFile(`${hidden}/data`, new Uint8Array(64 * KIB).fill(1));
    const control = await directorySize(dir);
    assert.ok(Number.isFinite(control), "the control tree is measurable");
    await Deno.rename(`${dir}/b`, `${bottom}/b`);
    assert.equal(await directorySize(dir), Infinity);
    assert.ok(!(await walkQuota([dir], 1 << 30).usage()).roomBytes);
  });
});

Deno.test("walkQuota() reports usage, room and full against the quota", async () => {
  await withDir(async (dir) => {
    const quota = walkQuota([dir], 256 * KIB);
    const empty = await quota.usage();
    assert.equal(empty.mode, "walk");
    assert.equal(empty.full, false);
    assert.equal(empty.roomBytes, 256 * KIB - empty.usedBytes);
    await Deno.writeFile(`${dir}/big`, new Uint8Array(512 * KIB).fill(1));
    const over = await quota.usage();
    assert.equal(over.full, true);
    assert.equal(over.roomBytes, 0);
    assert.ok(over.usedBytes >= 512 * KIB);
  });
});

Deno.test("walkQuota().watch() calls onOver once when the directory passes the quota", async () => {
  await withDir(async (dir) => {
    let calls = 0;
    const stop = walkQuota([dir], 256 * KIB).watch(() => calls++, 10);
    try {
      await Deno.writeFile(`${dir}/small`, new Uint8Array(16 * KIB).fill(1));
      // Let several polls run: under the quota, nothing happens.
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(calls, 0);
      await Deno.writeFile(`${dir}/big`, new Uint8Array(512 * KIB).fill(1));
      assert.ok(await eventually(() => calls > 0), "quota never reported");
      await Deno.writeFile(`${dir}/bigger`, new Uint8Array(512 * KIB).fill(1));
      // Negative checks (no second call) have no event to wait for: bounded
      // waits, which a slow machine can only make weaker, never fail.
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(calls, 1);
    } finally {
      stop();
      // Let a poll already in flight finish before the test ends.
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });
});

Deno.test("walkQuota().watch() stops reporting once stopped", async () => {
  await withDir(async (dir) => {
    let calls = 0;
    const stop = walkQuota([dir], 4 * KIB).watch(() => calls++, 10);
    stop();
    await Deno.writeFile(`${dir}/big`, new Uint8Array(512 * KIB).fill(1));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(calls, 0);
  });
});

Deno.test("walkQuota() sums several roots (the scratch and a run's TMPDIR)", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/scratch`);
    await Deno.mkdir(`${dir}/tmp`);
    await Deno.writeFile(`${dir}/scratch/a`, new Uint8Array(96 * KIB));
    await Deno.writeFile(`${dir}/tmp/b`, new Uint8Array(96 * KIB));
    const both = walkQuota([`${dir}/scratch`, `${dir}/tmp`], 128 * KIB);
    assert.equal((await both.usage()).full, true);
    const one = walkQuota([`${dir}/scratch`], 128 * KIB);
    assert.equal((await one.usage()).full, false);
  });
});
