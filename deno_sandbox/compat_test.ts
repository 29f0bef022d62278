/**
 * The `@deno/sandbox`-compatible API (deno_sandbox/mod.ts) against real
 * sandboxes. The README examples of `@deno/sandbox@0.13.2` run unchanged
 * (their import swapped for this module; the `Sandbox` they see is
 * `localSandbox(...)`, which adds only the airlock-only `airlock` option:
 * `connectTo` mapping the examples' hosts to local HTTPS upstreams on
 * 127.0.0.1, their CA, and a private `tmpDir` to check cleanup in). Secrets
 * reach only their hosts and never the program; unsupported members throw a
 * clear error naming themselves.
 */

import assert from "node:assert/strict";
import {
  AirlockUnsupportedError,
  Client,
  ConnectionClosedError,
  ConnectionEstablishmentError,
  InvalidMemoryError,
  InvalidTimeoutError,
  KillController,
  Sandbox,
  type SandboxOptions,
  Volume,
} from "./mod.ts";
import {
  assertNoBytes,
  egressEvents,
  filesUnder,
  MARKER,
  startUpstreams,
  type Upstreams,
} from "../tests/kits/upstreams.ts";

/**
 * A workspace parent per test; disposing it (after the test's sandboxes,
 * being declared first) asserts no workspace is left, then removes it.
 */
async function workspaceParent(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "airlock-deno-sdk-test-" });
  // The sandbox's own uid must be able to reach its workspace inside.
  await Deno.chmod(path, 0o711);
  return {
    path,
    async [Symbol.asyncDispose]() {
      try {
        await assertEmpty(path);
      } finally {
        await Deno.remove(path, { recursive: true });
      }
    },
  };
}

async function assertEmpty(dir: string): Promise<void> {
  const left = await Array.fromAsync(Deno.readDir(dir), (e) => e.name);
  assert.deepEqual(left, [], `workspaces left in ${dir}`);
}

/**
 * `Sandbox` as the examples see it: every `create` gets the airlock-only
 * option (upstream mapping and CA, private tmpDir). Everything else is the
 * module's own class.
 */
function localSandbox(
  tmpDir: string,
  ups?: Upstreams,
  created: Sandbox[] = [],
): typeof Sandbox {
  return class LocalSandbox extends Sandbox {
    static override async create(
      options: SandboxOptions = {},
    ): Promise<Sandbox> {
      const sandbox = await Sandbox.create({
        ...options,
        airlock: {
          tmpDir,
          ...(ups
            ? {
              connectTo: ups.connectTo,
              upstreamCaCerts: [ups.ca.certificatePem],
            }
            : {}),
          ...options.airlock,
        },
      });
      created.push(sandbox);
      return sandbox;
    }
  };
}

/** A `console` whose `log` lines the test can read. */
function recorder(): { log(...args: unknown[]): void; lines: unknown[][] } {
  const lines: unknown[][] = [];
  return { log: (...args) => void lines.push(args), lines };
}

function assertUnsupported(error: unknown, member: string): true {
  assert.ok(error instanceof AirlockUnsupportedError, String(error));
  assert.ok(
    error.message.startsWith(
      `${member} is not supported by the local sandbox (airlock): `,
    ),
    error.message,
  );
  assert.ok(error.message.length > member.length + 50, "the reason is given");
  return true;
}

// ---------------------------------------------------------------------------
// README examples, verbatim but for the import (`Sandbox` is a parameter).
// ---------------------------------------------------------------------------

/** README "Secret on the Wire". */
async function readmeSecretOnTheWire(Sandbox: SandboxClass) {
  await using sandbox = await Sandbox.create({
    secrets: {
      OPENAI_API_KEY: {
        hosts: ["api.openai.com"],
        value: "sk-proj-your-real-key",
      },
      ANTHROPIC_API_KEY: {
        hosts: ["api.anthropic.com"],
        value: "sk-ant-your-real-key",
      },
    },
  });
  return await afterSecretExample(sandbox);
}

/** README "Restrict outbound network access". */
async function readmeRestrictOutbound(Sandbox: SandboxClass) {
  // Only allow requests to specific hosts
  await using sandbox = await Sandbox.create({
    allowNet: ["example.com", "*.example.net"],
  });

  // Requests to allowed hosts will work
  await sandbox.sh`curl https://example.com`;

  // Requests to other hosts will be blocked
}

/** README "Evaluate a JS snippet". */
async function readmeEvaluate(Sandbox: SandboxClass, console: Logger) {
  await using sandbox = await Sandbox.create();

  const result = await sandbox.deno.eval(`
  const a = 1;
  const b = 2;
  a + b;
`);
  console.log("result:", result);
}

