/**
 * Fault injection: the harness keeps its promises when the parts around a
 * sandbox fail. The injector dies mid-transfer, the harness itself is
 * SIGKILLed with sandboxes (one mid-request) running, the scratch quota
 * fills up, policy and CA files are unreadable, bwrap is missing, the
 * permission broker cannot bind, and sandboxes spam the proxy with garbage.
 * In each case the program sees an error rather than a hang, the harness
 * stays up, nothing is left behind, and nothing fails open.
 *
 * Every upstream is a local server on 127.0.0.1 reached through the
 * injector via `upstream.connectTo`.
 */

import assert from "node:assert/strict";
import {
  Injector,
  loadPolicyFile,
  PolicyError,
  type RunStatus,
  Sandbox,
  SandboxSetupError,
} from "../mod.ts";
import { CertificateAuthority } from "../injector/ca.ts";
import { discoverHostTools } from "../runtime/host_tools.ts";
import { pathExists, pollUntil } from "./kits/sandbox_processes.ts";

const MOD_URL = new URL("../mod.ts", import.meta.url).href;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const HOST = "slow.example.test";
/** A secret the injector adds toward HOST; `/ok` answers 200 only with it. */
const TOKEN = "fault-token-0123456789abcdef";
const FOREVER = `console.log("started"); setInterval(() => {}, 1000);`;

// --- helpers ---------------------------------------------------------------

/** A local HTTPS upstream standing in for `slow.example.test`. */
interface SlowUpstream extends AsyncDisposable {
  /** Its real port on 127.0.0.1. */
  readonly port: number;
  /** Host path of its CA certificate (for `upstream.caCerts`). */
  readonly caFile: string;
  /** `slow.example.test:443:127.0.0.1:<port>`. */
  readonly connectTo: string;
  /** `/slow` responses: started, ended by the client going away, completed. */
  readonly streams: { started: number; cancelled: number; completed: number };
  /** The `x-fault-token` header of every `/ok` request. */
  readonly tokens: (string | null)[];
  close(): Promise<void>;
}

/**
 * Starts the upstream. `/slow` streams 1 KiB every 100 ms for up to a minute
 * (a slow download); `/ok` answers `ok` (200) when `x-fault-token` is the
 * injected TOKEN, else 401.
 */
