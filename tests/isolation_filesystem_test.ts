/**
 * Filesystem isolation: the program sees only what the policy mounts, can
 * write only to /scratch, and cannot follow links out of its inputs. Each
 * wall is proven twice: through the public API (Deno's permissions AND the
 * namespace), and through the launcher with Deno allowing everything (the
 * namespace alone).
 */

import assert from "node:assert/strict";
import { InputError, Sandbox } from "../mod.ts";
import type { PolicyInput, RunResult } from "../mod.ts";
import { runNamespaceOnly } from "./kits/namespace_only.ts";

const HOST_PASSWD_LINE = (await Deno.readTextFile("/etc/passwd")).split(
  "\n",
)[0]!;

/** A program that tries to read, list and stat `Deno.args[0]`. */
const PROBE = `
const path = Deno.args[0];
const out = { path, read: null, list: null, stat: null, errors: [] };
try { out.read = Deno.readTextFileSync(path); } catch (e) { out.errors.push("read: " + e.name); }
try { out.list = [...Deno.readDirSync(path)].map((e) => e.name); } catch (e) { out.errors.push("list: " + e.name); }
try { out.stat = Deno.statSync(path).isDirectory ? "dir" : "file"; } catch (e) { out.errors.push("stat: " + e.name); }
console.log(JSON.stringify(out));
`;

interface Probe {
  path: string;
  read: string | null;
  list: string[] | null;
  stat: string | null;
  errors: string[];
}

async function runIn(
  policy: PolicyInput,
  code: string,
  args: string[] = [],
): Promise<RunResult> {
  await using sandbox = await Sandbox.create({ policy });
  return await sandbox.run({ code, args });
}

function parseLast<T>(stdout: string, stderr = ""): T {
  const line = stdout.trim().split("\n").at(-1);
  assert.ok(line, `the program printed nothing; stderr: ${stderr}`);
  return JSON.parse(line) as T;
}

/** A world-readable temp dir (the sandbox runs as its own host uid). */
async function sharedTempDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-test-" });
  await Deno.chmod(dir, 0o755);
  return dir;
}

/**
 * An input directory full of links out of it, next to a secret file:
 * `outer/secret.txt` and `outer/input/{passwd,up,upup,etc,parent}`.
 */
async function linkyInput(): Promise<
  { outer: string; input: string; secret: string }
> {
  const outer = await sharedTempDir();
  const secret = `secret-${crypto.randomUUID()}`;
  await Deno.writeTextFile(`${outer}/secret.txt`, secret, { mode: 0o644 });
  const input = `${outer}/input`;
  await Deno.mkdir(input, { mode: 0o755 });
  await Deno.writeTextFile(`${input}/ok.txt`, "inside", { mode: 0o644 });
  await Deno.symlink("/etc/passwd", `${input}/passwd`);
  await Deno.symlink("../secret.txt", `${input}/up`);
  await Deno.symlink("../../../../../../../etc/passwd", `${input}/upup`);
  await Deno.symlink("/etc", `${input}/etc`);
  await Deno.symlink("..", `${input}/parent`);
  return { outer, input, secret };
}

/** Reads every link of {@linkcode linkyInput} below `dir`, as JSON. */
const FOLLOW_LINKS = `
const dir = Deno.args[0];
const got = {};
for (const name of ["ok.txt", "passwd", "up", "upup", "etc/passwd", "parent/secret.txt"]) {
  try { got[name] = Deno.readTextFileSync(dir + "/" + name); } catch (e) { got[name] = "ERR " + e.name; }
}
try { got["parent/"] = [...Deno.readDirSync(dir + "/parent")].map((e) => e.name).join(","); } catch (e) { got["parent/"] = "ERR " + e.name; }
console.log(JSON.stringify(got));
`;

function assertLinksNotFollowed(
  got: Record<string, string>,
  secret: string,
): void {
  assert.equal(
    got["ok.txt"],
    "inside",
    "positive control: the input is readable",
  );
  for (const [name, value] of Object.entries(got)) {
    if (name === "ok.txt") continue;
    assert.ok(
      !value.includes(HOST_PASSWD_LINE) && !value.includes(secret) &&
        !value.includes("secret.txt"),
      `link '${name}' reached a host file: ${value}`,
    );
  }
}

// --- Through the public API: Deno's permissions and the namespace ---

const harness = await Sandbox.create({ policy: { scratch: true } });
const workspaceRoot = harness.scratchPath!.replace(/\/box\/scratch$/, "");
await harness.close();