/** README "Interactive JavaScript REPL". */
async function readmeRepl(Sandbox: SandboxClass, console: Logger) {
  await using sandbox = await Sandbox.create();

  // Start a Deno REPL
  const repl = await sandbox.deno.repl();

  // Execute code interactively, maintaining state
  await repl.eval("const x = 42;");
  await repl.eval("const y = 8;");
  const result = await repl.eval("x + y");
  console.log("result:", result); // 50
}

/** README "Control sandbox timeout", first example. */
async function readmeTimeoutSession(Sandbox: SandboxClass) {
  // Default: "session" - sandbox shuts down when you close/dispose the client
  await using sandbox = await Sandbox.create({ timeout: "session" });
  return sandbox.id;
}

/** README "Control sandbox timeout", second example. */
async function readmeTimeoutDuration(Sandbox: SandboxClass) {
  // Duration-based: keep sandbox alive for a specific time period
  // Useful when you want the sandbox to persist after the script exits
  const sandbox = await Sandbox.create({ timeout: "5m" }); // 5 minutes
  const id = sandbox.id;
  // Close the *connection* to the sandbox; the sandbox keeps running
  await sandbox.close();

  // Later, reconnect to the same sandbox using its ID
  const reconnected = await Sandbox.connect(id);
  await reconnected.sh`echo 'Still alive!'`;

  // You can still forcibly terminate it before its timeout expires
  await reconnected.kill();
  // At this point, the sandbox is no longer reconnectable
}

/** README "Configure sandbox memory", both examples. */
async function readmeMemory1GiB(Sandbox: SandboxClass) {
  // Create a sandbox with 1GiB of memory
  await using sandbox = await Sandbox.create({ memory: "1GiB" });
  return sandbox.airlock.policy.limits.memoryMb;
}
async function readmeMemory4GiB(
  Sandbox: SandboxClass,
  console: Logger,
) {
  // Create a sandbox with 4GiB of memory for memory-intensive workloads
  await using sandbox = await Sandbox.create({ memory: "4GiB" });

  // Check available memory
  const memInfo = await sandbox.deno.eval<{ total: number }>(
    "Deno.systemMemoryInfo()",
  );
  console.log("Total memory:", memInfo.total);
}

/** README "Upload local files or directories". */
async function readmeUpload(Sandbox: SandboxClass) {
  await using sandbox = await Sandbox.create();

  // Upload a single file to a specific path in the sandbox
  await sandbox.fs.upload("./README.md", "./readme-copy.md");

  // Upload a local directory tree into the sandbox current directory
  await sandbox.fs.upload("./my-project", ".");
  return [
    await sandbox.fs.readTextFile("readme-copy.md"),
    await sandbox.fs.readTextFile("/scratch/my-project/src/main.ts"),
  ];
}

/** README "Set environment variables". */
async function readmeSetEnv(Sandbox: SandboxClass, console: Logger) {
  await using sandbox = await Sandbox.create();

  // Set environment variables
  await sandbox.env.set("API_KEY", "secret-key-123");
  await sandbox.env.set("NODE_ENV", "production");

  // Use them in a script
  const apiKey = await sandbox.sh`echo $API_KEY`.text();
  console.log("API_KEY:", apiKey.trim());
}

/** README "Compatibility note on `await using`". */
async function readmeTryFinally(Sandbox: SandboxClass) {
  const sandbox = await Sandbox.create();
  try {
    // ... use sandbox ...
  } finally {
    await sandbox.close();
  }
  return sandbox;
}

type Logger = { log(...args: unknown[]): void };
type SandboxClass = typeof Sandbox;

// ---------------------------------------------------------------------------

/** What the program does after the README's secret example: see everything. */
const SEE_EVERYTHING = `import { attempt } from "./lib.ts";
import process from "node:process";
const seen = {};
await attempt(seen, "OPENAI_API_KEY", () => Deno.env.get("OPENAI_API_KEY"));
await attempt(seen, "ANTHROPIC_API_KEY", () => Deno.env.get("ANTHROPIC_API_KEY"));
await attempt(seen, "env.toObject", () => Deno.env.toObject());
await attempt(seen, "process.env", () => ({ ...process.env }));
for (const name of ["HOME", "PATH", "USER", "HTTP_PROXY", "HTTPS_PROXY", "SSL_CERT_FILE", "DENO_DIR"]) {
  await attempt(seen, "env." + name, () => Deno.env.get(name));
}
for (const file of ["/proc/self/environ", "/proc/1/environ", "/proc/self/cmdline", "/proc/1/cmdline", "/etc/airlock/ca.pem", "/airlock/main.js"]) {
  await attempt(seen, file, () => Deno.readTextFile(file));
}
await attempt(seen, "ls /", () => Array.fromAsync(Deno.readDir("/"), (e) => e.name));
await attempt(seen, "ls .", () => Array.fromAsync(Deno.readDir("."), (e) => e.name));
await attempt(seen, "args", () => Deno.args);
const send = async (host) => {
  const r = await fetch("https://" + host + "/v1/echo", {
    headers: {
      authorization: "Bearer " + Deno.env.get("OPENAI_API_KEY"),
      "x-api-key": Deno.env.get("ANTHROPIC_API_KEY"),
    },
  });
  return { status: r.status, body: await r.text() };
};
await attempt(seen, "api.openai.com", () => send("api.openai.com"));
await attempt(seen, "api.anthropic.com", () => send("api.anthropic.com"));
await Deno.writeTextFile("seen.json", JSON.stringify(seen));
console.log(JSON.stringify(seen));
`;
const LIB = `export async function attempt(out, name, f) {
  try { out[name] = await f(); } catch (e) { out[name] = String(e?.name) + ": " + String(e?.message); }
}
`;

