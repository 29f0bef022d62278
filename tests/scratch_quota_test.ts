/**
 * The scratch quota against real sandboxes: a scratch filesystem of the
 * quota's size holds against the two ways past a measuring quota (data
 * nested past PATH_MAX, files unlinked and held open), `sandbox.fs` writes
 * stay within it, and a harness file operation and a run's start exclude
 * each other. Host usage is measured on a private tmpfs given to the
 * harness as its tmpDir: everything the sandbox costs the host lands there,
 * whatever the quota mode, so the walk-mode controls can show the escape
 * the filesystem closes.
 */

import assert from "node:assert/strict";
import { statfs } from "node:fs/promises";
import { Sandbox, SandboxFsError, ScratchQuotaError } from "../mod.ts";
import { lockOf } from "../harness/_sandbox_lock.ts";
import { scratchFsSupport } from "../runtime/scratch_volume.ts";

const MIB = 1024 * 1024;
const isRoot = Deno.uid() === 0;
const loop = isRoot && scratchFsSupport().loop === null;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A private tmpfs used as the harness's tmpDir, to measure host usage. */
async function hostDisk(sizeMb = 160) {
  const dir = await Deno.makeTempDir({ prefix: "airlock-quota-host-" });
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${sizeMb}m,mode=0711`, "quota-test", dir],
  }).output();
  assert.ok(mount.success, "mount a tmpfs for the test");
  const used = async () => {
    const s = await statfs(dir);
    return (s.blocks - s.bfree) * s.bsize;
  };
  return {
    dir,
    used,
    async [Symbol.asyncDispose]() {
      await new Deno.Command("umount", { args: ["-l", dir] }).output();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Polls `check` until it holds, for at most `ms` (no timing asserted). */
async function pollUntil(
  check: () => boolean | Promise<boolean>,
  ms = 20_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, "condition never held");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Reads a stream until `marker` appears; returns what was read. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  marker: string,
): Promise<string> {
  let text = "";
  while (!text.includes(marker)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  return text;
}

/**
 * Hides `count` MiB below PATH_MAX: each chain of directories is built at
 * a short path, filled, then renamed under the bottom of another chain, so
 * no syscall path is long but the data is deeper than any absolute path.
 */
const DEEP_DATA = (count: number) => `
const name = "d".repeat(250);
const chain = (top) => { let p = top; Deno.mkdirSync(p); for (let i = 0; i < 12; i++) Deno.mkdirSync(p += "/" + name); return p; };
const chunk = new Uint8Array(1 << 20).fill(1);
const bottom = chain("/scratch/base");
let hidden = 0;
try {
  for (let c = 0; hidden < ${count}; c++) {
    const b = chain("/scratch/c" + c);
    for (let i = 0; i < 4 && hidden < ${count}; i++, hidden++) Deno.writeFileSync(b + "/f" + i, chunk);
    Deno.renameSync("/scratch/c" + c, bottom + "/c" + c);
  }
  console.log("hid " + hidden + " MiB");
} catch (e) { console.log("refused after " + hidden + " MiB: " + e.message); }
`;

/** Writes `count` MiB into a file it unlinked, then holds it until stdin. */
const HELD_DATA = (count: number) => `
const f = Deno.openSync("/scratch/held", { write: true, create: true });
Deno.removeSync("/scratch/held");
const chunk = new Uint8Array(1 << 20).fill(1);
let n = 0;
try { for (; n < ${count}; n++) f.writeSync(chunk); console.log("held " + n + " MiB"); }
catch (e) { console.log("refused after " + n + " MiB: " + e.message); }
console.log("@@holding");
await Deno.stdin.read(new Uint8Array(1));
f.close();
`;

/** Runs HELD_DATA, measuring the host while the file is held open. */
async function heldRun(
  scratchFs: "loop" | "walk",
  quotaMb: number,
  writeMb: number,
) {
  await using host = await hostDisk();
  const before = await host.used();
  await using sandbox = await Sandbox.create({
    policy: { scratch: true, limits: { scratchMb: quotaMb } },
    tmpDir: host.dir,
    scratchFs,
  });
  assert.equal(sandbox.quotaMode, scratchFs);
  const child = await sandbox.spawn({
    code: HELD_DATA(writeMb),
    stdin: "piped",
  });
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.getReader();
  const said = await readUntil(reader, "@@holding");
  // Measured while the program holds the unlinked file open.
  const grew = (await host.used()) - before;
  const writer = child.stdin!.getWriter();
  await writer.write(new Uint8Array([1]));
  await writer.close();
  await readUntil(reader, "\0"); // to the end
  const status = await child.status;
  await stderr;
  // The harness is healthy: the same sandbox runs again.
  const again = await sandbox.run({ code: `console.log("again")` });
  assert.equal(again.stdout, "again\n", again.stderr);
  return { said, grew, status };
}

Deno.test({
  name:
    "scratch filesystem: a file unlinked and held open cannot grow the host past the quota (the write fails with ENOSPC)",
  ignore: !loop,
  async fn() {
    const { said, grew, status } = await heldRun("loop", 8, 32);
    assert.match(said, /refused after \d+ MiB: No space left on device/);
    assert.ok(grew <= 8 * MIB + 512 * 1024, `host grew ${grew} bytes`);
    assert.equal(status.reason, "exit");
  },
});

Deno.test({
  name:
    "walk quota (control): a file unlinked and held open escapes it, the known limit the filesystem closes",
  ignore: !isRoot,
  async fn() {
    const { said, grew } = await heldRun("walk", 8, 32);
    assert.match(said, /held 32 MiB/);
    assert.ok(grew > 16 * MIB, `host grew only ${grew} bytes`);
  },
});

Deno.test({
  name:
    "scratch filesystem: data nested past PATH_MAX still counts; writes past the quota fail and the host holds at most the quota",
  ignore: !loop,
  async fn() {
    await using host = await hostDisk();
    const before = await host.used();
    await using sandbox = await Sandbox.create({
      policy: { scratch: true, limits: { scratchMb: 8 } },
      tmpDir: host.dir,
    });
    assert.equal(sandbox.quotaMode, "loop");
    const result = await sandbox.run({ code: DEEP_DATA(24) });
    assert.match(result.stdout, /refused after \d+ MiB: No space left/);
    assert.equal(result.reason, "exit", result.stderr);
    const grew = (await host.used()) - before;
    assert.ok(grew <= 8 * MIB + 512 * 1024, `host grew ${grew} bytes`);
    const usage = await sandbox.scratchUsage();
    assert.ok(usage && usage.hostBytes <= 8 * MIB);
    // sandbox.fs writes go to the same filesystem: no room left for 1 MiB.
    await assert.rejects(
      sandbox.fs.writeFile("more", new Uint8Array(MIB)),
      (e: Error) => e instanceof SandboxFsError && /quota/.test(e.message),
    );
    // Deleting the tree gives the room back; the sandbox works again.
    await sandbox.fs.remove("base", { recursive: true });
    for (const entry of await sandbox.fs.readDir("/scratch")) {
      await sandbox.fs.remove(entry.name, { recursive: true });
    }
    await sandbox.fs.writeFile("more", new Uint8Array(MIB));
    const again = await sandbox.run({
      code: `console.log(Deno.statSync("/scratch/more").size)`,
    });
    assert.equal(again.stdout, `${MIB}\n`, again.stderr);
  },
});

Deno.test({
  name:
    "walk quota: data nested past PATH_MAX counts as over the quota (fail closed): the run ends as disk-limit and the next is refused",
  async fn() {
    await using sandbox = await Sandbox.create({
      policy: { scratch: true, limits: { scratchMb: 64, timeoutMs: 20_000 } },
      scratchFs: "walk",
    });
    // 4 MiB hidden in a 64 MiB quota: only what cannot be measured is over.
    const result = await sandbox.run({
      code: `${DEEP_DATA(4)}; setInterval(() => {}, 60_000);`,
    });
    assert.equal(result.reason, "disk-limit", result.stdout + result.stderr);
    const usage = await sandbox.scratchUsage();
    assert.equal(usage?.usedBytes, Infinity);
    await assert.rejects(
      sandbox.run({ code: "1" }),
      (e: Error) =>
        e instanceof ScratchQuotaError && /cannot be measured/.test(e.message),
    );
    await sandbox.fs.remove("base", { recursive: true });
    for (const entry of await sandbox.fs.readDir("/scratch")) {
      await sandbox.fs.remove(entry.name, { recursive: true });
    }
    const again = await sandbox.run({ code: `console.log("ok")` });
    assert.equal(again.stdout, "ok\n");
  },
});

Deno.test({
  name:
    "scratch filesystem: sandbox.fs writes count against the quota the program sees, and are refused past it",
  ignore: !loop,
  async fn() {
    await using sandbox = await Sandbox.create({
      policy: { scratch: true, limits: { scratchMb: 4 } },
    });
    await assert.rejects(
      sandbox.fs.writeFile("too-big", new Uint8Array(4 * MIB)),
      (e: Error) => e instanceof SandboxFsError && /quota/.test(e.message),
    );
    await sandbox.fs.writeFile("seed", new Uint8Array(2 * MIB).fill(1));
    const usage = await sandbox.scratchUsage();
    assert.ok(usage && usage.usedBytes >= 2 * MIB, `${usage?.usedBytes}`);
    // The program's room is what the harness's write left.
    const result = await sandbox.run({
      code: `let n = 0; const c = new Uint8Array(256 * 1024).fill(1);
        try { for (;; n++) Deno.writeFileSync("/scratch/p" + n, c); }
        catch (e) { console.log(n * 256, e.message.split(":")[0]); }`,
    });
    const [, kib, why] = result.stdout.match(/^(\d+) (.*)$/m) ?? [];
    assert.equal(why, "No space left on device (os error 28)");
    assert.ok(Number(kib) < 2 * 1024, `the program wrote ${kib} KiB more`);
  },
});

Deno.test({
  name:
    "scratch filesystem: a scratch with no inode left refuses the next run with ScratchQuotaError until files are deleted",
  ignore: !loop,
  async fn() {
    await using sandbox = await Sandbox.create({
      policy: { scratch: true, limits: { scratchMb: 1 } },
    });
    const result = await sandbox.run({
      code: `let n = 0;
        try { for (;; n++) Deno.writeFileSync("/scratch/e" + n, new Uint8Array(0)); }
        catch (e) { console.log(n, e.message.split(":")[0]); }`,
    });
    assert.match(result.stdout, /^\d+ No space left on device/);
    assert.equal((await sandbox.scratchUsage())?.full, true);
    await assert.rejects(sandbox.run({ code: "1" }), ScratchQuotaError);
    for (const entry of await sandbox.fs.readDir("/scratch")) {
      await sandbox.fs.remove(entry.name);
    }
    const again = await sandbox.run({ code: `console.log("ok")` });
    assert.equal(again.stdout, "ok\n", again.stderr);
  },
});

Deno.test({
  name:
    "scratch filesystem: inside the sandbox /scratch and /var/tmp are nosuid,nodev,noexec",
  ignore: !loop,
  async fn() {
    await using sandbox = await Sandbox.create({ policy: { scratch: true } });
    const child = await sandbox.spawn({
      code: `await Deno.stdin.read(new Uint8Array(1));`,
      stdin: "piped",
    });
    try {
      // The sandbox's processes: those whose /scratch is our volume (its
      // device numbers, as mountinfo writes them).
      const dev = (await Deno.stat(sandbox.scratchPath!)).dev;
      const device = `${(dev >> 8) & 0xfff}:${
        (dev & 0xff) | ((dev >> 12) & 0xfff00)
      }`;
      let mountinfo = "";
      await pollUntil(() => {
        for (const entry of Deno.readDirSync("/proc")) {
          if (!/^\d+$/.test(entry.name)) continue;
          try {
            const info = Deno.readTextFileSync(
              `/proc/${entry.name}/mountinfo`,
            );
            const ours = info.split("\n").some((line) => {
              const fields = line.split(" ");
              return fields[4] === "/scratch" && fields[2] === device;
            });
            if (ours) mountinfo = info;
          } catch { /* gone */ }
        }
        return mountinfo !== "";
      });
      for (const point of ["/scratch", "/var/tmp"]) {
        const line = mountinfo.split("\n").find((l) =>
          l.split(" ")[4] === point
        );
        assert.ok(line, `${point} is mounted`);
        const flags = line.split(" ")[5]!.split(",");
        for (const flag of ["nosuid", "nodev", "noexec"]) {
          assert.ok(flags.includes(flag), `${point}: ${flags}`);
        }
      }
    } finally {
      const writer = child.stdin!.getWriter();
      await writer.write(new Uint8Array([1]));
      await writer.close();
      await child.status;
    }
  },
});

Deno.test("sandbox.quotaMode says how the quota is enforced (null without a scratch)", async () => {
  await using none = await Sandbox.create();
  assert.equal(none.quotaMode, null);
  assert.equal(await none.scratchUsage(), null);
  await using walk = await Sandbox.create({
    policy: { scratch: true },
    scratchFs: "walk",
  });
  assert.equal(walk.quotaMode, "walk");
  await using auto = await Sandbox.create({ policy: { scratch: true } });
  assert.equal(auto.quotaMode, loop ? "loop" : "walk");
});

// --- the per-sandbox lock ------------------------------------------------------

Deno.test({
  name:
    "a run cannot start while a sandbox.fs operation is in progress: it waits for the operation to end",
  ignore: !isRoot,
  async fn() {
    await using sandbox = await Sandbox.create({ policy: { scratch: true } });
    const fifo = `${sandbox.scratchPath}/fifo`;
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.ok(made.success);
    const lock = lockOf(sandbox);
    // The read blocks inside the operation until the test writes the FIFO.
    const reading = sandbox.fs.readFile("fifo");
    await pollUntil(() => lock.held);
    const spawning = sandbox.spawn({
      code: `console.log(Deno.readTextFileSync("/scratch/after.txt"))`,
    });
    // The run is parked at the lock, before its program is delivered.
    await pollUntil(() => lock.waiting === 1);
    assert.equal(sandbox.running, false);
    await Deno.writeTextFile(`${sandbox.scratchPath}/after.txt`, "after");
    const writer = await Deno.open(fifo, { write: true });
    await writer.write(encoder.encode("x"));
    writer.close();
    assert.equal(decoder.decode(await reading), "x");
    const child = await spawning;
    const [out, status] = await Promise.all([
      new Response(child.stdout).text(),
      child.status,
      new Response(child.stderr).text(),
    ]);
    assert.equal(status.reason, "exit");
    assert.equal(out, "after\n");
  },
});

Deno.test("a sandbox.fs write queued behind a run's start is refused once the run is live, and never lands in it", async () => {
  await using sandbox = await Sandbox.create({ policy: { scratch: true } });
  const lock = lockOf(sandbox);
  // Stands in for a slow operation in progress when the run starts.
  const release = await lock.acquire();
  const spawning = sandbox.spawn({
    code: `await Deno.stdin.read(new Uint8Array(1));
      console.log(JSON.stringify([...Deno.readDirSync("/scratch")].map((e) => e.name)));`,
    stdin: "piped",
  });
  await pollUntil(() => lock.waiting === 1);
  const writing = sandbox.fs.writeTextFile("late.txt", "late");
  await pollUntil(() => lock.waiting === 2);
  release();
  const child = await spawning;
  assert.equal(sandbox.running, true);
  await assert.rejects(
    writing,
    (e: Error) =>
      e instanceof SandboxFsError && /run .* is live/.test(e.message),
  );
  const writer = child.stdin!.getWriter();
  await writer.write(new Uint8Array([1]));
  await writer.close();
  const [out, status] = await Promise.all([
    new Response(child.stdout).text(),
    child.status,
    new Response(child.stderr).text(),
  ]);
  assert.equal(status.reason, "exit");
  assert.equal(out, "[]\n", "the refused write never reached the run");
  // Control: with no run live, the same write lands.
  await sandbox.fs.writeTextFile("late.txt", "late");
  assert.equal(await sandbox.fs.readTextFile("late.txt"), "late");
});
