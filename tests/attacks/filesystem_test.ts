/**
 * Filesystem attacks: host paths, /proc tricks, links out of inputs,
 * hardlinks, writes outside /scratch, device nodes, mode and owner tricks,
 * the harness's own sockets. Every program runs with the canaries loaded
 * (see `_corpus.ts`); the host secret file is world-readable, so only the
 * sandbox's walls keep it out.
 */

import assert from "node:assert/strict";
import {
  assertThrew,
  Corpus,
  NOT_CAPABLE,
  scratchEntry,
  valueOf,
} from "./_corpus.ts";
import { InputError, Sandbox } from "../../mod.ts";

const corpus = new Corpus("filesystem");

// The namespace alone (Deno allows everything): raw launcher mounts.
corpus.batch("namespace", {
  mode: "namespace",
  namespace: (fx) => ({
    scratch: true,
    inputs: [{ source: fx.linkyInput, dest: "/inputs/dir" }],
    limits: { tmpMb: 4, fileSizeMb: 64 },
  }),
});

/** A read of `path` refused by the broker before any syscall. */
function deniedRead(
  id: string,
  title: string,
  path: string,
  how = `return await Deno.readTextFile(${JSON.stringify(path)});`,
) {
  corpus.add({
    id,
    title,
    code: how,
    expect: (v) => void assertThrew(v, NOT_CAPABLE),
    audit: { broker: "read", value: path },
  });
}

/** A write of `path` refused by the broker before any syscall. */
function deniedWrite(id: string, title: string, path: string, how?: string) {
  corpus.add({
    id,
    title,
    code: how ??
      `await Deno.writeTextFile(${
        JSON.stringify(path)
      }, "pwned"); return "written";`,
    expect: (v) => void assertThrew(v, NOT_CAPABLE),
    audit: { broker: "write", value: path },
  });
}

// --- Host paths ---

deniedRead("fs-001", "read the host's /etc/passwd", "/etc/passwd");
deniedRead("fs-002", "read the host's /etc/shadow", "/etc/shadow");
deniedRead(
  "fs-003",
  "list root's SSH keys in /root/.ssh",
  "/root/.ssh",
  `return [...Deno.readDirSync("/root/.ssh")].map((e) => e.name);`,
);
deniedRead(
  "fs-004",
  "list /home for user files",
  "/home",
  `return [...Deno.readDirSync("/home")].map((e) => e.name);`,
);
deniedRead(
  "fs-005",
  "read the harness repository (/work/main/deno.json)",
  "/work/main/deno.json",
);
deniedRead(
  "fs-006",
  "list the host's /tmp (other sandboxes' workspaces)",
  "/tmp",
  `return [...Deno.readDirSync("/tmp")].map((e) => e.name);`,
);
corpus.add({
  id: "fs-007",
  title: "connect to the Docker socket /var/run/docker.sock",
  code:
    `const c = await Deno.connect({ transport: "unix", path: "/var/run/docker.sock" }); c.close(); return "connected";`,
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: ["read", "write"], value: "/var/run/docker.sock" },
});
deniedRead(
  "fs-008",
  "read the raw disk /dev/vda",
  "/dev/vda",
  `const f = await Deno.open("/dev/vda"); const b = new Uint8Array(512); await f.read(b); f.close(); return "read";`,
);
deniedRead(
  "fs-009",
  "read /sys (kernel and device information)",
  "/sys/class/net",
  `return [...Deno.readDirSync("/sys/class/net")].map((e) => e.name);`,
);
corpus.add({
  id: "fs-010",
  title: "read the host secret file by its host path (world-readable)",
  code: (fx) =>
    `return await Deno.readTextFile(${JSON.stringify(fx.hostSecretFile)});`,
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: "read", value: /\/airlock-attack-[^/]+\/secret\.txt$/ },
});

// --- /proc tricks ---