for (
  const path of [
    "/etc/passwd",
    "/etc",
    "/root",
    "/home",
    "/work/main/deno.json",
    "/work",
    Deno.cwd(),
    "/tmp",
    workspaceRoot,
    `${workspaceRoot}/private/seccomp.bpf`,
    "/proc/1/environ",
    "/proc/self/environ",
    "/",
  ]
) {
  Deno.test(`sandbox cannot read, list or stat ${path}`, async () => {
    const result = await runIn({}, PROBE, [path]);
    assert.equal(result.reason, "exit", result.stderr);
    const probe = parseLast<Probe>(result.stdout, result.stderr);
    assert.equal(probe.path, path);
    assert.equal(probe.read, null, `read ${path}: ${probe.read}`);
    assert.equal(probe.list, null, `listed ${path}: ${probe.list}`);
    assert.equal(probe.stat, null, `stat ${path}: ${probe.stat}`);
    assert.ok(!result.stdout.includes(HOST_PASSWD_LINE));
  });
}

Deno.test("sandbox cannot read the harness's workspace while it is live", async () => {
  await using sandbox = await Sandbox.create({ policy: { scratch: true } });
  const root = sandbox.scratchPath!.replace(/\/box\/scratch$/, "");
  for (const path of [root, `${root}/private/seccomp.bpf`, `${root}/box`]) {
    const result = await sandbox.run({ code: PROBE, args: [path] });
    const probe = parseLast<Probe>(result.stdout, result.stderr);
    assert.equal(probe.read, null, path);
    assert.equal(probe.list, null, path);
  }
});

// Links out of an input are refused before anything runs (a program could
// otherwise chdir through one and have relative paths checked against the
// wrong directory). The namespace-only test below mounts such an input
// anyway and shows the kernel still resolves every link inside the sandbox.
for (const copy of [false, true]) {
  Deno.test(`sandbox refuses a ${copy ? "copied" : "bind-mounted"} input holding links out of it, naming the link`, async () => {
    const { outer, input } = await linkyInput();
    try {
      await assert.rejects(
        () =>
          Sandbox.create({
            policy: {
              inputs: [{ source: input, target: "/inputs/dir", copy }],
            },
          }),
        (error: unknown) =>
          error instanceof InputError &&
          /is a symlink leading out of it/.test(error.message) &&
          error.message.includes(input),
      );
    } finally {
      await Deno.remove(outer, { recursive: true });
    }
  });
}

/** Tries to write each of `Deno.args`; prints which writes succeeded. */
const WRITE_EVERYWHERE = `
const wrote = [];
for (const path of Deno.args) {
  try { Deno.writeTextFileSync(path, "pwned"); wrote.push(path); } catch { /* refused */ }
}
console.log(JSON.stringify(wrote));
`;

const FORBIDDEN_WRITES = [
  "/x",
  "/airlock/main.js",
  "/airlock/new.js",
  "/usr/bin/deno",
  "/usr/x",
  "/inputs/dir/ok.txt",
  "/inputs/dir/new.txt",
  "/scratch/../escaped",
  "/dev/shm/x",
  "/dev/x",
];

Deno.test("sandbox cannot write outside /scratch", async () => {
  const outer = await sharedTempDir();
  const input = `${outer}/input`;
  await Deno.mkdir(input, { mode: 0o755 });
  await Deno.writeTextFile(`${input}/ok.txt`, "inside", { mode: 0o644 });
  try {
    const result = await runIn(
      { scratch: true, inputs: [`${input}:/inputs/dir`] },
      WRITE_EVERYWHERE,
      [...FORBIDDEN_WRITES, "/tmp/x", "/scratch/allowed.txt"],
    );
    const wrote = parseLast<string[]>(result.stdout, result.stderr);
    assert.deepEqual(wrote, ["/scratch/allowed.txt"]);
    assert.equal(await Deno.readTextFile(`${input}/ok.txt`), "inside");
    assert.deepEqual(
      [...Deno.readDirSync(input)].map((e) => e.name).sort(),
      ["ok.txt"],
    );
  } finally {
    await Deno.remove(outer, { recursive: true });
  }
});

Deno.test("sandbox scratch files persist across runs of one sandbox", async () => {
  await using sandbox = await Sandbox.create({ policy: { scratch: true } });
  const first = await sandbox.run({
    code:
      `Deno.writeTextFileSync("/scratch/note.txt", "kept"); console.log(Deno.cwd());`,
  });
  assert.equal(first.stdout, "/scratch\n", first.stderr);
  const second = await sandbox.run({
    code: `console.log(Deno.readTextFileSync("note.txt"));`,
  });
  assert.equal(second.stdout, "kept\n", second.stderr);
});