async function afterSecretExample(sandbox: Sandbox) {
  await sandbox.fs.writeTextFile("lib.ts", LIB);
  await sandbox.fs.writeTextFile("main.ts", SEE_EVERYTHING);
  const child = await sandbox.deno.run({
    entrypoint: "main.ts",
    scriptArgs: ["one"],
    stdout: "piped",
    stderr: "piped",
  });
  const output = await child.output();
  const run = await child.airlockStatus;
  const files = [];
  for await (const entry of sandbox.fs.readDir("/scratch")) {
    files.push([entry.name, await sandbox.fs.readFile(entry.name)] as const);
  }
  return {
    output,
    run,
    files,
    scratch: await filesUnder(sandbox.airlock.scratchPath!),
    trail: JSON.stringify(sandbox.airlock.auditTrail),
    policy: JSON.stringify(sandbox.airlock.policy),
  };
}

Deno.test("README 'Secret on the Wire': each secret reaches only its own host; the program sees placeholders and never the value", async () => {
  await using parent = await workspaceParent();
  const dir = parent.path;
  await using ups = await startUpstreams([
    "api.openai.com",
    "api.anthropic.com",
  ]);
  const got = await readmeSecretOnTheWire(localSandbox(dir, ups));
  const { output, run, files, scratch, trail, policy } = got;
  // The policy names the value by reference only.
  assert.match(policy, /"value":"<redacted>"/);
  assert.equal(output.status.success, true, output.stderrText ?? "");
  assert.deepEqual(output.status, {
    success: true,
    code: 0,
    signal: null,
    oom: false,
  });
  const seen = JSON.parse(output.stdoutText!) as Record<string, unknown>;
  const openai = String(seen.OPENAI_API_KEY);
  const anthropic = String(seen.ANTHROPIC_API_KEY);
  assert.match(openai, /^airlock-placeholder-OPENAI_API_KEY-[0-9a-f]{32}$/);
  assert.match(
    anthropic,
    /^airlock-placeholder-ANTHROPIC_API_KEY-[0-9a-f]{32}$/,
  );
  assert.deepEqual(seen.args, ["one"]);
  // Listing the environment shows the sandbox's own (placeholders, no
  // value): the secrets are checked absent from every byte below.
  const listed = seen["env.toObject"] as Record<string, string>;
  assert.equal(listed.OPENAI_API_KEY, openai);
  assert.equal(listed.ANTHROPIC_API_KEY, anthropic);
  assert.match(
    String(seen["/proc/1/environ"]),
    /^(NotCapable|NotFound|PermissionDenied)/,
  );

  // On the wire: the real value toward its own host only, over TLS.
  const toOpenai = ups.get("api.openai.com").seen[0];
  const toAnthropic = ups.get("api.anthropic.com").seen[0];
  assert.ok(toOpenai && toAnthropic, "both upstreams were reached");
  assert.equal(
    ups.get("api.openai.com").header(0, "authorization"),
    "Bearer sk-proj-your-real-key",
  );
  assert.equal(ups.get("api.openai.com").header(0, "x-api-key"), anthropic);
  assert.equal(
    ups.get("api.anthropic.com").header(0, "authorization"),
    `Bearer ${openai}`,
  );
  assert.equal(
    ups.get("api.anthropic.com").header(0, "x-api-key"),
    "sk-ant-your-real-key",
  );
  // The echoes came back redacted.
  const echoed = JSON.parse(
    (seen["api.openai.com"] as { body: string }).body,
  ) as { headers: [string, string][] };
  assert.deepEqual(
    echoed.headers.filter(([n]) => n === "authorization"),
    [["authorization", `Bearer ${MARKER}`]],
  );

  // Nowhere the program could write: stdout, stderr, its files, the audit.
  for (const secret of ["sk-proj-your-real-key", "sk-ant-your-real-key"]) {
    assertNoBytes(output.stdout!, secret, "stdout");
    assertNoBytes(output.stderr!, secret, "stderr");
    for (const [name, bytes] of files) assertNoBytes(bytes, secret, name);
    for (const file of scratch) assertNoBytes(file.bytes, secret, file.path);
    assert.ok(!trail.includes(secret), "audit trail");
    assert.ok(!policy.includes(secret), "policy");
  }
  assert.deepEqual(files.map(([name]) => name).sort(), [
    "lib.ts",
    "main.ts",
    "seen.json",
  ]);
  const requests = egressEvents(run.audit).filter((e) => e.kind === "request");
  assert.deepEqual(
    requests.map((e) => [e.host, e.placeholders]).sort(),
    [["api.anthropic.com", ["ANTHROPIC_API_KEY"]], [
      "api.openai.com",
      ["OPENAI_API_KEY"],
    ]],
  );
  // `await using` disposed the sandbox: no workspace is left.
  await assertEmpty(dir);
});

