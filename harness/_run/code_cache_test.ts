import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Sandbox } from "../sandbox.ts";
import {
  CACHE_DIR_NAME,
  emptyWalDatabase,
  KEPT_DATABASES,
  SandboxDenoCache,
} from "./code_cache.ts";
import { Workspace } from "../../runtime/workspace.ts";
import { SandboxIdentityPool } from "../../runtime/host_identity.ts";
import { DEFAULT_LIMITS } from "../../runtime/limits.ts";
import { buildLaunchCommand, SANDBOX_PATHS } from "../../runtime/launcher.ts";
import { discoverHostTools } from "../../runtime/host_tools.ts";
import { runNamespaceOnly } from "../../tests/kits/namespace_only.ts";

const root = Deno.uid() === 0;

/** A parent directory of its own, so the sandbox's workspace is the one in it. */
async function parentDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-cc-test-" });
  await Deno.chmod(dir, 0o711); // the sandbox uid traverses it
  return dir;
}

/** The kept cache directory of the one workspace under `parent`. */
async function cacheDirUnder(parent: string): Promise<string> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(parent)) {
    if (entry.name.startsWith("airlock-")) {
      found.push(`${parent}/${entry.name}/${CACHE_DIR_NAME}`);
    }
  }
  assert.equal(found.length, 1, `one workspace under ${parent}`);
  return found[0]!;
}

/** Each kept file's bytes, by name. */
async function snapshot(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for await (const entry of Deno.readDir(dir)) {
    files.set(entry.name, await Deno.readFile(`${dir}/${entry.name}`));
  }
  return files;
}

/** Rows of a kept database, read from a copy (never the sandbox's files). */
async function rows(
  dir: string,
  db: string,
  sql: string,
): Promise<Record<string, unknown>[]> {
  const copy = await Deno.makeTempDir();
  try {
    for (const part of ["", "-wal"]) {
      await Deno.copyFile(`${dir}/${db}${part}`, `${copy}/${db}${part}`);
    }
    const database = new DatabaseSync(`${copy}/${db}`);
    try {
      return database.prepare(sql).all() as Record<string, unknown>[];
    } finally {
      database.close();
    }
  } finally {
    await Deno.remove(copy, { recursive: true });
  }
}

/**
 * Changes a kept database the way a run could: on a copy, written back into
 * the same files (their inodes, owner and modes stay), the log emptied.
 */
async function rewrite(dir: string, sql: string): Promise<void> {
  const db = "v8_code_cache_v2";
  const copy = await Deno.makeTempDir();
  try {
    for (const part of ["", "-wal"]) {
      await Deno.copyFile(`${dir}/${db}${part}`, `${copy}/${db}${part}`);
    }
    const database = new DatabaseSync(`${copy}/${db}`);
    database.exec(sql);
    database.close(); // checkpoints the log into the database file
    await Deno.writeFile(`${dir}/${db}`, await Deno.readFile(`${copy}/${db}`));
    await Deno.writeFile(`${dir}/${db}-wal`, new Uint8Array());
    await Deno.writeFile(`${dir}/${db}-shm`, new Uint8Array());
  } finally {
    await Deno.remove(copy, { recursive: true });
  }
}

function contains(haystack: Uint8Array, needle: string): boolean {
  return new TextDecoder("latin1").decode(haystack).includes(needle);
}