Deno.test("sandbox scratch files do not leak into another sandbox", async () => {
  await using writer = await Sandbox.create({ policy: { scratch: true } });
  await writer.run({
    code: `Deno.writeTextFileSync("/scratch/note.txt", "x");`,
  });
  await using reader = await Sandbox.create({ policy: { scratch: true } });
  assert.notEqual(reader.scratchPath, writer.scratchPath);
  const result = await reader.run({
    code:
      `console.log(JSON.stringify([...Deno.readDirSync("/scratch")].map((e) => e.name)));`,
  });
  assert.equal(result.stdout, "[]\n", result.stderr);
  const probe = await reader.run({ code: PROBE, args: [writer.scratchPath!] });
  assert.equal(parseLast<Probe>(probe.stdout).read, null);
});

// --- The namespace alone: Deno allows everything ---

Deno.test("namespace alone: /etc/passwd, /root, /home and the harness's files do not exist", async () => {
  const paths = [
    "/etc/passwd",
    "/etc",
    "/root",
    "/home",
    "/work/main/deno.json",
    "/work",
    Deno.cwd(),
    workspaceRoot,
    "/var",
    "/run",
    "/sys",
    "/boot",
  ];
  const result = await runNamespaceOnly(`
    const out = {};
    for (const p of ${JSON.stringify(paths)}) {
      try { Deno.statSync(p); out[p] = "exists"; } catch (e) { out[p] = e.name; }
    }
    console.log(JSON.stringify(out));
  `);
  const out = parseLast<Record<string, string>>(result.stdout, result.stderr);
  for (const path of paths) assert.equal(out[path], "NotFound", path);
});

Deno.test("namespace alone: /tmp is private and shows none of the host's /tmp", async () => {
  const marker = `airlock-marker-${crypto.randomUUID()}`;
  await Deno.writeTextFile(`/tmp/${marker}`, "host");
  try {
    const result = await runNamespaceOnly(
      `console.log(JSON.stringify([...Deno.readDirSync("/tmp")].map((e) => e.name)));`,
    );
    const names = parseLast<string[]>(result.stdout, result.stderr);
    assert.ok(!names.includes(marker));
    assert.ok(names.every((n) => n === ".deno"), `unexpected: ${names}`);
  } finally {
    await Deno.remove(`/tmp/${marker}`);
  }
});

const LIST_ROOT =
  `console.log(JSON.stringify([...Deno.readDirSync("/")].map((e) => e.name).sort()));`;
const BASE_ROOT = ["airlock", "dev", "lib", "lib64", "proc", "tmp", "usr"];

Deno.test("namespace alone: / holds only usr, lib, lib64, proc, dev, tmp, airlock", async () => {
  const result = await runNamespaceOnly(LIST_ROOT, { deno: "read-all" });
  assert.deepEqual(parseLast(result.stdout, result.stderr), BASE_ROOT);
});