async function startSlowUpstream(): Promise<SlowUpstream> {
  const ca = await CertificateAuthority.create({
    commonName: "airlock faults test CA",
  });
  const dir = await Deno.makeTempDir({ prefix: "airlock-faults-upstream-" });
  const caFile = `${dir}/ca.pem`;
  await Deno.writeTextFile(caFile, ca.certificatePem);
  const leaf = await ca.leafFor(HOST);
  const streams = { started: 0, cancelled: 0, completed: 0 };
  const tokens: (string | null)[] = [];
  const abort = new AbortController();
  let stopping = false;
  const chunk = new TextEncoder().encode("x".repeat(1023) + "\n");
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: leaf.certPem,
    key: leaf.keyPem,
    signal: abort.signal,
    onListen() {},
  }, (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/slow") {
      streams.started++;
      let sent = 0;
      let timer: ReturnType<typeof setTimeout> | undefined;
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(controller) {
            if (stopping || sent >= 600) {
              streams.completed++;
              controller.close();
              return;
            }
            if (sent > 0) {
              await new Promise((r) => (timer = setTimeout(r, 100)));
            }
            sent++;
            controller.enqueue(chunk);
          },
          cancel() {
            clearTimeout(timer);
            streams.cancelled++;
          },
        }),
        { headers: { "content-type": "text/plain" } },
      );
    }
    const token = req.headers.get("x-fault-token");
    tokens.push(token);
    return token === TOKEN
      ? new Response("ok")
      : new Response("missing token", { status: 401 });
  });
  const port = (server.addr as Deno.NetAddr).port;
  const close = async () => {
    stopping = true;
    abort.abort();
    await server.finished;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  return {
    port,
    caFile,
    connectTo: `${HOST}:443:127.0.0.1:${port}`,
    streams,
    tokens,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A policy allowing HOST (with TOKEN injected), routed to `up`. */
function egressPolicy(up: SlowUpstream, limits: Record<string, number> = {}) {
  return {
    limits: { timeoutMs: 30_000, ...limits },
    network: {
      allow: {
        [HOST]: [{
          transform: [{ headers: { "x-fault-token": "${secret:TOKEN}" } }],
        }],
      },
    },
    upstream: { connectTo: [up.connectTo], caCerts: [up.caFile] },
  };
}

/**
 * A program that downloads `/slow`, prints `first-chunk` after the first
 * bytes, and then one JSON line: the status, chunks and bytes read, and the
 * error it caught (or `done` if the body ended normally).
 */
const SLOW_DOWNLOAD = `
const out = { status: null, chunks: 0, bytes: 0, done: false, error: null };
try {
  const response = await fetch("https://${HOST}/slow");
  out.status = response.status;
  const reader = response.body.getReader();
  while (true) {
    const { value, done } = await reader.read();
    if (done) { out.done = true; break; }
    out.chunks++;
    out.bytes += value.length;
    if (out.chunks === 1) console.log("first-chunk");
  }
} catch (e) {
  out.error = String(e?.name) + ": " + String(e?.message);
}
console.log(JSON.stringify(out));
`;

/** A program that fetches `/ok` and prints `{ status, body }` or the error. */
const FETCH_OK = `
try {
  const r = await fetch("https://${HOST}/ok");
  console.log(JSON.stringify({ status: r.status, body: await r.text() }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e?.name) + ": " + String(e?.message) }));
}
`;

/** Host processes (not this one) whose command line mentions `text`. */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      if (cmdline.includes(text)) {
        found.push(`${entry.name}:${cmdline.split("\0")[0]}`);
      }
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/** Bound unix sockets of this network namespace whose path mentions `text`. */
function unixSocketsMentioning(text: string): string[] {
  return Deno.readTextFileSync("/proc/net/unix").split("\n")
    .filter((line) => line.includes(text))
    .map((line) => line.trim().split(/\s+/).at(-1)!);
}

/** Resolves `promise`, or rejects once `ms` have passed (a hang). */
async function within<T>(promise: Promise<T>, ms: number, what: string) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what} did not finish within ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads a byte stream line by line. */
function lineReader(stream: ReadableStream<Uint8Array>) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let done = false;
  return {
    async next(): Promise<string | null> {
      while (true) {
        const at = buffer.indexOf("\n");
        if (at !== -1) {
          const line = buffer.slice(0, at);
          buffer = buffer.slice(at + 1);
          return line;
        }
        if (done) return null;
        const chunk = await reader.read();
        if (chunk.done) done = true;
        else buffer += chunk.value;
      }
    },
    async rest(): Promise<string> {
      while (!done) {
        const chunk = await reader.read();
        if (chunk.done) done = true;
        else buffer += chunk.value;
      }
      const text = buffer;
      buffer = "";
      return text;
    },
  };
}

/** The last stdout line as JSON. */
function lastJson(stdout: string, stderr = ""): Record<string, unknown> {
  const line = stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line);
  } catch {
    assert.fail(`not JSON: ${JSON.stringify(stdout)}; stderr: ${stderr}`);
  }
}

/**
 * Records unhandled rejections and uncaught errors while `body` runs (and
 * `settleMs` after), and returns them; they are prevented from ending the
 * test process so the assertion can name them.
 */
async function catchingUnhandled(
  body: () => Promise<void>,
  settleMs = 500,
): Promise<string[]> {
  const seen: string[] = [];
  const onRejection = (event: PromiseRejectionEvent) => {
    seen.push(`unhandled rejection: ${String(event.reason)}`);
    event.preventDefault();
  };
  const onError = (event: ErrorEvent) => {
    seen.push(`uncaught error: ${String(event.error ?? event.message)}`);
    event.preventDefault();
  };
  globalThis.addEventListener("unhandledrejection", onRejection);
  globalThis.addEventListener("error", onError);
  try {
    await body();
    await new Promise((resolve) => setTimeout(resolve, settleMs));
  } finally {
    globalThis.removeEventListener("unhandledrejection", onRejection);
    globalThis.removeEventListener("error", onError);
  }
  return seen;
}