Deno.test("allowNet with secrets: write a file, run it, read its output; other hosts are refused; the secret's host is reachable without being listed", async () => {
  await using parent = await workspaceParent();
  const dir = parent.path;
  await using ups = await startUpstreams([
    "example.com",
    "api.example.net",
    "api.openai.com",
    "other.example.org",
  ]);
  const Local = localSandbox(dir, ups);
  const real = "sk-proj-" + crypto.randomUUID();
  {
    await using sandbox = await Local.create({
      allowNet: ["example.com", "*.example.net"],
      secrets: { OPENAI_API_KEY: { hosts: ["api.openai.com"], value: real } },
      env: { MODE: "test" },
    });
    await sandbox.fs.mkdir("src/lib", { recursive: true });
    await sandbox.fs.writeTextFile(
      "src/lib/get.ts",
      `export async function get(url: string): Promise<string> {
        try {
          const r = await fetch(url, { headers: { authorization: "Bearer " + Deno.env.get("OPENAI_API_KEY") } });
          return r.status + " " + (r.headers.get("x-airlock-error") ?? "");
        } catch (e) { return (e as Error).name; }
      }`,
    );
    await sandbox.fs.writeTextFile(
      "src/main.ts",
      `import { get } from "./lib/get.ts";
      console.log(JSON.stringify({
        mode: Deno.env.get("MODE"),
        example: await get("https://example.com/"),
        net: await get("https://api.example.net/"),
        openai: await get("https://api.openai.com/v1/models"),
        other: await get("https://other.example.org/"),
        port: await get("https://example.com:8443/"),
      }));`,
    );
    const child = await sandbox.deno.run({
      entrypoint: "/scratch/src/main.ts",
      stdout: "piped",
      stderr: "piped",
    });
    const { status, stdoutText, stderrText } = await child.output();
    assert.equal(status.code, 0, stderrText ?? "");
    const got = JSON.parse(stdoutText!);
    assert.deepEqual(got, {
      mode: "test",
      example: "200 ",
      net: "200 ",
      openai: "200 ",
      other: "NotCapable",
      port: "NotCapable",
    });
    assert.equal(
      ups.get("api.openai.com").header(0, "authorization"),
      `Bearer ${real}`,
    );
    assert.match(
      ups.get("example.com").header(0, "authorization")!,
      /^Bearer airlock-placeholder-OPENAI_API_KEY-/,
    );
    assert.equal(ups.get("other.example.org").seen.length, 0);
    assert.ok(!stdoutText!.includes(real) && !stderrText!.includes(real));
    const placeholder = await sandbox.deno.eval<string>(
      `Deno.env.get("OPENAI_API_KEY")`,
    );
    assert.match(placeholder, /^airlock-placeholder-OPENAI_API_KEY-/);
    assert.deepEqual(await sandbox.env.toObject(), {
      MODE: "test",
      OPENAI_API_KEY: placeholder,
    });
    assert.equal(await sandbox.env.get("MODE"), "test");
    assert.equal(await sandbox.env.get("HOME"), undefined);
  }
  await assertEmpty(dir);
});

Deno.test("allowNet patterns map onto the allow list; an IP literal opens its own address, but loopback stays blocked", async () => {
  await using parent = await workspaceParent();
  const dir = parent.path;
  await using ups = await startUpstreams([{ name: "loopback", tls: false }]);
  const port = ups.get("loopback").port;
  const allowNet = [
    "example.com:8443",
    "*.example.net",
    "203.0.113.110",
    "[2001:db8::1]:443",
    `127.0.0.1:${port}`,
  ];
  {
    await using sandbox = await localSandbox(dir).create({ allowNet });
    assert.deepEqual(sandbox.airlock.networkPolicy, {
      allow: allowNet,
      subnets: {
        allow: ["203.0.113.110/32", "2001:db8::1/128", "127.0.0.1/32"],
      },
    });
    const child = await sandbox.deno.run({
      code: `const r = await fetch("http://127.0.0.1:${port}/");
        console.log(r.status, r.headers.get("x-airlock-error"));`,
      stdout: "piped",
      stderr: "piped",
    });
    const { stdoutText, stderrText } = await child.output();
    assert.equal(stdoutText, "403 blocked-address\n", stderrText ?? "");
    assert.equal(ups.get("loopback").seen.length, 0, "never dialled");
  }
  const none = await localSandbox(dir).create({ allowNet: [] });
  assert.equal(none.airlock.networkPolicy, "deny-all");
  await none.close();
  const all = await localSandbox(dir).create();
  assert.equal(all.airlock.networkPolicy, "allow-all");
  await all.close();
  await assertEmpty(dir);
});

