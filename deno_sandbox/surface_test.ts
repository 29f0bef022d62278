/**
 * README's table of the `@deno/sandbox` surface, held to the code: every
 * member the table names has a probe here, every member of the module's
 * classes and every export is in the table, and, in real sandboxes, each
 * "supported" or "differs" row works when called while each "unsupported"
 * row throws the documented `AirlockUnsupportedError` naming that member.
 */

import assert from "node:assert/strict";
import * as api from "./mod.ts";
import {
  AirlockUnsupportedError,
  ApiError,
  ChildProcess,
  Client,
  ConnectionClosedError,
  ConnectionEstablishmentError,
  DenoProcess,
  DenoRepl,
  FsFile,
  InvalidMemoryError,
  InvalidTimeoutError,
  InvalidTokenError,
  KillController,
  KillSignal,
  MissingTokenError,
  NetworkError,
  RpcError,
  Sandbox,
  SandboxCommandError,
  SandboxFs,
  SandboxKillError,
  type SandboxOptions,
  SandboxSdkError,
  SeekMode,
  Snapshot,
  Volume,
  VsCode,
} from "./mod.ts";
import { LocalDeno, LocalEnv } from "./deno.ts";
import { airlockSandboxOptions, checkOptions } from "./options.ts";

type Status = "supported" | "differs" | "unsupported";
interface Row {
  status: Status;
  notes: string;
}

/** The README section's table: member (each code span of column 1) → row. */
async function surfaceTable(): Promise<Map<string, Row>> {
  const readme = await Deno.readTextFile(
    new URL("../README.md", import.meta.url),
  );
  const start = readme.indexOf("\n## @deno/sandbox compatibility");
  assert.ok(start !== -1, "README has the @deno/sandbox section");
  const end = readme.indexOf("\n## ", start + 1);
  const lines = readme.slice(start, end === -1 ? undefined : end).split("\n");
  const header = lines.findIndex((l) => /^\|\s*SDK member\s*\|/.test(l));
  assert.ok(header !== -1, "the section has the surface table");
  const table = new Map<string, Row>();
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith("|")) break;
    const [members = "", status = "", notes = ""] = line.slice(1, -1).split(
      "|",
    ).map((cell) => cell.trim());
    assert.ok(
      ["supported", "differs", "unsupported"].includes(status),
      `README row status '${status}': ${line}`,
    );
    const names = [...members.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    assert.ok(names.length > 0, `README row names no member: ${line}`);
    for (const name of names) {
      assert.ok(!table.has(name), `README names '${name}' twice`);
      table.set(name, { status: status as Status, notes });
    }
  }
  return table;
}

/** What a probe gets: one sandbox made with every SDK option, and a maker. */
interface Context {
  sandbox: Sandbox;
  create(options?: SandboxOptions): Promise<Sandbox>;
  host: string;
}

const RUN_FOREVER = "setInterval(() => {}, 1000)";

async function piped(sandbox: Sandbox, code: string): Promise<string> {
  const child = await sandbox.deno.run({ code, stdout: "piped" });
  return (await child.output()).stdoutText!;
}

/** The mapping of options the SDK accepts and airlock ignores. */
function assertIgnored(options: SandboxOptions): void {
  const plain = airlockSandboxOptions({}, checkOptions({}), []);
  const mapped = airlockSandboxOptions(options, checkOptions(options), []);
  assert.deepEqual({ ...mapped, env: null }, { ...plain, env: null });
}