Deno.test("emptyWalDatabase() is a database SQLite opens in WAL mode", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/db`, emptyWalDatabase());
    const db = new DatabaseSync(`${dir}/db`);
    assert.deepEqual(
      { ...db.prepare("PRAGMA journal_mode").get() },
      { journal_mode: "wal" },
    );
    db.exec("CREATE TABLE t (x INTEGER)");
    db.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("buildLaunchCommand() keeps --no-code-cache without kept caches, and binds each kept file over DENO_DIR with them", async () => {
  const base = {
    tools: await discoverHostTools(),
    identity: { hostUid: null, hostGid: null, enforceProcesses: false },
    seccompFilterPath: "/x/seccomp.bpf",
    statusPath: "/x/status.json",
    program: "/x/code",
    limits: DEFAULT_LIMITS,
    grants: { read: [], write: [], net: [] },
  } as unknown as Parameters<typeof buildLaunchCommand>[0];
  const without = buildLaunchCommand(base).args;
  assert.ok(without.includes("--no-code-cache"));
  const files = [{ name: "v8_code_cache_v2", source: "/x/cache/v8" }];
  const withCache = buildLaunchCommand({ ...base, denoCache: files }).args;
  assert.ok(!withCache.includes("--no-code-cache"));
  const at = withCache.indexOf("/x/cache/v8");
  assert.equal(withCache[at - 1], "--bind");
  assert.equal(withCache[at + 1], `${SANDBOX_PATHS.denoDir}/v8_code_cache_v2`);
  // A name is a cache database's file, never a path into the sandbox.
  assert.throws(
    () =>
      buildLaunchCommand({
        ...base,
        denoCache: [{ name: "../scratch/x", source: "/x/cache/v8" }],
      }),
    TypeError,
  );
});

Deno.test({
  name:
    "SandboxDenoCache keeps nothing without a uid of its own or below the minimum fileSizeMb",
  ignore: !root,
  async fn() {
    const pool = new SandboxIdentityPool();
    const identity = pool.acquire();
    const workspace = await Workspace.create({ identity });
    try {
      assert.equal(
        await SandboxDenoCache.open(
          workspace,
          { ...identity, hostUid: null, hostGid: null },
          DEFAULT_LIMITS,
        ),
        null,
      );
      assert.equal(
        await SandboxDenoCache.open(workspace, identity, {
          ...DEFAULT_LIMITS,
          fileSizeMb: 8,
        }),
        null,
      );
    } finally {
      await workspace.close();
      identity.release();
    }
  },
});

Deno.test({
  name:
    "SandboxDenoCache: the harness owns the directory, the sandbox uid the six files, and a launch empties them when over tmpMb and nothing holds them",
  ignore: !root,
  async fn() {
    const pool = new SandboxIdentityPool();
    const identity = pool.acquire();
    const workspace = await Workspace.create({ identity });
    try {
      const cache = (await SandboxDenoCache.open(workspace, identity, {
        ...DEFAULT_LIMITS,
        tmpMb: 1,
      }))!;
      const dir = await Deno.lstat(cache.dir);
      assert.equal(dir.uid, Deno.uid());
      assert.equal(dir.mode! & 0o777, 0o711);
      assert.equal(cache.files.length, KEPT_DATABASES.length * 3);
      for (const file of cache.files) {
        const info = await Deno.lstat(file.source);
        assert.ok(info.isFile);
        assert.equal(info.uid, identity.hostUid);
        assert.equal(info.mode! & 0o777, 0o600);
      }
      const wal = cache.files.find((f) => f.name === "v8_code_cache_v2-wal")!;
      // A launch under way (or its process) holds them: while it does, the
      // next launch does not empty them.
      const first = await cache.acquire();
      await Deno.writeFile(wal.source, new Uint8Array(2 * 1024 * 1024));
      const second = await cache.acquire();
      assert.equal((await Deno.lstat(wal.source)).size, 2 * 1024 * 1024);
      first.cancel();
      second.cancel();
      // Nothing holds them now: over the budget, back to empty databases.
      const third = await cache.acquire();
      assert.equal((await Deno.lstat(wal.source)).size, 0);
      assert.ok((await cache.bytes()) <= 1024 * 1024);
      third.cancel();
      // Ownership and modes survive the reset.
      assert.equal((await Deno.lstat(wal.source)).uid, identity.hostUid);
    } finally {
      await workspace.close();
      identity.release();
    }
  },
});

Deno.test({
  name:
    "a sandbox's runs reuse its kept code cache: the same program leaves the files as they were, a changed program rewrites them",
  ignore: !root,
  async fn() {
    const parent = await parentDir();
    try {
      await using sandbox = await Sandbox.create({
        policy: {},
        tmpDir: parent,
      });
      const dir = await cacheDirUnder(parent);
      const program = 'const words = ["kept", "cache"];\n' +
        'console.log(words.map((w) => w.toUpperCase()).join(" "));\n';
      const first = await sandbox.run({ code: program });
      assert.equal(first.stdout, "KEPT CACHE\n", first.stderr);
      assert.equal(first.stderr, "");
      // The program's compiled code and its module analysis are there...
      const code = await rows(
        dir,
        "v8_code_cache_v2",
        "SELECT specifier, CAST(source_hash AS TEXT) AS hash FROM codecache WHERE specifier LIKE 'file:%'",
      );
      assert.deepEqual(code.map((r) => r.specifier).sort(), [
        "file:///airlock/boot.js", // the warm boot (a --preload)
        "file:///airlock/main.js",
      ]);
      const analysed = await rows(
        dir,
        "dep_analysis_cache_v2",
        "SELECT specifier FROM moduleinfocache",
      );
      assert.ok(
        analysed.some((r) => r.specifier === "file:///airlock/main.js"),
        JSON.stringify(analysed),
      );
      // ...and a second run finds them: its program's entry stays as it was
      // (V8's output differs from one compile to the next, see below).
      const entry = () =>
        rows(
          dir,
          "v8_code_cache_v2",
          "SELECT hex(data) AS data FROM codecache WHERE specifier = 'file:///airlock/main.js'",
        );
      const stored = await entry();
      assert.equal(
        (await sandbox.run({ code: program })).stdout,
        "KEPT CACHE\n",
      );
      assert.deepEqual(await entry(), stored);
      // An entry V8 refuses (its magic number overwritten, as a run of this
      // sandbox could) is looked up, refused and stored anew by the next
      // run of the program: the kept cache is what that run consults.
      await rewrite(
        dir,
        "UPDATE codecache SET data = zeroblob(8) || substr(data, 9) WHERE specifier = 'file:///airlock/main.js'",
      );
      assert.match(String((await entry())[0]!.data), /^0{16}/);
      const again = await sandbox.run({ code: program });
      assert.equal(again.stdout, "KEPT CACHE\n", again.stderr);
      assert.equal(again.stderr, "");
      const repaired = String((await entry())[0]!.data);
      assert.doesNotMatch(repaired, /^0{16}/);
      assert.equal(repaired.slice(0, 16), String(stored[0]!.data).slice(0, 16));
      // Control: another program misses, and is stored under its own hash.
      const changed = await sandbox.run({
        code: program + "console.log(2);\n",
      });
      assert.equal(changed.stdout, "KEPT CACHE\n2\n");
      const hashes = await rows(
        dir,
        "v8_code_cache_v2",
        "SELECT CAST(source_hash AS TEXT) AS hash FROM codecache WHERE specifier = 'file:///airlock/main.js'",
      );
      assert.equal(hashes.length, 1);
      assert.notEqual(
        hashes[0]!.hash,
        code.find((r) => r.specifier === "file:///airlock/main.js")!.hash,
      );
    } finally {
      await Deno.remove(parent, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "two sandboxes never share a code cache: each keeps its own files in its own workspace, holding only its own programs",
  ignore: !root,
  async fn() {
    const [parentA, parentB] = [await parentDir(), await parentDir()];
    const marker = `cache-marker-${crypto.randomUUID()}`;
    try {
      await using a = await Sandbox.create({ policy: {}, tmpDir: parentA });
      await using b = await Sandbox.create({ policy: {}, tmpDir: parentB });
      const [dirA, dirB] = [
        await cacheDirUnder(parentA),
        await cacheDirUnder(parentB),
      ];
      assert.notEqual(dirA, dirB);
      assert.ok(dirA.startsWith(`${parentA}/airlock-`));
      assert.ok(dirB.startsWith(`${parentB}/airlock-`));
      const secretProgram = `const m = ${JSON.stringify(marker)};\n` +
        "console.log(m.length);\n";
      assert.equal(
        (await b.run({ code: secretProgram })).stdout,
        `${marker.length}\n`,
      );
      assert.equal((await a.run({ code: "console.log('a');" })).stdout, "a\n");
      // Control: the marker is findable where B's program was compiled...
      const inB = [...(await snapshot(dirB)).values()].some((bytes) =>
        contains(bytes, marker)
      );
      assert.ok(inB, "B's code cache holds its program's strings");
      // ...and A's files never hold it.
      for (const [name, bytes] of await snapshot(dirA)) {
        assert.ok(!contains(bytes, marker), `A's ${name} holds B's program`);
      }
    } finally {
      await Deno.remove(parentA, { recursive: true }).catch(() => {});
      await Deno.remove(parentB, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "from inside, with Deno's wall lowered, a sandbox sees its own kept cache files and nothing of another sandbox's",
  ignore: !root,
  async fn() {
    const parentB = await parentDir();
    const marker = `inside-marker-${crypto.randomUUID()}`;
    try {
      await using b = await Sandbox.create({ policy: {}, tmpDir: parentB });
      const dirB = await cacheDirUnder(parentB);
      await b.run({ code: `console.log(${JSON.stringify(marker)}.length);` });
      const probe = `
        const dir = ${JSON.stringify(SANDBOX_PATHS.denoDir)};
        const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
        let found = false;
        const seen = [];
        const walk = (path, depth) => {
          let info;
          try { info = Deno.lstatSync(path); } catch { return; }
          if (info.isDirectory && depth < 8) {
            let entries = [];
            try { entries = [...Deno.readDirSync(path)]; } catch { return; }
            for (const e of entries) walk(path + "/" + e.name, depth + 1);
          } else if (info.isFile && info.size < 64 * 1024 * 1024) {
            seen.push(path);
            try {
              const text = new TextDecoder("latin1").decode(Deno.readFileSync(path));
              if (text.includes(Deno.args[0])) found = true;
            } catch { /* unreadable */ }
          }
        };
        for (const top of ["/tmp", "/airlock", "/run", "/scratch", "/inputs", "/var"]) walk(top, 0);
        let other = "absent";
        try { Deno.statSync(${
        JSON.stringify(dirB)
      }); other = "present"; } catch { /* absent */ }
        const mounts = Deno.readTextFileSync("/proc/self/mountinfo");
        console.log(JSON.stringify({
          names, found, other, filesRead: seen.length,
          mountsB: mounts.includes(Deno.args[2]),
        }));
      `;
      // The marker and B's paths come as arguments: the probe's own text
      // (and so its own code cache) must not hold them.
      const result = await runNamespaceOnly(probe, {
        denoCache: true,
        args: [marker, dirB, parentB],
      });
      assert.equal(result.code, 0, result.stderr);
      const seen = JSON.parse(result.stdout.trim().split("\n").at(-1)!);
      // Its own six files are there, under Deno's names...
      for (const db of KEPT_DATABASES) {
        for (const part of ["", "-wal", "-shm"]) {
          assert.ok(seen.names.includes(db + part), `${db + part} in DENO_DIR`);
        }
      }
      assert.ok(seen.filesRead > 6);
      // ...and nothing of B's: not its strings, not its path, not a mount.
      assert.equal(seen.found, false);
      assert.equal(seen.other, "absent");
      assert.equal(seen.mountsB, false);
    } finally {
      await Deno.remove(parentB, { recursive: true }).catch(() => {});
    }
  },
});