/** A private parent for workspaces (traversable by the sandbox uids). */
async function privateTmpDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  await Deno.chmod(dir, 0o711);
  return dir;
}

function entriesOf(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name);
}

// --- the injector dies mid-request -------------------------------------------

Deno.test("an injector closed mid-download gives the program a network error (no hang), the harness survives, and a new injector serves the next sandbox", async () => {
  await using up = await startSlowUpstream();
  const injector = await Injector.create();
  const sandbox = await Sandbox.create({
    policy: egressPolicy(up),
    secrets: { TOKEN },
    injector,
  });
  let result: Record<string, unknown> = {};
  let status: RunStatus | undefined;
  let stderr = "";
  const unhandled = await catchingUnhandled(async () => {
    const child = await sandbox.spawn({ code: SLOW_DOWNLOAD });
    const stdout = lineReader(child.stdout);
    const stderrText = new Response(child.stderr).text();
    assert.equal(
      await within(stdout.next(), 30_000, "the first chunk"),
      "first-chunk",
    );
    assert.equal(up.streams.started, 1, "positive control: download running");
    assert.equal(up.streams.completed, 0, "the download is still going");

    await within(injector.close(), 30_000, "injector.close()");

    const rest = await within(stdout.rest(), 30_000, "the program's output");
    status = await within(child.status, 30_000, "the run's status");
    stderr = await stderrText;
    result = lastJson(rest, stderr);
  });

  assert.ok(status);
  assert.equal(status.reason, "exit", `not a clean exit: ${stderr}`);
  assert.equal(status.exitCode, 0, stderr);
  // No hang: the run ended on its own ("exit", not "timeout", while the
  // download had a minute left), and within() bounded each wait. (No
  // elapsed-time assertion: a loaded machine is slower, not wrong.)
  // The program's own report: it got the response, then a network error.
  assert.equal(result.status, 200, JSON.stringify(result));
  assert.equal(result.done, false, `the body ended normally: ${stderr}`);
  assert.ok((result.chunks as number) >= 1, JSON.stringify(result));
  assert.equal(typeof result.error, "string", JSON.stringify(result));
  assert.match(result.error as string, /error|reset|closed|connection/i);
  assert.deepEqual(unhandled, [], "the harness saw unhandled errors");

  // A run on the closed injector fails closed: it never starts.
  await assert.rejects(sandbox.run({ code: FETCH_OK }), /closed injector/);
  await within(sandbox.close(), 30_000, "sandbox.close()");
  assert.equal(sandbox.closed, true);

  // A new injector serves a new sandbox, injection included.
  await using fresh = await Injector.create();
  await using next = await Sandbox.create({
    policy: egressPolicy(up),
    secrets: { TOKEN },
    injector: fresh,
  });
  const ok = await next.run({ code: FETCH_OK });
  assert.equal(ok.reason, "exit", ok.stderr);
  assert.deepEqual(lastJson(ok.stdout, ok.stderr), { status: 200, body: "ok" });
  assert.equal(up.tokens.at(-1), TOKEN);
});

// --- the harness is SIGKILLed ------------------------------------------------

/**
 * A harness with three live sandboxes: one without network, one with
 * network (idle), and one in the middle of a slow download. Prints the
 * three scratch paths as one JSON line once all three are running.
 */