/** One probe per member README names, keyed as README writes it. */
const PROBES: Record<string, (ctx: Context) => unknown> = {
  "Sandbox.create()": ({ sandbox }) => assert.ok(sandbox instanceof Sandbox),
  "Sandbox.connect()": async ({ sandbox }) => {
    const again = await Sandbox.connect(sandbox.id);
    assert.equal(again.id, sandbox.id);
    await again.close(); // a second client: detaches only
    await assert.rejects(
      Sandbox.connect("sbx-elsewhere"),
      ConnectionEstablishmentError,
    );
  },
  "Sandbox.create({ secrets })": async ({ sandbox }) => {
    const placeholder = await sandbox.env.get("API_KEY");
    assert.ok(
      placeholder && !placeholder.includes("sk-real-value"),
      placeholder,
    );
    assert.ok(
      !JSON.stringify(sandbox.airlock.policy).includes("sk-real-value"),
    );
  },
  "Sandbox.create({ timeout })": async ({ create }) => {
    const lasting = await create({ timeout: "30s", allowNet: [] });
    await lasting.close(); // detaches: the sandbox lives on
    const again = await Sandbox.connect(lasting.id);
    await again.kill();
    await assert.rejects(Sandbox.connect(lasting.id));
  },
  "Sandbox.create({ allowNet })": ({ sandbox }) => {
    const network = JSON.stringify(sandbox.airlock.networkPolicy);
    assert.match(network, /"example\.com"/);
    assert.match(network, /"api\.example\.com"/, "the secret's host is added");
  },
  "Sandbox.create({ env })": async ({ sandbox, create }) => {
    assert.equal(await sandbox.env.get("MODE"), "test");
    await assert.rejects(create({ env: { LD_PRELOAD: "/x.so" } }), /LD_/);
  },
  "Sandbox.create({ memory })": ({ sandbox }) =>
    assert.equal(sandbox.airlock.policy.limits.memoryMb, 1024),
  "Sandbox.create({ labels })": () => assertIgnored({ labels: { a: "b" } }),
  "Sandbox.create({ debug })": () => assertIgnored({ debug: true }),
  "Sandbox.create({ token })": () => assertIgnored({ token: "t" }),
  "Sandbox.create({ org })": () => assertIgnored({ org: "o" }),
  "Sandbox.create({ apiEndpoint })": () =>
    assertIgnored({ apiEndpoint: "https://api.example.com" }),
  "Sandbox.create({ sandboxEndpoint })": () =>
    assertIgnored({ sandboxEndpoint: "https://sandbox.example.com" }),
  "Sandbox.create({ region })": ({ create }) => create({ region: "ams" }),
  "Sandbox.create({ root })": ({ create }) => create({ root: "snapshot" }),
  "Sandbox.create({ volumes })": ({ create }) =>
    create({ volumes: { "/data": "v" } }),
  "Sandbox.create({ port })": ({ create }) => create({ port: 8000 }),
  "Sandbox.create({ ssh: true })": ({ create }) => create({ ssh: true }),

  "sandbox.id": ({ sandbox }) => assert.match(sandbox.id, /^sbx-/),
  "sandbox.closed": ({ sandbox }) =>
    assert.ok(sandbox.closed instanceof Promise),
  "sandbox.fs": ({ sandbox }) => assert.ok(sandbox.fs instanceof SandboxFs),
  "sandbox.deno": ({ sandbox }) =>
    assert.equal(typeof sandbox.deno.run, "function"),
  "sandbox.env": ({ sandbox }) =>
    assert.equal(typeof sandbox.env.get, "function"),
  "sandbox.close()": async ({ create }) => {
    const sandbox = await create({ allowNet: [] });
    await sandbox.close();
    await sandbox.closed;
    await assert.rejects(sandbox.deno.eval("1"), ConnectionClosedError);
  },
  "sandbox.kill()": async ({ create }) => {
    const sandbox = await create({ allowNet: [], timeout: "30s" });
    await sandbox.kill();
    await assert.rejects(Sandbox.connect(sandbox.id));
  },
  "sandbox.extendTimeout()": async ({ sandbox }) => {
    const deadline = await sandbox.extendTimeout("10m");
    assert.ok(deadline.getTime() > Date.now() + 9 * 60_000);
  },
  "sandbox[Symbol.asyncDispose]()": async ({ create }) => {
    const sandbox = await create({ allowNet: [] });
    await sandbox[Symbol.asyncDispose]();
    await assert.rejects(sandbox.fs.readTextFile("x"), ConnectionClosedError);
  },
  "sandbox.ssh": ({ sandbox }) => assert.equal(sandbox.ssh, undefined),
  "sandbox.url": ({ sandbox }) => assert.equal(sandbox.url, undefined),
  "sandbox.spawn()": async ({ sandbox }) => {
    const child = await sandbox.spawn("deno", {
      args: ["eval", "console.log(6 * 7)"],
      stdout: "piped",
    });
    assert.equal((await child.output()).stdoutText, "42\n");
    await assert.rejects(sandbox.spawn("ls"), AirlockUnsupportedError);
  },
  "sandbox.sh": ({ sandbox }) => sandbox.sh`ls`,
  "sandbox.fetch()": ({ sandbox }) => sandbox.fetch("https://example.com/"),
  "sandbox.exposeHttp()": ({ sandbox }) => sandbox.exposeHttp({ port: 8000 }),
  "sandbox.exposeSsh()": ({ sandbox }) => sandbox.exposeSsh(),
  "sandbox.exposeVscode()": ({ sandbox }) => sandbox.exposeVscode(),
  "sandbox.deploy()": ({ sandbox }) => sandbox.deploy("app"),
  "sandbox.deno.deploy()": ({ sandbox }) => sandbox.deno.deploy("app"),

  "sandbox.deno.run()": async ({ sandbox }) => {
    await sandbox.fs.writeTextFile("lib.ts", "export const n: number = 7;");
    await sandbox.fs.writeTextFile(
      "main.ts",
      "import { n } from './lib.ts'; console.log(n * 6)",
    );
    const child = await sandbox.deno.run({
      entrypoint: "main.ts",
      stdout: "piped",
    });
    assert.equal((await child.output()).stdoutText, "42\n");
    await assert.rejects(
      sandbox.deno.run({ code: "import 'jsr:@std/path'" }),
      /jsr:@std\/path/,
    );
  },
  "sandbox.deno.run({ scriptArgs })": async ({ sandbox }) => {
    const child = await sandbox.deno.run({
      code: "console.log(Deno.args.join(','))",
      scriptArgs: ["a", "b"],
      stdout: "piped",
    });
    assert.equal((await child.output()).stdoutText, "a,b\n");
  },
  "sandbox.deno.run({ extension })": async ({ sandbox }) => {
    const code = "const n = <number> 1; console.log(n)";
    const child = await sandbox.deno.run({
      code,
      extension: "ts",
      stdout: "piped",
    });
    assert.equal((await child.output()).stdoutText, "1\n");
    // The same text as TSX is JSX, which does not compile.
    await assert.rejects(sandbox.deno.run({ code, extension: "tsx" }));
  },
  "sandbox.deno.run({ signal })": async ({ sandbox }) => {
    const child = await sandbox.deno.run({
      code: RUN_FOREVER,
      signal: AbortSignal.abort(),
    });
    assert.equal((await child.status).signal, "SIGTERM");
  },
  "sandbox.deno.run({ stdin })": async ({ sandbox }) => {
    const child = await sandbox.deno.run({
      code: "console.log(await new Response(Deno.stdin.readable).text())",
      stdin: "piped",
      stdout: "piped",
    });
    const writer = child.stdin!.getWriter();
    await writer.write(new TextEncoder().encode("in"));
    await writer.close();
    assert.equal((await child.output()).stdoutText, "in\n");
  },
  "sandbox.deno.run({ stdout })": async ({ sandbox }) =>
    assert.equal(await piped(sandbox, "console.log('out')"), "out\n"),
  "sandbox.deno.run({ stderr })": async ({ sandbox }) => {
    const child = await sandbox.deno.run({
      code: "console.error('err')",
      stderr: "piped",
    });
    const output = await child.output();
    assert.equal(output.stderrText, "err\n");
    assert.equal(output.stdout, null, "stdout inherits by default");
  },
  "sandbox.deno.run({ cwd })": async ({ sandbox }) => {
    const child = await sandbox.deno.run({
      code: "console.log(Deno.cwd())",
      cwd: "/scratch",
      stdout: "piped",
    });
    assert.equal((await child.output()).stdoutText, "/scratch\n");
    await assert.rejects(
      sandbox.deno.run({ code: "1", cwd: "/tmp" }),
      AirlockUnsupportedError,
    );
  },
  "sandbox.deno.run({ env })": ({ sandbox }) =>
    sandbox.deno.run({ code: "1", env: { A: "b" } }),
  "sandbox.deno.run({ clearEnv })": ({ sandbox }) =>
    sandbox.deno.run({ code: "1", clearEnv: true }),
  "sandbox.deno.run({ watch })": ({ sandbox }) =>
    sandbox.deno.run({ entrypoint: "main.ts", watch: true }),
  'sandbox.deno.repl({ stdin: "piped" })': ({ sandbox }) =>
    sandbox.deno.repl({ stdin: "piped" }),
  "sandbox.deno.eval()": async ({ sandbox }) => {
    assert.equal(await sandbox.deno.eval("await Promise.resolve(2) + 1"), 3);
    await assert.rejects(sandbox.deno.eval("import('./lib.ts')"), TypeError);
  },
  "sandbox.deno.repl()": async ({ sandbox }) => {
    await using repl = await sandbox.deno.repl();
    assert.ok(repl instanceof DenoRepl);
  },
  "repl.eval()": async ({ sandbox }) => {
    await using repl = await sandbox.deno.repl();
    await repl.eval("const x = 40;");
    assert.equal(await repl.eval("x + 2"), 42);
    await assert.rejects(repl.eval("const x = 1;"), /already been declared/);
  },
  "repl.call()": async ({ sandbox }) => {
    await using repl = await sandbox.deno.repl();
    assert.deepEqual(
      await repl.call("(a, b) => new Map([[a, b]])", 1, 2),
      new Map([[1, 2]]),
    );
  },
  "repl.close()": async ({ sandbox }) => {
    const repl = await sandbox.deno.repl();
    await repl.close();
    assert.equal((await repl.status).success, true);
  },
  "repl[Symbol.asyncDispose]()": async ({ sandbox }) => {
    const repl = await sandbox.deno.repl();
    await repl[Symbol.asyncDispose]();
    assert.equal((await repl.status).success, true);
  },

  "sandbox.env.get()": async ({ sandbox }) =>
    assert.equal(await sandbox.env.get("MODE"), "test"),
  "sandbox.env.toObject()": async ({ sandbox }) => {
    const env = await sandbox.env.toObject();
    assert.equal(env.MODE, "test");
    assert.ok(env.API_KEY);
  },
  "sandbox.env.set()": ({ sandbox }) => sandbox.env.set("A", "b"),
  "sandbox.env.delete()": ({ sandbox }) => sandbox.env.delete("MODE"),

  "sandbox.fs.readFile()": async ({ sandbox }) => {
    await sandbox.fs.writeFile("read.bin", new Uint8Array([1, 2]));
    assert.deepEqual(
      await sandbox.fs.readFile("read.bin"),
      new Uint8Array([1, 2]),
    );
  },
  "sandbox.fs.readTextFile()": async ({ sandbox }) => {
    await sandbox.fs.writeTextFile("read.txt", "text");
    assert.equal(await sandbox.fs.readTextFile("read.txt"), "text");
  },
  "sandbox.fs.writeFile()": async ({ sandbox }) => {
    await sandbox.fs.writeFile("bytes.bin", new Uint8Array([1]));
    await sandbox.fs.writeFile("bytes.bin", new Uint8Array([2]), {
      append: true,
      mode: 0o600,
    });
    assert.deepEqual(
      await sandbox.fs.readFile("bytes.bin"),
      new Uint8Array([1, 2]),
    );
  },
  "sandbox.fs.writeTextFile()": async ({ sandbox }) => {
    await sandbox.fs.writeTextFile("text.txt", "text");
    assert.equal(await sandbox.fs.readTextFile("text.txt"), "text");
  },
  "sandbox.fs.readDir()": async ({ sandbox }) => {
    await sandbox.fs.writeTextFile("listed.txt", "");
    const names = await Array.fromAsync(sandbox.fs.readDir("."), (e) => e.name);
    assert.ok(names.includes("listed.txt"), names.join());
  },
  "sandbox.fs.remove()": async ({ sandbox }) => {
    await sandbox.fs.writeTextFile("gone.txt", "");
    await sandbox.fs.remove("gone.txt");
    await assert.rejects(sandbox.fs.stat("gone.txt"), Deno.errors.NotFound);
  },
  "sandbox.fs.mkdir()": async ({ sandbox }) => {
    await sandbox.fs.mkdir("made/here", { recursive: true, mode: 0o700 });
    assert.equal((await sandbox.fs.stat("made/here")).isDirectory, true);
  },
  "sandbox.fs.copyFile()": async ({ sandbox }) => {
    await sandbox.fs.writeTextFile("original.txt", "copied");
    await sandbox.fs.copyFile("original.txt", "copy.txt");
    assert.equal(await sandbox.fs.readTextFile("copy.txt"), "copied");
  },
  "sandbox.fs.lstat()": async ({ sandbox }) => {
    await sandbox.fs.mkdir("dir", { recursive: true });
    assert.equal((await sandbox.fs.lstat("dir")).isDirectory, true);
  },
  "sandbox.fs.realPath()": async ({ sandbox }) => {
    await sandbox.fs.writeTextFile("real.txt", "");
    assert.equal(
      await sandbox.fs.realPath("dir/../real.txt"),
      "/scratch/real.txt",
    );
  },
  "sandbox.fs.truncate()": async ({ sandbox }) => {
    await sandbox.fs.writeTextFile("long.txt", "longer");
    await sandbox.fs.truncate("long.txt", 2);
    assert.equal(await sandbox.fs.readTextFile("long.txt"), "lo");
  },
  "sandbox.fs.stat()": async ({ sandbox }) => {
    await sandbox.fs.writeTextFile("four.txt", "four");
    const info = await sandbox.fs.stat("four.txt");
    assert.equal(info.isFile, true);
    assert.equal(info.size, 4);
  },
  "sandbox.fs.rename()": async ({ sandbox }) => {
    await sandbox.fs.writeTextFile("before.txt", "moved");
    await sandbox.fs.rename("before.txt", "after.txt");
    assert.equal(await sandbox.fs.readTextFile("after.txt"), "moved");
    await assert.rejects(sandbox.fs.stat("before.txt"), Deno.errors.NotFound);
  },
  "sandbox.fs.walk()": async ({ sandbox }) => {
    await sandbox.fs.mkdir("walked/in", { recursive: true });
    await sandbox.fs.writeTextFile("walked/in/w.txt", "");
    const paths = await Array.fromAsync(
      sandbox.fs.walk("walked", { exts: [".txt"], includeDirs: false }),
      (e) => e.path,
    );
    assert.deepEqual(paths, ["walked/in/w.txt"]);
    await assert.rejects(
      sandbox.fs.walk(".", { followSymlinks: true }).next(),
      AirlockUnsupportedError,
    );
  },
  "sandbox.fs.makeTempDir()": async ({ sandbox }) =>
    assert.match(await sandbox.fs.makeTempDir(), /^\/scratch\/\.tmp\/\w+$/),
  "sandbox.fs.makeTempFile()": async ({ sandbox }) =>
    assert.match(await sandbox.fs.makeTempFile(), /^\/scratch\/\.tmp\/\w+$/),
  "sandbox.fs.upload()": async ({ sandbox, host }) => {
    await Deno.mkdir(`${host}/project/src`, { recursive: true });
    await Deno.writeTextFile(`${host}/project/src/a.ts`, "a");
    await sandbox.fs.upload(`${host}/project`, "uploaded");
    assert.equal(
      await sandbox.fs.readTextFile("uploaded/project/src/a.ts"),
      "a",
    );
  },
  "sandbox.fs.download()": async ({ sandbox, host }) => {
    await sandbox.fs.mkdir("results/sub", { recursive: true });
    await sandbox.fs.writeTextFile("results/sub/r.txt", "r");
    await sandbox.fs.download("results", `${host}/back`);
    assert.equal(
      await Deno.readTextFile(`${host}/back/results/sub/r.txt`),
      "r",
    );
  },
  "sandbox.fs.open()": ({ sandbox }) => sandbox.fs.open("text.txt"),
  "sandbox.fs.create()": ({ sandbox }) => sandbox.fs.create("new.txt"),
  "sandbox.fs.symlink()": ({ sandbox }) => sandbox.fs.symlink("a", "b"),
  "sandbox.fs.link()": ({ sandbox }) => sandbox.fs.link("text.txt", "b"),
  "sandbox.fs.readLink()": ({ sandbox }) => sandbox.fs.readLink("b"),
  "sandbox.fs.chmod()": ({ sandbox }) => sandbox.fs.chmod("text.txt", 0o600),
  "sandbox.fs.chown()": ({ sandbox }) => sandbox.fs.chown("text.txt", 0, 0),
  "sandbox.fs.utime()": ({ sandbox }) => sandbox.fs.utime("text.txt", 0, 0),
  "sandbox.fs.umask()": ({ sandbox }) => sandbox.fs.umask(),
  "sandbox.fs.expandGlob()": ({ sandbox }) => sandbox.fs.expandGlob("*.txt"),
  "FsFile": () => new FsFile(),

  "child.stdin": async ({ sandbox }) => {
    const child = await sandbox.deno.run({ code: "1", stdin: "piped" });
    assert.ok(child.stdin instanceof WritableStream);
    await child.stdin.close();
    await child.status;
  },
  "child.stdout": async ({ sandbox }) => {
    const child = await sandbox.deno.run({
      code: "console.log(1)",
      stdout: "piped",
    });
    assert.equal(await new Response(child.stdout).text(), "1\n");
    await child.status;
  },
  "child.stderr": async ({ sandbox }) => {
    const child = await sandbox.deno.run({
      code: "console.error(2)",
      stderr: "piped",
    });
    assert.equal(await new Response(child.stderr).text(), "2\n");
    await child.status;
  },
  "child.status": async ({ sandbox }) => {
    const child = await sandbox.deno.run({ code: "Deno.exit(3)" });
    assert.deepEqual(await child.status, {
      success: false,
      code: 3,
      signal: null,
      oom: false,
    });
  },
  "child.output()": async ({ sandbox }) =>
    assert.equal(await piped(sandbox, "console.log('o')"), "o\n"),
  "child[Symbol.asyncDispose]()": async ({ sandbox }) => {
    const child = await sandbox.deno.run({ code: RUN_FOREVER });
    await child[Symbol.asyncDispose]();
    assert.equal((await child.status).signal, "SIGTERM");
  },
  "child.pid": async ({ sandbox }) => {
    const child = await sandbox.deno.run({ code: "1" });
    assert.ok(Number.isInteger(child.pid) && child.pid > 0);
    await child.status;
  },
  "child.kill()": async ({ sandbox }) => {
    const child = await sandbox.deno.run({ code: RUN_FOREVER });
    await child.kill("SIGINT");
    assert.equal((await child.status).code, 130);
    await sandbox.fs.writeTextFile("killed.txt", ""); // the run has ended
    const other = await sandbox.deno.run({ code: RUN_FOREVER });
    await assert.rejects(other.kill("SIGUSR1"), AirlockUnsupportedError);
    await other.kill();
  },
  "DenoProcess.httpReady": async ({ sandbox }) => {
    const child = await sandbox.deno.run({ code: "1" });
    try {
      return child.httpReady;
    } finally {
      await child.status;
    }
  },
  "DenoProcess.fetch()": async ({ sandbox }) => {
    const child = await sandbox.deno.run({ code: "1" });
    try {
      return await child.fetch("http://localhost/");
    } finally {
      await child.status;
    }
  },
  "VsCode": () => new VsCode(),
  "new Client()": () => new Client(),
  "Volume.create()": () => Volume.create({}),
  "Volume.get()": () => Volume.get("volume"),
  "Snapshot.create()": () => Snapshot.create("volume", {}),
  "Snapshot.get()": () => Snapshot.get("snapshot"),

  "KillController": () => {
    const controller = new KillController();
    controller.kill("SIGKILL");
    assert.equal(controller.signal.abortedExitCode, 137);
  },
  "KillSignal": () => {
    const controller = new KillController();
    const seen: string[] = [];
    controller.signal.addListener((signal) => seen.push(signal));
    controller.kill("SIGHUP");
    assert.ok(controller.signal instanceof KillSignal);
    assert.deepEqual(seen, ["SIGHUP"]);
    assert.equal(controller.signal.aborted, false);
  },
  "SeekMode": () => assert.equal(SeekMode.End, 2),
  "SandboxSdkError": () =>
    assert.ok(new InvalidMemoryError("x") instanceof SandboxSdkError),
  "ConnectionClosedError": () =>
    assert.ok(new ConnectionClosedError() instanceof SandboxSdkError),
  "ConnectionEstablishmentError": () =>
    assert.ok(
      new ConnectionEstablishmentError(404, "NOT_FOUND", "x") instanceof
        SandboxSdkError,
    ),
  "InvalidMemoryError": ({ create }) =>
    assert.rejects(create({ memory: "1MiB" }), InvalidMemoryError),
  "InvalidTimeoutError": ({ create }) =>
    assert.rejects(create({ timeout: "1h" as "1m" }), InvalidTimeoutError),
  "ApiError": () => assert.ok(new ApiError(500, "E", "x") instanceof Error),
  "RpcError": () => assert.ok(new RpcError(1, "x") instanceof SandboxSdkError),
  "NetworkError": () =>
    assert.ok(new NetworkError("x") instanceof SandboxSdkError),
  "InvalidTokenError": () =>
    assert.ok(new InvalidTokenError("x") instanceof SandboxSdkError),
  "MissingTokenError": () =>
    assert.ok(new MissingTokenError() instanceof SandboxSdkError),
  "SandboxCommandError": () =>
    assert.ok(new SandboxCommandError("x", 1) instanceof Error),
  "SandboxKillError": () =>
    assert.ok(new SandboxKillError(500, "x") instanceof SandboxSdkError),
};

