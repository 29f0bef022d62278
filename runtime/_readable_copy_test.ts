import assert from "node:assert/strict";
import { readableByAnyone, readableCopy } from "./_readable_copy.ts";

/** A file only its owner can reach (0700 directory), and a cache parent. */
async function setup() {
  const top = await Deno.makeTempDir({ prefix: "airlock-copy-" });
  await Deno.chmod(top, 0o755);
  const hidden = `${top}/private`;
  await Deno.mkdir(hidden, { mode: 0o700 });
  await Deno.chmod(hidden, 0o700);
  const file = `${hidden}/tool`;
  await Deno.writeTextFile(file, "#!/bin/sh\necho hi\n", { mode: 0o755 });
  const cacheParent = `${top}/cache`;
  await Deno.mkdir(cacheParent);
  await Deno.chmod(cacheParent, 0o755);
  return { top, file, cacheParent };
}

Deno.test("readableByAnyone() is true for /bin/sh", () => {
  assert.equal(readableByAnyone("/bin/sh"), true);
});

Deno.test("readableByAnyone() is false behind a 0700 directory, for 0700 files and missing paths", async () => {
  const { top, file } = await setup();
  try {
    assert.equal(readableByAnyone(file), false);
    await Deno.writeTextFile(`${top}/mine`, "x", { mode: 0o700 });
    await Deno.chmod(`${top}/mine`, 0o700);
    assert.equal(readableByAnyone(`${top}/mine`), false);
    assert.equal(readableByAnyone(`${top}/missing`), false);
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});

Deno.test("readableCopy() returns a file anyone can read unchanged", async () => {
  assert.equal(await readableCopy("/bin/sh", "/nonexistent"), "/bin/sh");
});

Deno.test("readableCopy() copies a file behind a 0700 directory to a cache anyone can read", async () => {
  const { top, file, cacheParent } = await setup();
  try {
    const copy = await readableCopy(file, cacheParent);
    assert.notEqual(copy, file);
    assert.ok(copy.startsWith(`${cacheParent}/airlock-bin-${Deno.uid()}/`));
    assert.equal(readableByAnyone(copy), true);
    assert.equal(await Deno.readTextFile(copy), await Deno.readTextFile(file));
    const cache = await Deno.lstat(copy.slice(0, copy.lastIndexOf("/")));
    assert.equal(cache.uid, Deno.uid());
    assert.equal((cache.mode ?? 0) & 0o777, 0o755);
    // A second call reuses the copy.
    assert.equal(await readableCopy(file, cacheParent), copy);
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});

Deno.test("readableCopy() refuses a cache directory others can write (a planted binary)", async () => {
  const { top, file, cacheParent } = await setup();
  try {
    for (const mode of [0o777, 0o775, 0o757]) {
      const cache = `${cacheParent}/airlock-bin-${Deno.uid()}`;
      await Deno.mkdir(cache, { recursive: true });
      await Deno.chmod(cache, mode);
      await assert.rejects(
        readableCopy(file, cacheParent),
        /Cannot use the binary cache '.*' as it is not a directory owned by uid \d+ and writable only by it: remove it/,
        mode.toString(8),
      );
    }
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});

Deno.test("readableCopy() refuses a cache path that is a symlink", async () => {
  const { top, file, cacheParent } = await setup();
  try {
    await Deno.mkdir(`${top}/elsewhere`);
    await Deno.symlink(
      `${top}/elsewhere`,
      `${cacheParent}/airlock-bin-${Deno.uid()}`,
    );
    await assert.rejects(readableCopy(file, cacheParent), /remove it/);
    assert.deepEqual([...Deno.readDirSync(`${top}/elsewhere`)], []);
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});
