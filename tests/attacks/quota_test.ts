/**
 * Scratch quota attacks: ways to store more than `scratchMb` on the host
 * through a sandbox's scratch (and its TMPDIR), each in a batch of its own
 * beside a bystander sandbox that must finish correctly.
 *
 * Two classes got past the old measuring quota (a walk of the directories):
 * data nested deeper than PATH_MAX (the walk's absolute paths fail with
 * ENAMETOOLONG), and files unlinked while held open (no walk sees them).
 * Where the scratch is a size-capped filesystem (`quotaMode` "loop" or
 * "tmpfs"), the kernel refuses every write past the quota with ENOSPC and
 * the run goes on; each case asserts that, and that the host holds at most
 * the quota for the scratch (the loop image's blocks, which never shrink
 * before close: the most the run ever used). Where the quota is still a
 * walk, the nesting class fails closed ("disk-limit") and the held-open
 * class is a documented limit, so those cases are not registered.
 *
 * A filesystem limit is enforced by the kernel, not by a permission check:
 * the run's `reason`, the program's error and the host's usage are the
 * record, so every case says `audit: none`.
 */

import assert from "node:assert/strict";
import { assertThrew, basePolicy, type CaseView, Corpus } from "./_corpus.ts";
import { scratchFsSupport } from "../../runtime/scratch_volume.ts";

const corpus = new Corpus("quota", { concurrency: 2 });

const QUOTA_MB = 8;
const MIB = 1024 * 1024;
/** Where the harness can mount, "auto" makes each scratch a filesystem. */
const filesystemQuota = Deno.uid() === 0 && scratchFsSupport().loop === null;

const KERNEL = {
  none:
    "the scratch filesystem refuses the write (ENOSPC): a kernel limit; the run's reason and the host's usage are the record",
};

function bystanderOk(v: CaseView): void {
  const bystander = v.extra.bystander as
    | { ok: boolean; detail: string }
    | undefined;
  assert.ok(bystander, "a bystander ran");
  assert.ok(bystander.ok, `the bystander was hurt: ${bystander.detail}`);
}

/**
 * Contained: a scratch filesystem refused the writes (ENOSPC) and the host
 * holds at most the quota; a walked scratch ended the run as "disk-limit".
 */
function contained(v: CaseView): void {
  const usage = v.extra.scratchUsage as
    | { mode: string; hostBytes: number; quotaBytes: number }
    | null;
  assert.ok(usage, "the batch measured its scratch");
  assert.equal(usage.quotaBytes, QUOTA_MB * MIB);
  if (usage.mode === "walk") {
    assert.equal(v.run.reason, "disk-limit", `ended as ${v.run.reason}`);
  } else {
    assertThrew(v, /No space left on device/);
    assert.equal(v.run.reason, "exit", v.run.stderr);
    assert.ok(
      usage.hostBytes <= usage.quotaBytes,
      `the host holds ${usage.hostBytes} bytes for a ${usage.quotaBytes}-byte quota`,
    );
  }
  bystanderOk(v);
}

/** One case in a batch of its own, under an 8 MiB quota. */
function solo(c: Omit<Parameters<Corpus["add"]>[0], "expect" | "audit">) {
  corpus.batch(c.id, {
    bystander: "after",
    policy: (fx) => {
      const base = basePolicy(fx);
      return {
        ...base,
        scratch: true,
        limits: { ...base.limits, scratchMb: QUOTA_MB, fileSizeMb: 64 },
      };
    },
  });
  corpus.add({ ...c, batch: c.id, expect: contained, audit: KERNEL });
}

/**
 * Program text: after `body` stored its data without an error, wait for
 * the harness (a walked quota must see it; a filesystem never lets it in).
 */
const holdIfStored = (body: string) =>
  `${body}
  await new Promise((resolve) => setInterval(() => {}, 60_000));
  return "stored, and the harness never stopped it";`;

// --- data nested past PATH_MAX (the walk got ENAMETOOLONG) ----------------

solo({
  id: "quota-001",
  title:
    "hide data below PATH_MAX by renaming filled directory chains under each other",
  code: holdIfStored(`
  const name = "q".repeat(250);
  const chain = (top) => { let p = top; Deno.mkdirSync(p); for (let i = 0; i < 12; i++) Deno.mkdirSync(p += "/" + name); return p; };
  const chunk = new Uint8Array(1 << 20).fill(7);
  const bottom = chain("/scratch/base");
  for (let c = 0, stored = 0; stored < ${4 * QUOTA_MB}; c++) {
    const b = chain("/scratch/c" + c);
    for (let i = 0; i < 4; i++, stored++) Deno.writeFileSync(b + "/f" + i, chunk);
    Deno.renameSync("/scratch/c" + c, bottom + "/c" + c);
  }`),
});