/** airlock's additions, documented beside the table rather than in it. */
const AIRLOCK_ONLY = new Set([
  "sandbox.airlock",
  "child.airlockStatus",
  "AirlockUnsupportedError",
]);

/** The members of a class's prototype, as README writes them. */
function members(object: string, proto: object): string[] {
  const names: string[] = [];
  for (const key of Reflect.ownKeys(proto)) {
    if (key === "constructor") continue;
    if (key === Symbol.asyncDispose) {
      names.push(`${object}[Symbol.asyncDispose]()`);
      continue;
    }
    if (typeof key === "symbol") continue;
    const descriptor = Object.getOwnPropertyDescriptor(proto, key)!;
    names.push(descriptor.get ? `${object}.${key}` : `${object}.${key}()`);
  }
  return names;
}

Deno.test("README's @deno/sandbox table names every member of the module once, and each one has a probe", async () => {
  const table = await surfaceTable();
  assert.deepEqual(
    [...table.keys()].filter((name) => !(name in PROBES)),
    [],
    "rows without a probe",
  );
  assert.deepEqual(
    Object.keys(PROBES).filter((name) => !table.has(name)),
    [],
    "probes of members README does not list",
  );
  // Every member of the module's classes is in the table (so a member
  // added to the code must be documented there).
  const code = [
    ...members("sandbox", Sandbox.prototype),
    "sandbox.sh", // an instance field, as in the SDK
    ...["create", "connect"].map((n) => `Sandbox.${n}()`),
    ...members("sandbox.fs", SandboxFs.prototype),
    ...members("sandbox.deno", LocalDeno.prototype),
    ...members("sandbox.env", LocalEnv.prototype),
    ...members("child", ChildProcess.prototype),
    ...members("DenoProcess", DenoProcess.prototype),
    ...members("repl", DenoRepl.prototype),
  ].filter((name) => !AIRLOCK_ONLY.has(name));
  assert.deepEqual(code.filter((name) => !table.has(name)), []);
  // So is every export (a class by its members when it has rows of its own).
  const byMembers: Record<string, string> = {
    Sandbox: "Sandbox.",
    SandboxFs: "sandbox.fs.",
    ChildProcess: "child.",
    DenoProcess: "DenoProcess.",
    DenoRepl: "repl.",
    Client: "new Client()",
    Volume: "Volume.",
    Snapshot: "Snapshot.",
  };
  const missing = Object.keys(api).filter((name) =>
    !AIRLOCK_ONLY.has(name) && !table.has(name) &&
    ![...table.keys()].some((k) =>
      byMembers[name] && k.startsWith(byMembers[name])
    )
  );
  assert.deepEqual(missing, []);
});