deniedRead(
  "fs-011",
  "reach the host root through /proc/1/root",
  "/proc/1/root/etc/passwd",
);
deniedRead(
  "fs-012",
  "reach the root through /proc/self/root",
  "/proc/self/root/etc/passwd",
);
deniedRead(
  "fs-013",
  "list bwrap's working directory through /proc/1/cwd",
  "/proc/1/cwd",
  `return [...Deno.readDirSync("/proc/1/cwd")].map((e) => e.name);`,
);
deniedRead(
  "fs-014",
  "list the process's open files through /proc/self/fd",
  "/proc/self/fd",
  `return [...Deno.readDirSync("/proc/self/fd")].map((e) => e.name);`,
);
deniedRead(
  "fs-015",
  "read an inherited descriptor through /dev/fd/3 (node:fs)",
  "/dev/fd/3",
  `const fs = await import("node:fs"); return fs.readFileSync("/dev/fd/3", "utf8");`,
);

// --- Links in inputs ---

/** Reading through a link out of an input. `Sandbox.create` refuses such
 * inputs (see the test at the end of this file); here the raw launcher
 * mounts one anyway, with Deno allowing everything: the kernel resolves the
 * link inside the sandbox's own root, where the target is absent. */
function linkRead(id: string, title: string, path: string) {
  corpus.add({
    id,
    batch: "namespace",
    title: `namespace alone: ${title}`,
    code: `return await Deno.readTextFile(${JSON.stringify(path)});`,
    expect: (v) => void assertThrew(v, /^NotFound: /),
    audit: {
      none:
        "namespace mode (Deno allows everything); the link's target does not exist in the sandbox's mount namespace",
    },
  });
}

linkRead(
  "fs-016",
  "follow an input symlink to /etc/passwd",
  "/inputs/dir/passwd",
);
linkRead(
  "fs-017",
  "follow a relative ../secret.txt link out of the input",
  "/inputs/dir/up",
);
linkRead(
  "fs-018",
  "follow a ../../../../../../etc/passwd link",
  "/inputs/dir/upup",
);
linkRead(
  "fs-019",
  "follow an absolute link to the world-readable host secret file",
  "/inputs/dir/abs-secret",
);
linkRead(
  "fs-020",
  "walk a '..' directory link to the input's host parent",
  "/inputs/dir/parent/secret.txt",
);

// --- Hardlinks ---

corpus.add({
  id: "fs-022",
  title: "hardlink an input file into /scratch (to write it afterwards)",
  code:
    `await Deno.link("/inputs/dir/ok.txt", "/scratch/hardlink"); return "linked";`,
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  // Deno.link asks for write access to the existing file too.
  audit: { broker: "write", value: "/inputs/dir/ok.txt" },
});
corpus.add({
  id: "fs-023",
  title: "hardlink the host's /etc/passwd into /scratch",
  code: `await Deno.link("/etc/passwd", "/scratch/passwd"); return "linked";`,
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: "read", value: "/etc/passwd" },
});

// --- Writes outside /scratch ---

deniedWrite("fs-024", "write a file at the root /", "/pwned");
deniedWrite("fs-025", "write into the private /tmp", "/tmp/pwned");
deniedWrite(
  "fs-026",
  "overwrite a read-only input file",
  "/inputs/dir/ok.txt",
);
deniedWrite(
  "fs-027",
  "overwrite the program itself (/airlock/main.js)",
  "/airlock/main.js",
);
deniedWrite("fs-028", "overwrite the Deno binary", "/usr/bin/deno");
deniedWrite("fs-029", "write to /dev/shm", "/dev/shm/pwned");
deniedWrite(
  "fs-030",
  "escape /scratch with ../ (/scratch/../escaped)",
  "/escaped",
  `await Deno.writeTextFile("/scratch/../escaped", "x"); return "written";`,
);
deniedWrite(
  "fs-031",
  "fill the private /tmp tmpfs",
  "/tmp/fill",
  `const f = await Deno.open("/tmp/fill", { write: true, create: true }); await f.write(new Uint8Array(1 << 20)); f.close(); return "written";`,
);
corpus.add({
  id: "fs-032",
  title:
    "create entries in the private /tmp with Deno.makeTempDir (Deno asks the broker about '<TMP>')",
  code: `return await Deno.makeTempDir();`,
  // Contained: TMPDIR is the run's own /var/tmp (under the scratch quota,
  // deleted after the run); never the private /tmp or a path under the cwd.
  expect: (v) =>
    void assert.match(String(valueOf<string>(v)), /^\/var\/tmp\/[^/]+$/),
  audit: { broker: "write", value: "/var/tmp", decisions: ["allow"] },
});