solo({
  id: "quota-002",
  title:
    "push a tree past PATH_MAX by wrapping its root in one more long directory at a time",
  // Every syscall path stays short: rename /scratch/t into /scratch/w/<long>,
  // then /scratch/w back to /scratch/t. The data sinks one level per turn.
  code: holdIfStored(`
  const name = "w".repeat(250);
  const chunk = new Uint8Array(1 << 20).fill(9);
  Deno.mkdirSync("/scratch/t");
  for (let level = 0, stored = 0; stored < ${4 * QUOTA_MB}; level++) {
    Deno.writeFileSync("/scratch/t/data" + level, chunk);
    stored++;
    Deno.mkdirSync("/scratch/w");
    Deno.renameSync("/scratch/t", "/scratch/w/" + name);
    Deno.renameSync("/scratch/w", "/scratch/t");
  }`),
});

// --- space no walk can see ---------------------------------------------------

if (filesystemQuota) {
  solo({
    id: "quota-003",
    title: "write 4x the quota into a file unlinked while held open",
    code: holdIfStored(`
    const f = await Deno.open("/scratch/ghost", { write: true, create: true });
    await Deno.remove("/scratch/ghost");
    const chunk = new Uint8Array(1 << 20).fill(3);
    for (let i = 0; i < ${4 * QUOTA_MB}; i++) await f.write(chunk);`),
  });

  solo({
    id: "quota-004",
    title: "spread 4x the quota over many small unlinked files held open",
    code: holdIfStored(`
    const held = [];
    const chunk = new Uint8Array(256 * 1024).fill(4);
    for (let i = 0; i < ${16 * QUOTA_MB}; i++) {
      const f = Deno.openSync("/scratch/g" + i, { write: true, create: true });
      Deno.removeSync("/scratch/g" + i);
      f.writeSync(chunk);
      held.push(f);
      if (held.length > 100) held.shift().close(); // descriptors, not space
    }`),
  });

  solo({
    id: "quota-005",
    title:
      "hold an unlinked file in the run's TMPDIR (/var/tmp), outside /scratch",
    code: holdIfStored(`
    const path = "/var/tmp/ghost";
    const f = Deno.openSync(path, { write: true, create: true });
    Deno.removeSync(path);
    const chunk = new Uint8Array(1 << 20).fill(5);
    for (let i = 0; i < ${4 * QUOTA_MB}; i++) f.writeSync(chunk);`),
  });

  solo({
    id: "quota-006",
    title:
      "orphan held files by renaming another file over them, then keep writing",
    code: holdIfStored(`
    const chunk = new Uint8Array(1 << 20).fill(6);
    const held = [];
    for (let i = 0; i < ${4 * QUOTA_MB}; i++) {
      const f = Deno.openSync("/scratch/victim", { write: true, create: true });
      f.writeSync(chunk);
      held.push(f);
      Deno.writeFileSync("/scratch/other", new Uint8Array(0));
      Deno.renameSync("/scratch/other", "/scratch/victim");
    }`),
  });
}

// --- other ways to cost more than the quota ----------------------------------

solo({
  id: "quota-007",
  title:
    "scatter writes over sparse files whose apparent size is far over the quota",
  code: holdIfStored(`
  const chunk = new Uint8Array(1 << 20).fill(8);
  for (let n = 0; n < 4; n++) {
    const f = Deno.openSync("/scratch/sparse" + n, { write: true, create: true });
    f.truncateSync(60 << 20);
    for (let mb = 0; mb < 60; mb += 7) { f.seekSync(mb << 20, Deno.SeekMode.Start); f.writeSync(chunk); }
    f.close();
  }`),
});

solo({
  id: "quota-008",
  title: "bloat directories with entries of maximal name length",
  code: holdIfStored(`
  Deno.mkdirSync("/scratch/names");
  for (let i = 0; i < 200000; i++) {
    Deno.writeFileSync("/scratch/names/" + String(i).padStart(255, "n"), new Uint8Array(0));
  }`),
});

corpus.register();