Deno.test("README's @deno/sandbox table is true: supported and differing members work, unsupported ones throw AirlockUnsupportedError naming themselves", async () => {
  const table = await surfaceTable();
  const host = await Deno.makeTempDir({ prefix: "airlock-sdk-surface-" });
  const extra: Sandbox[] = [];
  const sandbox = await Sandbox.create({
    allowNet: ["example.com"],
    secrets: {
      API_KEY: { hosts: ["api.example.com"], value: "sk-real-value" },
    },
    env: { MODE: "test" },
    timeout: "5m",
    memory: "1GiB",
    labels: { suite: "surface" },
    debug: false,
    token: "unused",
    org: "unused",
    apiEndpoint: "https://api.example.com",
    sandboxEndpoint: "https://sandbox.example.com",
  });
  const ctx: Context = {
    sandbox,
    host,
    create: async (options = {}) => {
      const made = await Sandbox.create(options);
      extra.push(made);
      return made;
    },
  };
  const wrong: string[] = [];
  try {
    for (const [name, { status, notes }] of table) {
      let outcome: unknown = null;
      try {
        await PROBES[name]!(ctx);
      } catch (error) {
        outcome = error;
      }
      if (status === "unsupported") {
        const named = outcome instanceof AirlockUnsupportedError &&
          outcome.member === name && notes.length > 0;
        if (!named) {
          wrong.push(`${name} (unsupported): ${String(outcome).slice(0, 300)}`);
        }
      } else if (outcome !== null) {
        wrong.push(`${name} (${status}): ${String(outcome).slice(0, 300)}`);
      }
    }
  } finally {
    await sandbox.kill();
    for (const made of extra) await made.kill().catch(() => {});
    await Deno.remove(host, { recursive: true });
  }
  assert.deepEqual(wrong, []);
});