// --- Links, modes and owners ---

corpus.add({
  id: "fs-033",
  title: "create a symlink in /scratch to /etc/passwd (Deno.symlink)",
  code: `await Deno.symlink("/etc/passwd", "/scratch/sl"); return "linked";`,
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: ["read", "write"], value: null },
});
deniedWrite(
  "fs-034",
  "make an input file world-writable (chmod)",
  "/inputs/dir/ok.txt",
  `await Deno.chmod("/inputs/dir/ok.txt", 0o777); return "chmodded";`,
);
corpus.add({
  id: "fs-035",
  title: "chown a scratch file to root",
  code:
    `await Deno.writeTextFile("/scratch/owned", "x"); await Deno.chown("/scratch/owned", 0, 0); return "chowned";`,
  expect: (v) => {
    assertThrew(v, /PermissionDenied|Operation not permitted|os error (1|22)/);
    const host = scratchEntry(v, "/scratch/owned");
    assert.notEqual(host.uid, 0, "the host file is not root's");
  },
  audit: {
    none:
      "chown inside /scratch is a granted write; the kernel refuses it (no CAP_CHOWN, uid 0 unmapped in the user namespace)",
  },
});
corpus.add({
  id: "fs-036",
  title: "plant a setuid-root binary in /scratch (chmod 4755)",
  code:
    `await Deno.writeFile("/scratch/suid", new Uint8Array([0x7f, 0x45, 0x4c, 0x46])); await Deno.chmod("/scratch/suid", 0o4755); return (await Deno.stat("/scratch/suid")).mode & 0o7777;`,
  expect: (v) => {
    const outcome = v.outcome;
    assert.ok(outcome, "no outcome");
    const host = scratchEntry(v, "/scratch/suid");
    assert.notEqual(host.uid, 0, "owned by the sandbox's own uid, never root");
    assert.ok(
      host.uid! >= 1_000_000,
      `owner ${host.uid} is a sandbox uid (a setuid bit grants only it)`,
    );
  },
  audit: {
    none:
      "mode bits inside /scratch are a granted write; the file stays owned by the sandbox's unused host uid, so setuid grants nothing",
  },
});
corpus.add({
  id: "fs-037",
  title: "rename the scratch directory away (/scratch -> /scratch2)",
  code: `await Deno.rename("/scratch", "/scratch2"); return "renamed";`,
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: "write", value: "/scratch2" },
});
deniedWrite(
  "fs-038",
  "touch an input file's timestamps (utime)",
  "/inputs/dir/ok.txt",
  `await Deno.utime("/inputs/dir/ok.txt", 0, 0); return "touched";`,
);

// --- The harness's sockets and workspace ---

corpus.add({
  id: "fs-039",
  title: "speak to the permission broker socket directly (forge an allow)",
  code:
    `const c = await Deno.connect({ transport: "unix", path: "/run/airlock/broker.sock" }); c.close(); return "connected";`,
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: ["read", "write"], value: "/run/airlock/broker.sock" },
});
corpus.add({
  id: "fs-040",
  title: "connect to the egress socket directly, bypassing the bridge",
  code:
    `const c = await Deno.connect({ transport: "unix", path: "/run/airlock/egress.sock" }); c.close(); return "connected";`,
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: ["read", "write"], value: "/run/airlock/egress.sock" },
});
corpus.add({
  id: "fs-041",
  title: "connect to the broker socket by its host path",
  code: (_fx, run) => {
    const path = run.scratchHostPath!.replace(/scratch$/, "run-1/broker.sock");
    return `const c = await Deno.connect({ transport: "unix", path: ${
      JSON.stringify(path)
    } }); c.close(); return "connected";`;
  },
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: ["read", "write"], value: /\/box\/run-1\/broker\.sock$/ },
});
corpus.add({
  id: "fs-042",
  title: "connect to the injector's per-run socket by its host path",
  code: (_fx, run) => {
    const path = run.scratchHostPath!.replace(/scratch$/, "run-1/egress.sock");
    return `const c = await Deno.connect({ transport: "unix", path: ${
      JSON.stringify(path)
    } }); c.close(); return "connected";`;
  },
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: ["read", "write"], value: /\/box\/run-1\/egress\.sock$/ },
});
corpus.add({
  id: "fs-043",
  title: "read the seccomp filter from the harness's private workspace",
  code: (_fx, run) => {
    const path = run.scratchHostPath!.replace(
      /box\/scratch$/,
      "private/seccomp.bpf",
    );
    return `return (await Deno.readFile(${JSON.stringify(path)})).length;`;
  },
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: "read", value: /\/private\/seccomp\.bpf$/ },
});