Deno.test("namespace alone: / gains only scratch and inputs when granted", async () => {
  const dir = await sharedTempDir();
  try {
    const result = await runNamespaceOnly(LIST_ROOT, {
      deno: "read-all",
      scratch: true,
      inputs: [{ source: dir, dest: "/inputs/dir" }],
    });
    assert.deepEqual(
      parseLast(result.stdout, result.stderr),
      [...BASE_ROOT, "inputs", "scratch"].sort(),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Lists every process visible in /proc with its cmdline and environ. */
const READ_PROC = `
const procs = [];
for (const e of Deno.readDirSync("/proc")) {
  if (!/^\\d+$/.test(e.name)) continue;
  const read = (f) => { try { return Deno.readTextFileSync("/proc/" + e.name + "/" + f); } catch (err) { return "ERR " + err.name; } };
  procs.push({ pid: Number(e.name), cmdline: read("cmdline"), environ: read("environ") });
}
console.log(JSON.stringify({ self: Deno.pid, procs, mountinfo: Deno.readTextFileSync("/proc/self/mountinfo") }));
`;

interface ProcView {
  self: number;
  procs: { pid: number; cmdline: string; environ: string }[];
  mountinfo: string;
}

const DEV_NODES = ["/null", "/zero", "/full", "/random", "/urandom", "/tty"];

Deno.test("namespace alone: /proc/self/mountinfo names no host path but the mounted ones", async () => {
  const dir = await sharedTempDir();
  try {
    const result = await runNamespaceOnly(READ_PROC, {
      scratch: true,
      inputs: [{ source: dir, dest: "/inputs/dir" }],
    });
    const view = parseLast<ProcView>(result.stdout, result.stderr);
    const mounted = result.mountedHostPaths;
    const unexpected: string[] = [];
    for (const line of view.mountinfo.trim().split("\n")) {
      // id parent major:minor ROOT MOUNTPOINT opts... - FSTYPE SOURCE opts
      const fields = line.split(" ");
      const root = fields[3]!.replaceAll("\\040", " ");
      const fsType = line.split(" - ")[1]?.split(" ")[0] ?? "";
      const isMounted = mounted.some((p) => p === root || p.endsWith(root));
      const isVirtualRoot = ["tmpfs", "proc", "devpts"].includes(fsType) &&
        (root === "/" || root === "/newroot");
      const isDevNode = fsType === "devtmpfs" && DEV_NODES.includes(root);
      if (!isMounted && !isVirtualRoot && !isDevNode) unexpected.push(line);
    }
    assert.deepEqual(unexpected, [], "host paths that were never mounted");
    assert.ok(
      view.mountinfo.includes(result.workspaceRoot),
      "positive control: the program's own mount is listed",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("namespace alone: /proc shows only the sandbox's own processes", async () => {
  const result = await runNamespaceOnly(READ_PROC);
  const view = parseLast<ProcView>(result.stdout, result.stderr);
  const commands = view.procs.map((p) => p.cmdline.split("\0")[0]);
  assert.ok(view.procs.length <= 3, `processes: ${commands}`);
  assert.ok(
    commands.every((c) => c === "/usr/bin/bwrap" || c === "/usr/bin/deno"),
    `unexpected processes: ${commands}`,
  );
  assert.ok(view.procs.every((p) => p.pid < 10), "pids of a fresh namespace");
  assert.ok(view.procs.every((p) => p.pid !== Deno.pid));
});

Deno.test("namespace alone: no visible /proc/*/environ holds a harness variable", async () => {
  const result = await runNamespaceOnly(READ_PROC);
  const view = parseLast<ProcView>(result.stdout, result.stderr);
  const harnessEnv = Deno.env.toObject();
  // Set by the launcher itself, so equal values are not a leak.
  const launcherOwn = new Set(["DENO_DIR", "DENO_NO_UPDATE_CHECK", "NO_COLOR"]);
  const leaks: string[] = [];
  for (const proc of view.procs) {
    assert.ok(
      !proc.environ.startsWith("ERR"),
      `environ unreadable: ${proc.environ}`,
    );
    for (const entry of proc.environ.split("\0").filter(Boolean)) {
      const eq = entry.indexOf("=");
      const [name, value] = [entry.slice(0, eq), entry.slice(eq + 1)];
      if (launcherOwn.has(name)) continue;
      if (harnessEnv[name] === value || value === Deno.cwd()) {
        leaks.push(
          `pid ${proc.pid} (${proc.cmdline.split("\0")[0]}): ${entry}`,
        );
      }
    }
  }
  assert.deepEqual(leaks, [], "harness variables visible inside the sandbox");
});

Deno.test("namespace alone: symlinks in an input cannot reach host files", async () => {
  const { outer, input, secret } = await linkyInput();
  try {
    const result = await runNamespaceOnly(FOLLOW_LINKS, {
      inputs: [{ source: input, dest: "/inputs/dir" }],
      args: ["/inputs/dir"],
    });
    assertLinksNotFollowed(parseLast(result.stdout, result.stderr), secret);
  } finally {
    await Deno.remove(outer, { recursive: true });
  }
});

Deno.test("namespace alone: writes outside /scratch and /tmp fail", async () => {
  const { outer, input } = await linkyInput();
  try {
    const result = await runNamespaceOnly(WRITE_EVERYWHERE, {
      scratch: true,
      inputs: [{ source: input, dest: "/inputs/dir" }],
      args: [...FORBIDDEN_WRITES, "/scratch/allowed.txt"],
    });
    const wrote = parseLast<string[]>(result.stdout, result.stderr);
    assert.deepEqual(wrote, ["/scratch/allowed.txt"]);
    assert.equal(await Deno.readTextFile(`${input}/ok.txt`), "inside");
  } finally {
    await Deno.remove(outer, { recursive: true });
  }
});