Deno.test("README 'Restrict outbound network access': creation works, the sh line throws the unsupported error", async () => {
  await using parent = await workspaceParent();
  const dir = parent.path;
  await assert.rejects(
    readmeRestrictOutbound(localSandbox(dir)),
    (e) => assertUnsupported(e, "sandbox.sh"),
  );
  await assertEmpty(dir);
});

Deno.test("README 'Evaluate a JS snippet' and 'Interactive JavaScript REPL' print 3 and 50", async () => {
  await using parent = await workspaceParent();
  const dir = parent.path;
  const Local = localSandbox(dir);
  const evaluate = recorder();
  await readmeEvaluate(Local, evaluate);
  assert.deepEqual(evaluate.lines, [["result:", 3]]);
  const repl = recorder();
  await readmeRepl(Local, repl);
  assert.deepEqual(repl.lines, [["result:", 50]]);
  await assertEmpty(dir);
});

Deno.test("eval and repl: structured values, errors, TypeScript, calls, printed output kept apart from answers", async () => {
  await using parent = await workspaceParent();
  const dir = parent.path;
  await using sandbox = await localSandbox(dir).create({ allowNet: [] });
  const value = await sandbox.deno.eval(
    `const n: number = 2; ({ m: new Map([[1, new Set([n])]]), d: new Date(0), b: 10n, u: new Uint8Array([1, 2]), x: undefined, nan: NaN, nested: [JSON.parse('{"__proto__": {"polluted": 1}}')] })`,
  );
  assert.deepEqual(value, {
    m: new Map([[1, new Set([2])]]),
    d: new Date(0),
    b: 10n,
    u: new Uint8Array([1, 2]),
    x: undefined,
    nan: NaN,
    nested: [Object.defineProperty({}, "__proto__", {
      value: { polluted: 1 },
      enumerable: true,
      writable: true,
      configurable: true,
    })],
  });
  const nested = (value as { nested: object[] }).nested[0]!;
  assert.equal(Object.getPrototypeOf(nested), Object.prototype);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(await sandbox.deno.eval("Promise.resolve(7)"), 7);
  await assert.rejects(sandbox.deno.eval("nope + 1"), (e) => {
    assert.ok(e instanceof ReferenceError);
    assert.match(e.message, /nope is not defined/);
    return true;
  });
  await using repl = await sandbox.deno.repl({
    stdout: "piped",
    stderr: "piped",
  });
  await repl.eval("function add(a: number, b: number) { return a + b; }");
  assert.equal(await repl.call("add", 1, 2), 3);
  assert.equal(await repl.call("(a, b) => a * b", 6, 7), 42);
  await repl.eval(
    `console.log("printed" + "\\x1e marker-like"); Deno.stdout.writeSync(new TextEncoder().encode("no newline"))`,
  );
  assert.deepEqual(await repl.eval("[1, 'two', null]"), [1, "two", null]);
  await assert.rejects(repl.eval("() => 1"), /could not be cloned/);
  await repl.close();
  assert.equal((await repl.status).success, true);
  const out = await new Response(repl.stdout).text();
  assert.equal(out, "printed\x1e marker-like\nno newline");
  await sandbox.close();
  await assertEmpty(dir);
});