// --- The broker resolves relative paths against the directory the program
// is in when it asks (Deno.chdir moves it), not the one it started in. ---

corpus.add({
  id: "fs-046",
  title: "chdir into the read-only input, then write a relative path",
  code:
    `Deno.chdir("/inputs/dir"); Deno.writeTextFileSync("dropped.txt", "x"); return "written";`,
  // Decided against /inputs/dir (read-only), not the starting /scratch.
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: "write", value: "/inputs/dir/dropped.txt" },
});

// --- Other ways to name a file ---

deniedRead(
  "fs-047",
  "fetch file:///etc/passwd",
  "/etc/passwd",
  `return await (await fetch("file:///etc/passwd")).text();`,
);
corpus.add({
  id: "fs-048",
  title: "relative path from the cwd: ../etc/hostname",
  code: `return await Deno.readTextFile("../etc/hostname");`,
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  // The broker gets the path as written and resolves it against the
  // program's directory at that moment: /scratch at the start, /inputs/dir
  // once fs-046 of the same batch has moved there.
  audit: { broker: "read", value: /^(\/inputs)?\/etc\/hostname$/ },
});
corpus.add({
  id: "fs-049",
  title: "dynamic import of a harness module by file URL",
  code:
    `const url = ["file:///work", "main", "mod.ts"].join("/"); return Object.keys(await import(url));`,
  expect: (v) =>
    void assertThrew(
      v,
      /read access to '\/work\/main\/mod\.ts' is not granted/,
    ),
  audit: { broker: "read", value: "/work/main/mod.ts" },
});
deniedRead(
  "fs-050",
  "watch the whole filesystem (Deno.watchFs('/'))",
  "/",
  `const w = Deno.watchFs("/"); w.close(); return "watching";`,
);

// --- The namespace alone (Deno allows everything) ---