function killedHarnessScript(up: SlowUpstream): string {
  return `
import { Sandbox } from ${JSON.stringify(MOD_URL)};
const limits = { timeoutMs: 600000 };
const network = { allow: [${JSON.stringify(HOST)}] };
const upstream = {
  connectTo: [${JSON.stringify(up.connectTo)}],
  caCerts: [${JSON.stringify(up.caFile)}],
};
const plain = await Sandbox.create({ policy: { scratch: true, limits } });
const idle = await Sandbox.create({ policy: { scratch: true, limits, network, upstream } });
const busy = await Sandbox.create({ policy: { scratch: true, limits, network, upstream } });
const runs = [
  await plain.spawn({ code: ${JSON.stringify(FOREVER)} }),
  await idle.spawn({ code: ${JSON.stringify(FOREVER)} }),
  await busy.spawn({ code: ${JSON.stringify(SLOW_DOWNLOAD)} }),
];
for (const run of runs) {
  const reader = run.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("a sandbox ended early");
    text += value;
  }
}
console.log(JSON.stringify([plain, idle, busy].map((s) => s.scratchPath)));
setInterval(() => {}, 1000);
`;
}

Deno.test("a SIGKILLed harness leaves no sandbox process, workspace or socket behind, with a sandbox mid-request", async () => {
  await using up = await startSlowUpstream();
  const dir = await Deno.makeTempDir({ prefix: "airlock-faults-harness-" });
  const script = `${dir}/harness.ts`;
  await Deno.writeTextFile(script, killedHarnessScript(up));
  const harness = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, script],
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(harness.stderr).text();
  try {
    const line = await within(
      lineReader(harness.stdout).next(),
      60_000,
      "the child harness",
    ).catch(async (error) => {
      harness.kill("SIGKILL");
      throw new Error(`${error.message}; stderr: ${await stderr}`);
    });
    const scratches = JSON.parse(line ?? "null") as string[];
    assert.equal(scratches.length, 3, line ?? "");
    const roots = scratches.map((s) => {
      assert.match(s, /\/airlock-[^/]+\/box\/scratch$/);
      return s.slice(0, -"/box/scratch".length);
    });
    const sockets = [
      `${roots[0]}/box/run-1/broker.sock`,
      `${roots[1]}/box/run-1/broker.sock`,
      `${roots[1]}/box/run-1/egress.sock`,
      `${roots[2]}/box/run-1/broker.sock`,
      `${roots[2]}/box/run-1/egress.sock`,
    ];
    // Positive controls: everything we expect to vanish exists now.
    for (const root of roots) {
      assert.ok(pathExists(root), `workspace ${root} exists`);
      assert.ok(
        processesMentioning(root).some((p) => p.endsWith("bwrap")),
        `bwrap runs for ${root}`,
      );
    }
    for (const socket of sockets) {
      assert.ok(pathExists(socket), `socket ${socket} exists`);
      assert.ok(
        unixSocketsMentioning(socket).length > 0,
        `socket ${socket} is bound`,
      );
    }
    assert.equal(up.streams.started, 1, "the download is in flight");
    assert.equal(up.streams.completed, 0, "the download is in flight");

    harness.kill("SIGKILL");
    assert.equal((await harness.status).signal, "SIGKILL");

    const leftovers = () => [
      ...roots.flatMap((r) =>
        processesMentioning(r).map((p) => `process ${p}`)
      ),
      ...roots.filter(pathExists).map((r) => `directory ${r}`),
      ...sockets.filter(pathExists).map((s) => `socket file ${s}`),
      ...roots.flatMap((r) =>
        unixSocketsMentioning(r).map((s) => `bound socket ${s}`)
      ),
    ];
    const clean = await pollUntil(() => leftovers().length === 0, 30_000);
    assert.ok(clean, `left behind after 30 s: ${leftovers().join(", ")}`);
    // The upstream sees the interrupted download end too.
    assert.ok(
      await pollUntil(() => up.streams.cancelled === 1, 30_000),
      `upstream streams: ${JSON.stringify(up.streams)}`,
    );
  } finally {
    try {
      harness.kill("SIGKILL");
    } catch {
      // already dead
    }
    await harness.status;
    await stderr;
    await harness.stdout.cancel().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

// --- the scratch disk fills up -----------------------------------------------

Deno.test("a full scratch quota stops the writes (ENOSPC, or disk-limit where measured), the harness stays healthy, and the sandbox runs again once files are deleted", async () => {
  await using sandbox = await Sandbox.create({
    policy: { scratch: true, limits: { scratchMb: 1, timeoutMs: 30_000 } },
  });
  const full = await sandbox.run({
    code: `const chunk = new Uint8Array(64 * 1024).fill(7);
      for (let i = 0; ; i++) Deno.writeFileSync("/scratch/f" + i, chunk);`,
  });
  if (sandbox.quotaMode === "walk") {
    assert.ok(
      full.reason === "disk-limit" || full.reason === "file-size",
      `reason ${full.reason}; stderr: ${full.stderr}`,
    );
  } else {
    // A scratch filesystem refuses the write itself: the program sees it.
    assert.equal(full.reason, "exit", full.stderr);
    assert.match(full.stderr, /No space left on device/);
  }
  assert.equal(full.success, false);
  // Stopped by the quota, not its 30 s timeout (the reason says so; no
  // elapsed-time assertion).
  assert.notEqual(full.reason, "timeout");
  const written = await sandbox.fs.readDir("/scratch");
  // The filesystem's own metadata takes a few percent of the quota.
  assert.ok(written.length >= 12, `only ${written.length} files written`);

  // The harness is healthy: another sandbox runs meanwhile.
  await using bystander = await Sandbox.create();
  const other = await bystander.run({ code: `console.log("fine")` });
  assert.equal(other.stdout, "fine\n", other.stderr);

  for (const entry of written) {
    await sandbox.fs.remove(`/scratch/${entry.name}`);
  }
  assert.deepEqual(await sandbox.fs.readDir("/scratch"), []);
  const again = await sandbox.run({
    code: `Deno.writeTextFileSync("/scratch/after", "ok");
      console.log(Deno.readTextFileSync("/scratch/after"));`,
  });
  assert.equal(again.reason, "exit", again.stderr);
  assert.equal(again.stdout, "ok\n");
  assert.equal(await sandbox.fs.readTextFile("/scratch/after"), "ok");
});

// --- unreadable configuration ------------------------------------------------

Deno.test("an unreadable policy file (missing, a directory, garbage bytes) is a PolicyError naming the file, and no sandbox is created", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airlock-faults-policy-" });
  const tmpDir = await privateTmpDir("airlock-faults-ws-");
  try {
    const garbage = `${dir}/garbage.json`;
    await Deno.writeFile(
      garbage,
      new Uint8Array([0xff, 0xfe, 0x00, 0x7b, 0xc3, 0x28, 0x80, 0x22, 0x0a]),
    );
    const binaryJunk = `${dir}/junk.json`;
    await Deno.writeFile(
      binaryJunk,
      crypto.getRandomValues(new Uint8Array(512)).map((b) => b | 0x80),
    );
    const cases: [string, RegExp][] = [
      [`${dir}/missing.json`, /cannot read the file/],
      [dir, /cannot read the file/],
      [garbage, /./],
      [binaryJunk, /./],
    ];
    if (Deno.uid() !== 0) {
      // Root reads anything: mode 000 only means something to other users.
      const locked = `${dir}/locked.json`;
      await Deno.writeTextFile(locked, "{}", { mode: 0o000 });
      cases.push([locked, /cannot read the file/]);
    }
    for (const [path, message] of cases) {
      let policy: unknown = undefined;
      const error = await loadPolicyFile(path).then(
        (p) => {
          policy = p;
          return null;
        },
        (e) => e,
      );
      assert.ok(
        error instanceof PolicyError,
        `${path}: got ${String(error)} and policy ${JSON.stringify(policy)}`,
      );
      assert.ok(error.message.includes(path), `${path}: ${error.message}`);
      assert.match(error.message, message);
      assert.ok(error.issues.length > 0);
    }
    // Nothing was created by any of it.
    assert.deepEqual(entriesOf(tmpDir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(tmpDir, { recursive: true });
  }
});

Deno.test("an unreadable or non-PEM upstream.caCerts file is a PolicyError naming upstream.caCerts.0, and no workspace is left", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airlock-faults-ca-" });
  const tmpDir = await privateTmpDir("airlock-faults-ws-");
  await using injector = await Injector.create();
  try {
    const notPem = `${dir}/not-pem.pem`;
    await Deno.writeTextFile(notPem, "this is not a certificate\n");
    const binary = `${dir}/binary.pem`;
    await Deno.writeFile(binary, new Uint8Array([0xff, 0x00, 0xc3, 0x28]));
    const empty = `${dir}/empty.pem`;
    await Deno.writeTextFile(empty, "");
    for (const file of [`${dir}/missing.pem`, dir, notPem, binary, empty]) {
      const error = await Sandbox.create({
        tmpDir,
        injector,
        policy: {
          network: { allow: [HOST] },
          upstream: { caCerts: [file] },
        },
      }).then(async (sandbox) => {
        await sandbox.close();
        return null;
      }, (e) => e);
      assert.ok(error instanceof PolicyError, `${file}: got ${String(error)}`);
      assert.deepEqual(
        error.issues.map((i) => i.path),
        ["upstream.caCerts.0"],
        error.message,
      );
      assert.ok(error.message.includes(file), error.message);
      assert.deepEqual(entriesOf(tmpDir), [], `${file}: workspace left behind`);
    }
    // The watchdogs of the discarded workspaces exit too.
    assert.ok(
      await pollUntil(() => processesMentioning(tmpDir).length === 0),
      `still running: ${processesMentioning(tmpDir)}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(tmpDir, { recursive: true });
  }
});

Deno.test("a missing bwrap is a SandboxSetupError, the program never runs, and the sandbox closes cleanly", async () => {
  const tools = await discoverHostTools();
  const tmpDir = await privateTmpDir("airlock-faults-ws-");
  try {
    const sandbox = await Sandbox.create({
      tmpDir,
      policy: { scratch: true },
      tools: { ...tools, bwrap: "/nonexistent/bwrap" },
    });
    const scratch = sandbox.scratchPath!;
    const error = await sandbox.run({
      code: `Deno.writeTextFileSync("/scratch/ran", "1"); console.log("ran")`,
    }).then((r) => r, (e) => e);
    assert.ok(
      error instanceof SandboxSetupError,
      `got ${JSON.stringify(error)}`,
    );
    assert.match(error.message, /bwrap/);
    assert.equal(pathExists(`${scratch}/ran`), false, "the program ran");
    assert.equal(sandbox.running, false);
    await within(sandbox.close(), 30_000, "sandbox.close()");
    assert.deepEqual(entriesOf(tmpDir), []);
  } finally {
    await Deno.remove(tmpDir, { recursive: true });
  }
});

/** A workspace parent deep enough that `<root>/box/run-1/*.sock` > 108 bytes. */
async function deepTmpDir(): Promise<{ base: string; deep: string }> {
  const base = await privateTmpDir("airlock-faults-deep-");
  const deep = `${base}/${"d".repeat(60)}/${"e".repeat(40)}`;
  await Deno.mkdir(deep, { recursive: true, mode: 0o711 });
  await Deno.chmod(`${base}/${"d".repeat(60)}`, 0o711);
  await Deno.chmod(deep, 0o711);
  return { base, deep };
}

Deno.test("a workspace too deep for the run sockets (path > 107 bytes) fails closed at create: a clear error, nothing created", async () => {
  const { base, deep } = await deepTmpDir();
  await using up = await startSlowUpstream();
  await using injector = await Injector.create();
  try {
    // Without network only the broker would need a socket; with network the
    // injector's socket too. Either way the sandbox is refused up front.
    for (const withNetwork of [false, true]) {
      const label = withNetwork ? "with network" : "without network";
      const seen: string[] = [];
      const watching = setInterval(
        () => seen.push(...processesMentioning(deep)),
        5,
      );
      try {
        await assert.rejects(
          () =>
            Sandbox.create({
              tmpDir: deep,
              injector,
              secrets: { TOKEN },
              policy: {
                scratch: true,
                ...(withNetwork ? egressPolicy(up) : {}),
              },
            }),
          (error: unknown) =>
            error instanceof SandboxSetupError &&
            /too long for the run's unix sockets/.test(error.message),
          label,
        );
      } finally {
        clearInterval(watching);
      }
      // Only the workspace's watchdog shell may name the path: no sandbox.
      assert.deepEqual(
        seen.filter((cmd) => /bwrap|prlimit|deno|socat/.test(cmd)),
        [],
        `${label}: a sandbox process was started`,
      );
      assert.deepEqual(entriesOf(deep), [], `${label}: workspace left behind`);
    }
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

// --- garbage never stops the harness -----------------------------------------

/** Connections each spammer makes at least before it stops. */
const SPAM_CONNECTIONS = 20;

/**
 * A program that opens connection after connection to the proxy from 4
 * workers and writes garbage: random bytes, smuggling shapes, huge heads,
 * HTTP/2 prefaces, CONNECTs followed by non-TLS bytes, half-open
 * connections, refused hosts. Prints `spamming` first, goes on until its
 * stdin ends and it has made `SPAM_CONNECTIONS` connections (a condition,
 * not a duration: how much a fixed time allows depends on the machine's
 * load), and prints `{ connections, failures }` at the end.
 */
function spamProgram(seed: number): string {
  return `
const enc = new TextEncoder();
let state = ${seed} >>> 0;
const rand = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const randomBytes = (n) => Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
const H = ${JSON.stringify(HOST)};
const payloads = [
  () => randomBytes(1 + Math.floor(rand() * 8192)),
  () => enc.encode("CONNECT " + String.fromCharCode(...randomBytes(40)) + " HTTP/1.1\\r\\n\\r\\n"),
  () => enc.encode("POST http://" + H + "/ HTTP/1.1\\r\\nHost: " + H + "\\r\\nContent-Length: 5\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\nGET /smuggled HTTP/1.1\\r\\n\\r\\n"),
  () => enc.encode("GET http://" + H + "/ HTTP/1.1\\r\\nX-Big: " + "a".repeat(200000) + "\\r\\n\\r\\n"),
  () => enc.encode("GET / HTTP/1.1\\nHost: " + H + "\\n\\0\\r\\n\\r\\n"),
  () => enc.encode("PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n"),
  () => enc.encode("CONNECT " + H + ":443 HTTP/1.1\\r\\nHost: " + H + ":443\\r\\n\\r\\n" + "\\x16\\x03\\x01garbage-not-tls"),
  () => enc.encode("CONNECT " + H + ":443 HTTP/1.1\\r\\nHost: " + H + ":443\\r\\n\\r\\n"),
  () => enc.encode("GET http://" + H + "/ HTTP/1.1\\r\\nHost: " + H + "\\r\\nX-Partial: "),
  () => enc.encode("GET http://" + H + "/ HTTP/1.1\\r\\nHost: " + H + "\\r\\n\\r\\n" + ("GET http://" + H + "/ HTTP/1.1\\r\\nHost: " + H + "\\r\\n\\r\\n").repeat(50)),
  () => enc.encode("CONNECT evil.example:443 HTTP/1.1\\r\\nHost: evil.example:443\\r\\n\\r\\n"),
  () => enc.encode("GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\\r\\nHost: 169.254.169.254\\r\\n\\r\\n"),
  () => enc.encode("GET http://" + H + "/ HTTP/1.1\\r\\nHost: evil.example\\r\\nContent-Length: 1\\r\\nContent-Length: 2\\r\\n\\r\\nxx"),
  () => enc.encode("G\\u00c9T / HTTP/9.9\\r\\n" + "X: y\\r\\n".repeat(5000) + "\\r\\n"),
];
let connections = 0;
let failures = 0;
let stop = false;
(async () => {
  const buf = new Uint8Array(64);
  try { while ((await Deno.stdin.read(buf)) !== null); } catch {}
  stop = true;
})();
async function worker() {
  while (!stop || connections < ${SPAM_CONNECTIONS}) {
    let conn;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port: 3128 });
      connections++;
      const bytes = payloads[Math.floor(rand() * payloads.length)]();
      const at = Math.floor(rand() * bytes.length);
      await conn.write(bytes.subarray(0, at));
      await conn.write(bytes.subarray(at));
      let timer;
      await Promise.race([
        conn.read(new Uint8Array(4096)).catch(() => null),
        new Promise((r) => { timer = setTimeout(r, 20 + Math.floor(rand() * 60)); }),
      ]);
      clearTimeout(timer);
    } catch {
      failures++;
    } finally {
      try { conn?.close(); } catch {}
    }
  }
}
console.log("spamming");
await Promise.all([worker(), worker(), worker(), worker()]);
console.log(JSON.stringify({ connections, failures }));
`;
}

Deno.test("garbage from 5 sandboxes at once never stops the injector: a normal sandbox's fetch succeeds meanwhile and after", async () => {
  await using up = await startSlowUpstream();
  await using injector = await Injector.create();
  const spammers: Sandbox[] = [];
  const unhandled = await catchingUnhandled(async () => {
    try {
      for (let i = 0; i < 5; i++) {
        spammers.push(
          await Sandbox.create({
            // Room for five sandboxes to start on a loaded machine: they
            // spam until the normal fetches are done.
            policy: egressPolicy(up, { timeoutMs: 120_000 }),
            secrets: { TOKEN },
            injector,
          }),
        );
      }
      await using normal = await Sandbox.create({
        policy: egressPolicy(up),
        secrets: { TOKEN },
        injector,
      });
      const runs = await Promise.all(
        spammers.map((s, i) =>
          s.spawn({ code: spamProgram(1000 + i), stdin: "piped" })
        ),
      );
      const outputs = runs.map((run) => lineReader(run.stdout));
      const stderrs = runs.map((run) => new Response(run.stderr).text());
      for (const output of outputs) {
        assert.equal(
          await within(output.next(), 30_000, "a spammer's start"),
          "spamming",
        );
      }
      // While all five spam (they go on until their stdin ends): a normal
      // fetch, twice.
      for (let i = 0; i < 2; i++) {
        const ok = await normal.run({ code: FETCH_OK });
        assert.equal(ok.reason, "exit", ok.stderr);
        assert.deepEqual(lastJson(ok.stdout, ok.stderr), {
          status: 200,
          body: "ok",
        });
      }
      await Promise.all(runs.map((run) => run.stdin!.close()));
      const statuses = await Promise.all(runs.map((run) => run.status));
      for (const [i, status] of statuses.entries()) {
        const stderr = await stderrs[i]!;
        assert.equal(status.reason, "exit", `spammer ${i}: ${stderr}`);
        assert.equal(status.exitCode, 0, `spammer ${i}: ${stderr}`);
        const report = lastJson(await outputs[i]!.rest(), stderr);
        // A spammer stops only after this many connections: an injector
        // that stopped accepting would have left it running to its timeout.
        assert.ok(
          (report.connections as number) >= SPAM_CONNECTIONS,
          `spammer ${i} barely spammed: ${JSON.stringify(report)}`,
        );
      }
      // And after the storm.
      const after = await normal.run({ code: FETCH_OK });
      assert.deepEqual(lastJson(after.stdout, after.stderr), {
        status: 200,
        body: "ok",
      });
      assert.ok(up.tokens.length >= 3);
      assert.ok(
        up.tokens.every((t) => t === TOKEN),
        "every fetch was injected",
      );
    } finally {
      await Promise.all(spammers.map((s) => s.close()));
    }
  });
  assert.deepEqual(unhandled, [], "the harness saw unhandled errors");
});