Deno.test("deno.run: abort and kill report the SDK's status; scriptArgs, stdin, inline code with relative imports, spawn('deno', ['run', ...])", async () => {
  await using parent = await workspaceParent();
  const dir = parent.path;
  await using sandbox = await localSandbox(dir).create({ allowNet: [] });
  // d.ts example "Create a Deno process with a 3s timeout".
  const runtime = await sandbox.deno.run({
    code: "setTimeout(() => console.log('done'), 10_000)",
    signal: AbortSignal.timeout(3000),
  });
  const { status } = await runtime.output();
  assert.equal(status.signal, "SIGTERM");
  assert.deepEqual(status, {
    success: false,
    code: 143,
    signal: "SIGTERM",
    oom: false,
  });

  const forever = await sandbox.deno.run({
    code: "setInterval(() => {}, 1000)",
  });
  await assert.rejects(
    forever.kill("SIGUSR1"),
    (e) => assertUnsupported(e, 'kill("SIGUSR1")'),
  );
  await forever.kill("SIGKILL");
  assert.deepEqual(await forever.status, {
    success: false,
    code: 137,
    signal: "SIGKILL",
    oom: false,
  });

  await sandbox.fs.writeTextFile(
    "greet.ts",
    "export const hi = (n: string) => 'hi ' + n;",
  );
  const inline = await sandbox.deno.run({
    code: `import { hi } from "./greet.ts";
      const input = await new Response(Deno.stdin.readable).text();
      console.log(hi(input), Deno.args.join(","));
      Deno.exit(3);`,
    scriptArgs: ["a", "b"],
    stdin: "piped",
    stdout: "piped",
  });
  const writer = inline.stdin!.getWriter();
  await writer.write(new TextEncoder().encode("there"));
  await writer.close();
  const result = await inline.output();
  assert.equal(result.stdoutText, "hi there a,b\n");
  assert.equal(result.stderr, null, "stderr was not piped");
  assert.deepEqual(result.status, {
    success: false,
    code: 3,
    signal: null,
    oom: false,
  });

  await sandbox.fs.writeTextFile("cli.ts", "console.log(Deno.args.join(' '))");
  const spawned = await sandbox.spawn("deno", {
    args: ["run", "-A", "--config", "deno.json", "cli.ts", "--flag", "x"],
    stdout: "piped",
  });
  assert.equal((await spawned.output()).stdoutText, "--flag x\n");
  const evaluated = await sandbox.spawn("deno", {
    args: ["eval", "console.log(6 * 7)"],
    stdout: "piped",
  });
  assert.equal((await evaluated.output()).stdoutText, "42\n");
});

Deno.test("README 'Control sandbox timeout': session ends at dispose; a duration sandbox outlives close(), reconnects, dies at kill() (sh is unsupported)", async () => {
  await using parent = await workspaceParent();
  const dir = parent.path;
  const created: Sandbox[] = [];
  const Local = localSandbox(dir, undefined, created);
  const id = await readmeTimeoutSession(Local);
  await assert.rejects(Sandbox.connect(id), ConnectionEstablishmentError);
  await assertEmpty(dir);

  await assert.rejects(
    readmeTimeoutDuration(Local),
    (e) => assertUnsupported(e, "sandbox.sh"),
  );
  const [, primary] = created;
  assert.ok(primary);
  await assert.rejects(
    primary.deno.eval("1"),
    (e) => e instanceof ConnectionClosedError,
  );
  // Still alive after close(): reconnect, use it, then kill it.
  const again = await Sandbox.connect(primary.id);
  assert.equal(await again.deno.eval("1 + 1"), 2);
  await again.kill();
  await again.closed;
  await assert.rejects(
    Sandbox.connect(primary.id),
    ConnectionEstablishmentError,
  );
  await assertEmpty(dir);
});