corpus.add({
  id: "fs-051",
  batch: "namespace",
  title: "namespace alone: read the world-readable host secret file",
  code: (fx) =>
    `return await Deno.readTextFile(${JSON.stringify(fx.hostSecretFile)});`,
  expect: (v) => void assertThrew(v, /^NotFound: /),
  audit: {
    none:
      "Deno's wall is lowered here: the host path does not exist in the mount namespace",
  },
});
corpus.add({
  id: "fs-052",
  batch: "namespace",
  title: "namespace alone: /proc/1/root/etc/passwd",
  code: `return await Deno.readTextFile("/proc/1/root/etc/passwd");`,
  expect: (v) => void assertThrew(v, /^NotFound: |^PermissionDenied: /),
  audit: {
    none:
      "Deno's wall is lowered here: pid 1 is the sandbox's own bwrap, whose root holds no /etc/passwd",
  },
});
corpus.add({
  id: "fs-053",
  batch: "namespace",
  title: "namespace alone: fill the private /tmp past tmpMb",
  code: `const f = Deno.openSync("/tmp/fill", { write: true, create: true });
    const chunk = new Uint8Array(1 << 20);
    let mb = 0;
    try { for (; mb < 64; mb++) f.writeSync(chunk); return "wrote " + mb; }
    catch (e) { return "stopped at " + mb + ": " + errText(e); }`,
  expect: (v) => {
    const value = valueOf<string>(v);
    assert.match(value, /^stopped at [0-4]: .*os error 28/);
  },
  audit: {
    none:
      "Deno's wall is lowered here: the tmpfs size bound (ENOSPC) is the kernel's",
  },
});
corpus.add({
  id: "fs-054",
  batch: "namespace",
  title: "namespace alone: hardlink an input file into /scratch",
  code:
    `Deno.linkSync("/inputs/dir/ok.txt", "/scratch/hardlink"); return "linked";`,
  expect: (v) => void assertThrew(v, /os error 18|Cross-device/),
  audit: {
    none: "Deno's wall is lowered here: link(2) across two mounts is EXDEV",
  },
});
corpus.add({
  id: "fs-055",
  batch: "namespace",
  title: "namespace alone: write into a read-only input",
  code: `Deno.writeTextFileSync("/inputs/dir/new.txt", "x"); return "written";`,
  expect: (v) => void assertThrew(v, /os error 30|Read-only|PermissionDenied/),
  audit: {
    none: "Deno's wall is lowered here: the input is a read-only bind (EROFS)",
  },
});
corpus.add({
  id: "fs-056",
  batch: "namespace",
  title: "namespace alone: create a file at the root /",
  code: `Deno.writeTextFileSync("/pwned", "x"); return "written";`,
  expect: (v) => void assertThrew(v, /os error 30|Read-only|PermissionDenied/),
  audit: {
    none: "Deno's wall is lowered here: / is remounted read-only (EROFS)",
  },
});
corpus.add({
  id: "fs-057",
  batch: "namespace",
  title: "namespace alone: symlink in /scratch to the host secret, then read",
  code: (fx) =>
    `Deno.symlinkSync(${
      JSON.stringify(fx.hostSecretFile)
    }, "/scratch/sl"); return Deno.readTextFileSync("/scratch/sl");`,
  expect: (v) => void assertThrew(v, /^NotFound: /),
  audit: {
    none:
      "Deno's wall is lowered here: a link resolves in the sandbox's root, where the host file is absent",
  },
});

corpus.register();

// --- Links out of inputs are refused before anything runs ---
// (the vectors of fs-016..fs-021 and of chdir-through-a-link: a relative
// path checked against /scratch while the real cwd followed the link)

Deno.test("fs-021/fs-044/fs-045 [filesystem] Sandbox.create refuses every input holding a link out of it, naming the link", async () => {
  const root = await Deno.makeTempDir({ prefix: "airlock-linky-" });
  await Deno.chmod(root, 0o755);
  try {
    const cases: [string, string][] = [
      ["passwd", "/etc/passwd"],
      ["up", "../secret.txt"],
      ["upup", "../../../../../../etc/passwd"],
      ["etc", "/etc"],
      ["parent", ".."],
      ["scratch", "/scratch"],
      ["root", "/"],
      ["deep/out", "../../x"],
    ];
    for (const [name, target] of cases) {
      const input = `${root}/${name.replaceAll("/", "_")}-input`;
      await Deno.mkdir(`${input}/deep`, { recursive: true, mode: 0o755 });
      await Deno.chmod(input, 0o755);
      await Deno.symlink(target, `${input}/${name}`);
      await assert.rejects(
        () => Sandbox.create({ policy: { inputs: [`${input}:/inputs/dir`] } }),
        (error: unknown) =>
          error instanceof InputError &&
          error.message.includes(`${input}/${name}`) &&
          /symlink leading out of it/.test(error.message),
        `${name} -> ${target}`,
      );
    }
    // Links that stay inside are fine.
    const good = `${root}/good`;
    await Deno.mkdir(`${good}/sub`, { recursive: true, mode: 0o755 });
    await Deno.chmod(good, 0o755);
    await Deno.writeTextFile(`${good}/a.txt`, "a", { mode: 0o644 });
    await Deno.chmod(`${good}/a.txt`, 0o644);
    await Deno.symlink("../a.txt", `${good}/sub/link`);
    await Deno.symlink("/inputs/dir/a.txt", `${good}/abs-inside`);
    await using sandbox = await Sandbox.create({
      policy: { inputs: [`${good}:/inputs/dir`] },
    });
    const result = await sandbox.run({
      code:
        `console.log(Deno.readTextFileSync("/inputs/dir/sub/link"), Deno.readTextFileSync("/inputs/dir/abs-inside"))`,
    });
    assert.equal(result.stdout, "a a\n", result.stderr);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