Deno.test("timeout: the sandbox is destroyed at its deadline, runs included; extendTimeout moves it", async () => {
  await using parent = await workspaceParent();
  const dir = parent.path;
  const sandbox = await localSandbox(dir).create({
    timeout: "2s",
    allowNet: [],
  });
  const later = await sandbox.extendTimeout("3s");
  assert.ok(Math.abs(later.getTime() - Date.now() - 3_000) < 500);
  const child = await sandbox.deno.run({ code: "setInterval(() => {}, 1000)" });
  await sandbox.close(); // detaches only
  const status = await child.status;
  assert.deepEqual(status, {
    success: false,
    code: 137,
    signal: "SIGKILL",
    oom: false,
  });
  // Whichever came first: the run's own wall clock or the sandbox's end.
  assert.ok(["timeout", "killed"].includes((await child.airlockStatus).reason));
  await assert.rejects(
    Sandbox.connect(sandbox.id),
    ConnectionEstablishmentError,
  );
  // The files go once the destruction finishes (polled, not slept on: a
  // loaded machine takes longer).
  for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
    if ((await Array.fromAsync(Deno.readDir(dir))).length === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await assertEmpty(dir);
  await assert.rejects(
    localSandbox(dir).create({ timeout: "soon" as "5m" }),
    InvalidTimeoutError,
  );
});

Deno.test("README 'Configure sandbox memory': 1GiB becomes memoryMb 1024; systemMemoryInfo answers (system information is allowed by default); out-of-range sizes throw", async () => {
  await using parent = await workspaceParent();
  const dir = parent.path;
  const Local = localSandbox(dir);
  assert.equal(await readmeMemory1GiB(Local), 1024);
  const logged = recorder();
  await readmeMemory4GiB(Local, logged);
  const [label, total] = logged.lines[0] ?? [];
  assert.equal(label, "Total memory:");
  assert.ok(typeof total === "number" && total > 0, String(total));
  await assert.rejects(Local.create({ memory: "512MiB" }), InvalidMemoryError);
  await assert.rejects(
    Local.create({ memory: "1TB" as "1GB" }),
    InvalidMemoryError,
  );
  await assertEmpty(dir);
});

Deno.test("README 'Upload local files or directories' copies a file and a tree under /scratch", async () => {
  await using parent = await workspaceParent();
  const dir = parent.path;
  const project = await Deno.makeTempDir({ prefix: "airlock-deno-sdk-cwd-" });
  await Deno.writeTextFile(`${project}/README.md`, "# readme\n");
  await Deno.mkdir(`${project}/my-project/src`, { recursive: true });
  await Deno.writeTextFile(`${project}/my-project/src/main.ts`, "main");
  const cwd = Deno.cwd();
  Deno.chdir(project);
  try {
    assert.deepEqual(await readmeUpload(localSandbox(dir)), [
      "# readme\n",
      "main",
    ]);
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(project, { recursive: true });
  }
  await assertEmpty(dir);
});

Deno.test("sandbox.fs: SDK shapes on /scratch; no path outside it, no symlink followed", async () => {
  await using parent = await workspaceParent();
  const dir = parent.path;
  await using sandbox = await localSandbox(dir).create({ allowNet: [] });
  const fs = sandbox.fs;
  const data = new Uint8Array([1, 2, 3]);
  await fs.writeFile("data1.bin", data);
  await assert.rejects(
    fs.writeFile("data2.bin", data, { create: false }),
    Deno.errors.NotFound,
  );
  await fs.writeFile("data3.bin", data, { mode: 0o777 });
  await fs.writeFile("data1.bin", data, { append: true });
  await assert.rejects(
    fs.writeFile("data3.bin", data, { createNew: true }),
    Deno.errors.AlreadyExists,
  );
  assert.deepEqual(
    await fs.readFile("/scratch/data1.bin"),
    new Uint8Array([1, 2, 3, 1, 2, 3]),
  );
  await fs.writeTextFile("t.txt", ReadableStream.from(["a", "b"]));
  assert.equal(await fs.readTextFile(new URL("file:///scratch/t.txt")), "ab");
  await fs.mkdir("nested/directories", { recursive: true });
  await assert.rejects(fs.mkdir("nested"), Deno.errors.AlreadyExists);
  await fs.rename("t.txt", "nested/moved.txt");
  await fs.copyFile("nested/moved.txt", "copy.txt");
  await fs.truncate("copy.txt", 1);
  assert.equal(await fs.readTextFile("copy.txt"), "a");
  const info = await fs.stat("data1.bin");
  assert.equal(info.isFile, true);
  assert.equal(info.size, 6);
  assert.ok(info.mtime instanceof Date);
  assert.deepEqual(
    (await Array.fromAsync(fs.readDir("/scratch"), (e) => e.name)).sort(),
    ["copy.txt", "data1.bin", "data3.bin", "nested"],
  );
  assert.deepEqual(
    await Array.fromAsync(
      fs.walk(".", { includeDirs: false, exts: [".txt"] }),
      (e) => e.path,
    ),
    ["copy.txt", "nested/moved.txt"],
  );
  assert.equal(await fs.realPath("nested/../copy.txt"), "/scratch/copy.txt");
  const temp = await fs.makeTempDir({ prefix: "my_temp" });
  assert.match(temp, /^\/scratch\/\.tmp\/my_temp[0-9a-f]{8}$/);
  await fs.remove("nested", { recursive: true });
  await assert.rejects(
    fs.readTextFile("/etc/passwd"),
    /only paths under \/scratch/,
  );
  await assert.rejects(fs.readTextFile("../../etc/passwd"), /leaves \/scratch/);
  // A path climbing above / is refused, never clamped back into /scratch
  // (clamping would name a file the caller never wrote down).
  await assert.rejects(fs.realPath("/../scratch/copy.txt"), /climbs above/);
  await assert.rejects(Array.fromAsync(fs.walk("/../scratch")), /climbs above/);
  await assert.rejects(
    sandbox.deno.run({ entrypoint: "/../scratch/copy.txt" }),
    /only files under \/scratch/,
  );
  // A symlink left in the sandbox's files is never followed by the harness
  // (planted from the host: Deno's --allow-write=/scratch cannot make one).
  await Deno.symlink("/etc/passwd", `${sandbox.airlock.scratchPath}/link.txt`);
  await assert.rejects(fs.readTextFile("link.txt"), /symlink/);
  assert.equal((await fs.lstat("link.txt")).isSymlink, true);
  await assert.rejects(
    sandbox.deno.run({ entrypoint: "link.txt" }),
    /symlink/,
  );
  const download = await Deno.makeTempDir({ prefix: "airlock-deno-sdk-dl-" });
  try {
    await fs.mkdir("out/sub", { recursive: true });
    await fs.writeTextFile("out/sub/r.txt", "result");
    await fs.download("out", download);
    assert.equal(
      await Deno.readTextFile(`${download}/out/sub/r.txt`),
      "result",
    );
  } finally {
    await Deno.remove(download, { recursive: true });
  }
});

Deno.test("unsupported members throw an AirlockUnsupportedError naming the member and the reason", async () => {
  await using parent = await workspaceParent();
  const dir = parent.path;
  const Local = localSandbox(dir);
  for (
    const [member, options] of [
      ["Sandbox.create({ region })", { region: "ams" }],
      ["Sandbox.create({ volumes })", { volumes: { "/data": "v" } }],
      ["Sandbox.create({ root })", { root: "snapshot" }],
      ["Sandbox.create({ port })", { port: 8080 }],
      ["Sandbox.create({ ssh: true })", { ssh: true }],
    ] as const
  ) {
    await assert.rejects(
      Local.create(options as SandboxOptions),
      (e) => assertUnsupported(e, member),
    );
  }
  assert.throws(
    () => new Client(),
    (e) => assertUnsupported(e, "new Client()"),
  );
  await assert.rejects(
    Volume.create({}),
    (e) => assertUnsupported(e, "Volume.create()"),
  );

  await using sandbox = await Local.create({ allowNet: [] });
  assert.throws(
    () => sandbox.sh`ls -lh /`,
    (e) => assertUnsupported(e, "sandbox.sh"),
  );
  const rejected: [Promise<unknown>, string][] = [
    [sandbox.spawn("cat", { args: ["big.txt"] }), 'sandbox.spawn("cat")'],
    [
      sandbox.spawn("deno", { args: ["repl"] }),
      'sandbox.spawn("deno", { args: ["repl"] })',
    ],
    [sandbox.fetch("https://example.com"), "sandbox.fetch()"],
    [sandbox.exposeHttp({ port: 3000 }), "sandbox.exposeHttp()"],
    [sandbox.exposeSsh(), "sandbox.exposeSsh()"],
    [sandbox.exposeVscode(), "sandbox.exposeVscode()"],
    [sandbox.deploy("app"), "sandbox.deploy()"],
    [sandbox.deno.deploy("app"), "sandbox.deno.deploy()"],
    [sandbox.env.set("A", "b"), "sandbox.env.set()"],
    [sandbox.env.delete("A"), "sandbox.env.delete()"],
    [
      sandbox.deno.run({ entrypoint: "main.ts", watch: true }),
      "sandbox.deno.run({ watch })",
    ],
    [
      sandbox.deno.run({ code: "1", env: { A: "b" } }),
      "sandbox.deno.run({ env })",
    ],
    [sandbox.deno.run({ code: "1", cwd: "/tmp" }), "sandbox.deno.run({ cwd })"],
    [
      sandbox.deno.repl({ stdin: "piped" }),
      'sandbox.deno.repl({ stdin: "piped" })',
    ],
    [sandbox.fs.open("x"), "sandbox.fs.open()"],
    [sandbox.fs.symlink("a", "b"), "sandbox.fs.symlink()"],
    [sandbox.fs.chmod("a", 0o755), "sandbox.fs.chmod()"],
    [
      sandbox.extendTimeout("session" as "5m"),
      'sandbox.extendTimeout("session")',
    ],
  ];
  for (const [promise, member] of rejected) {
    await assert.rejects(promise, (e) => assertUnsupported(e, member));
  }
  const child = await sandbox.deno.run({ code: "1" });
  assert.throws(
    () => child.httpReady,
    (e) => assertUnsupported(e, "DenoProcess.httpReady"),
  );
  await assert.rejects(
    child.fetch("http://x/"),
    (e) => assertUnsupported(e, "DenoProcess.fetch()"),
  );
  await child.status;
  // README "Set environment variables": the first line already throws.
  await assert.rejects(
    readmeSetEnv(Local, recorder()),
    (e) => assertUnsupported(e, "sandbox.env.set()"),
  );
  // The SDK's KillController exists (for code that imports it).
  const controller = new KillController();
  controller.kill();
  assert.equal(controller.signal.aborted, true);
  assert.equal(controller.signal.abortedExitCode, 143);
});

Deno.test("await using and close() leave no workspace; a closed client refuses every call", async () => {
  await using parent = await workspaceParent();
  const dir = parent.path;
  const Local = localSandbox(dir);
  let root: string;
  {
    await using sandbox = await Local.create({ allowNet: [] });
    root = sandbox.airlock.scratchPath!;
    await sandbox.fs.writeTextFile("x.txt", "x");
    const entries = await Array.fromAsync(Deno.readDir(dir));
    assert.equal(entries.length, 1, "positive control: a workspace exists");
  }
  await assert.rejects(Deno.stat(root), Deno.errors.NotFound);
  await assertEmpty(dir);
  const sandbox = await readmeTryFinally(Local);
  await sandbox.closed;
  await assertEmpty(dir);
  await assert.rejects(sandbox.fs.readTextFile("x.txt"), ConnectionClosedError);
  await assert.rejects(sandbox.deno.run({ code: "1" }), ConnectionClosedError);
});
