/**
 * The attack corpus runner. A case is one escape or exfiltration attempt: a
 * small attacker program, the policy it runs under, and the containment it
 * must meet. The runner groups the cases of a file into as few sandbox runs
 * ("batches") as practical, runs each batch in a real sandbox, and registers
 * one `Deno.test` per case that ALWAYS asserts, besides the case's own
 * expectation:
 *
 * 1. contained: the case's `expect` holds;
 * 2. healthy: once per file, after every case, a trivial program runs
 *    correctly in a fresh sandbox (and a fresh networked one still gets its
 *    request served), and the harness's own canaries are intact (its
 *    environment, a host secret file, host files, a host process, host
 *    listeners that must never see a connection);
 * 3. audited: the attempt shows up in the audit trail as a broker `deny`, an
 *    injector `deny`/`error` (or the echo guard's `secret-echo`), or the case
 *    says `audit: { none: "why no layer can see it" }`;
 * 4. no secret: every batch runs with a canary secret in the harness
 *    environment (also held by the injector as a placeholder's real value
 *    and written to a world-readable host file) and an injected secret
 *    (`${secret:CANARY}` toward a local echo upstream); stdout, stderr,
 *    every file left in /scratch and the audit trail are scanned for both,
 *    raw and encoded (JSON, URL, hex, base64 at every alignment).
 *
 * Modes: "sandbox" (the public API: every wall up), "namespace" (the
 * launcher with Deno's permission wall lowered, `tests/kits/namespace_only.ts`:
 * proves a namespace wall alone), "seccomp" (python3 ctypes inside bwrap
 * under the production seccomp filter, `runtime/seccomp_filter_test.ts`'s
 * method: Deno has no syscall API).
 *
 * Set `ATTACK_DEBUG=1` to print every case's outcome and its audit events.
 *
 * @module
 */

import assert from "node:assert/strict";
import net from "node:net";
import { Sandbox } from "../../mod.ts";
import type {
  AuditEvent,
  EgressEvent,
  PermissionEvent,
  PolicyInput,
  RunResult,
} from "../../mod.ts";
import type { PermissionKind } from "../../harness/run_result.ts";
import { buildSeccompFilter } from "../../runtime/seccomp_filter.ts";
import { SandboxIdentityPool } from "../../runtime/host_identity.ts";
import {
  type NamespaceOnlyOptions,
  runNamespaceOnly,
} from "../kits/namespace_only.ts";
import {
  filesUnder,
  RAW_PROXY_PRELUDE,
  startUpstreams,
  upstreamPolicy,
  type Upstreams,
} from "../kits/upstreams.ts";

// ---------------------------------------------------------------------------
// Canaries

function hex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Name of the harness environment variable holding the env canary. */
export const ENV_CANARY_NAME = "AIRLOCK_ATTACK_CANARY";
/**
 * The harness-environment canary. `+` and `/` make its URL, JSON (`\/`) and
 * base64 forms differ from the raw one, so every encoding is really tested.
 */
export const ENV_CANARY = `atk+env/${hex(16)}`;
/** The injected canary (`${secret:CANARY}` toward echo.attack.test). */
export const INJECTED_CANARY = `atk+inj/${hex(16)}`;
Deno.env.set(ENV_CANARY_NAME, ENV_CANARY);

const CANARIES = [
  { name: "env canary", value: ENV_CANARY, core: ENV_CANARY.slice(8) },
  {
    name: "injected canary",
    value: INJECTED_CANARY,
    core: INJECTED_CANARY.slice(8),
  },
];

const encoder = new TextEncoder();

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** Every form a canary is searched in: raw, escaped, encoded. */
function needlesOf(
  canary: { name: string; value: string; core: string },
): { label: string; bytes: Uint8Array }[] {
  const out: { label: string; text: string }[] = [
    { label: "raw", text: canary.value },
    { label: "random part", text: canary.core },
    { label: "JSON-escaped", text: JSON.stringify(canary.value).slice(1, -1) },
    { label: "JSON-escaped /", text: canary.value.replaceAll("/", "\\/") },
    { label: "URL-encoded", text: encodeURIComponent(canary.value) },
    {
      label: "URL-encoded (lower)",
      text: encodeURIComponent(canary.value).replace(
        /%[0-9A-F]{2}/g,
        (m) => m.toLowerCase(),
      ),
    },
  ];
  const bytes = encoder.encode(canary.value);
  const hexText = Array.from(bytes).map((b) => b.toString(16).padStart(2, "0"))
    .join("");
  out.push({ label: "hex", text: hexText });
  out.push({ label: "HEX", text: hexText.toUpperCase() });
  // base64 of the canary inside any larger text: at each of the three
  // alignments, the characters that depend on the canary alone.
  for (let k = 0; k < 3; k++) {
    const padded = new Uint8Array(k + bytes.length);
    padded.set(bytes, k);
    const b64 = toBase64(padded);
    const start = k === 0 ? 0 : 4;
    const inner = b64.slice(start, b64.length - 4);
    out.push({ label: `base64@${k}`, text: inner });
    out.push({
      label: `base64url@${k}`,
      text: inner.replaceAll("+", "-").replaceAll("/", "_"),
    });
  }
  return out.map((n) => ({
    label: `${canary.name} (${n.label})`,
    bytes: encoder.encode(n.text),
  }));
}

const NEEDLES = CANARIES.flatMap(needlesOf);

function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  if (needle.length === 0) return -1;
  const first = needle[0]!;
  outer: for (let i = haystack.indexOf(first); i !== -1;) {
    if (i + needle.length > haystack.length) return -1;
    for (let j = 1; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) {
        i = haystack.indexOf(first, i + 1);
        continue outer;
      }
    }
    return i;
  }
  return -1;
}

/** Labels of the canary forms found in `bytes`. */
export function findCanaries(bytes: Uint8Array | string): string[] {
  const data = typeof bytes === "string" ? encoder.encode(bytes) : bytes;
  return NEEDLES.filter((n) => indexOfBytes(data, n.bytes) !== -1).map((n) =>
    n.label
  );
}

// ---------------------------------------------------------------------------
// Fixtures: what the attacker aims at on the host

/** A host listener counting the connections it accepts. */
export interface CountingListener {
  /** Its port (TCP) or path (unix). */
  readonly address: string;
  readonly port: number;
  accepted(): number;
  close(): Promise<void>;
}

function countingListener(
  listener: Deno.Listener,
  address: string,
  port: number,
): CountingListener {
  let accepted = 0;
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        accepted++;
        try {
          conn.close();
        } catch { /* closed */ }
      }
    } catch {
      // listener closed
    }
  })();
  return {
    address,
    port,
    accepted: () => accepted,
    async close() {
      try {
        listener.close();
      } catch { /* closed */ }
      await loop;
    },
  };
}

/** Everything a case may aim at, created once per file. */
export interface Fixtures {
  /** Local upstreams (echo.attack.test injects the injected canary). */
  ups: Upstreams;
  /** A host TCP listener on 0.0.0.0 (reachable on every host address). */
  tcp: CountingListener;
  /** A host TCP listener on [::1], or null without IPv6. */
  tcp6: CountingListener | null;
  /** A host unix socket in a world-accessible directory. */
  unix: CountingListener;
  /** A host abstract unix socket (`\0name`), by name without the NUL. */
  abstract: { name: string; accepted(): number };
  /** A host process the attacker tries to signal. */
  victim: { pid: number; alive(): Promise<boolean> };
  /** World-readable host directory holding `secret.txt` (the env canary). */
  hostDir: string;
  /** `${hostDir}/secret.txt`: world-readable, holds the env canary. */
  hostSecretFile: string;
  /**
   * An input directory (world-readable) a sandbox may mount: ok.txt, and
   * self -> . (a link that stays inside).
   */
  input: string;
  /**
   * An input directory full of links out of it, which `Sandbox.create`
   * refuses (only the namespace-only batches mount it, through the raw
   * launcher): ok.txt, passwd -> /etc/passwd, up -> ../secret.txt,
   * upup -> ../../../../../../etc/passwd, etc -> /etc, parent -> ..,
   * scratch -> /scratch, abs-secret -> the host secret file, root -> /
   */
  linkyInput: string;
  /** This machine's own addresses (from the test process). */
  hostIps: string[];
  /** The harness (test) process's pid. */
  harnessPid: number;
  /** A loopback port nobody listens on. */
  closedPort: number;
  /** Upstream names the injected canary may reach (a rule injects it). */
  credentialed: Set<string>;
}

/** A fingerprint of a host file (to prove it was not modified): SHA-256 of
 * small files, identity and times of big ones (the Deno binary). */
async function digest(path: string): Promise<string> {
  try {
    const info = await Deno.stat(path);
    if (info.size > 1024 * 1024) {
      return `${info.ino}:${info.size}:${info.mtime?.getTime()}:${info.ctime?.getTime()}:${info.mode}`;
    }
    const bytes = await Deno.readFile(path);
    const hash = await crypto.subtle.digest("SHA-256", bytes);
    return Array.from(new Uint8Array(hash)).map((b) =>
      b.toString(16).padStart(2, "0")
    ).join("");
  } catch (e) {
    return `unreadable: ${(e as Error).name}`;
  }
}

const WATCHED_HOST_FILES = [
  "/etc/passwd",
  "/etc/shadow",
  "/etc/hostname",
  "/usr/bin/deno",
];

async function createFixtures(): Promise<
  { fx: Fixtures; teardown: () => Promise<void> }
> {
  const ups = await startUpstreams([
    "echo.attack.test",
    "other.attack.test",
    { name: "plain.attack.test", tls: false },
  ]);
  // An API whose error status line quotes the credential it rejected.
  await ups.addRaw("reason.attack.test", (head) => {
    const auth = head.match(/\r\nauthorization: *([^\r]*)/i)?.[1] ?? "";
    return `HTTP/1.1 401 Token ${auth} expired\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno`;
  });
  const tcpListener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const tcpPort = (tcpListener.addr as Deno.NetAddr).port;
  const tcp = countingListener(tcpListener, `0.0.0.0:${tcpPort}`, tcpPort);
  let tcp6: CountingListener | null = null;
  try {
    const l6 = Deno.listen({ hostname: "::1", port: 0 });
    const p6 = (l6.addr as Deno.NetAddr).port;
    tcp6 = countingListener(l6, `[::1]:${p6}`, p6);
  } catch {
    // no IPv6 loopback
  }
  const hostDir = await Deno.makeTempDir({ prefix: "airlock-attack-" });
  // Also when the file's health test (which tears down) is filtered out.
  removeOnExit(hostDir);
  await Deno.chmod(hostDir, 0o755);
  const hostSecretFile = `${hostDir}/secret.txt`;
  await Deno.writeTextFile(hostSecretFile, `secret=${ENV_CANARY}\n`, {
    mode: 0o644,
  });
  await Deno.chmod(hostSecretFile, 0o644);
  const sockDir = `${hostDir}/sock`;
  await Deno.mkdir(sockDir);
  await Deno.chmod(sockDir, 0o777);
  const unixPath = `${sockDir}/harness.sock`;
  const unixListener = Deno.listen({ transport: "unix", path: unixPath });
  await Deno.chmod(unixPath, 0o777);
  const unix = countingListener(unixListener, unixPath, 0);
  const abstractName = `airlock-attack-${hex(6)}`;
  let abstractAccepted = 0;
  const abstractServer = net.createServer((socket) => {
    abstractAccepted++;
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    abstractServer.once("error", reject);
    abstractServer.listen(`\0${abstractName}`, () => resolve());
  });
  const input = `${hostDir}/input`;
  await Deno.mkdir(input);
  await Deno.chmod(input, 0o755);
  await Deno.writeTextFile(`${input}/ok.txt`, "inside", { mode: 0o644 });
  await Deno.chmod(`${input}/ok.txt`, 0o644);
  await Deno.symlink(".", `${input}/self`);
  const linkyInput = `${hostDir}/linky`;
  await Deno.mkdir(linkyInput);
  await Deno.chmod(linkyInput, 0o755);
  await Deno.writeTextFile(`${linkyInput}/ok.txt`, "inside", { mode: 0o644 });
  await Deno.chmod(`${linkyInput}/ok.txt`, 0o644);
  await Deno.symlink("/etc/passwd", `${linkyInput}/passwd`);
  await Deno.symlink("../secret.txt", `${linkyInput}/up`);
  await Deno.symlink("../../../../../../etc/passwd", `${linkyInput}/upup`);
  await Deno.symlink("/etc", `${linkyInput}/etc`);
  await Deno.symlink("..", `${linkyInput}/parent`);
  await Deno.symlink("/scratch", `${linkyInput}/scratch`);
  await Deno.symlink(hostSecretFile, `${linkyInput}/abs-secret`);
  await Deno.symlink("/", `${linkyInput}/root`);
  const victim = new Deno.Command("sleep", {
    args: ["600"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let victimDone = false;
  victim.status.then(() => (victimDone = true));
  const hostIps = [
    ...new Set(
      Deno.networkInterfaces().map((i) => i.address).filter((a) =>
        !a.startsWith("fe80")
      ),
    ),
  ];
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = (closed.addr as Deno.NetAddr).port;
  closed.close();
  const fx: Fixtures = {
    ups,
    tcp,
    tcp6,
    unix,
    abstract: { name: abstractName, accepted: () => abstractAccepted },
    victim: {
      pid: victim.pid,
      alive: async () => {
        await new Promise((r) => setTimeout(r, 20));
        return !victimDone;
      },
    },
    hostDir,
    hostSecretFile,
    input,
    linkyInput,
    hostIps,
    harnessPid: Deno.pid,
    closedPort,
    credentialed: new Set(["echo.attack.test", "reason.attack.test"]),
  };
  return {
    fx,
    async teardown() {
      try {
        victim.kill("SIGKILL");
      } catch { /* gone */ }
      await victim.status;
      await Promise.all([tcp.close(), tcp6?.close(), unix.close()]);
      await new Promise<void>((resolve) =>
        abstractServer.close(() => resolve())
      );
      await ups.close();
      await Deno.remove(hostDir, { recursive: true }).catch(() => {});
    },
  };
}

function removeOnExit(path: string): void {
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(path, { recursive: true });
    } catch {
      // already gone
    }
  });
}

/** Hosts of the default network policy. */
export const HOSTS = {
  /** Injects `Authorization: Bearer <injected canary>`; the placeholder's host. */
  echo: "echo.attack.test",
  /** Allowed, no rules. */
  other: "other.attack.test",
  /** Allowed, plain http (port 80). */
  plain: "plain.attack.test",
  /** Injects too; mapped to a closed port: every request fails upstream. */
  dead: "dead.attack.test",
  /** Injects too; answers 401 with the credential in its reason phrase. */
  reason: "reason.attack.test",
  /** Not allowed (no server either). */
  evil: "evil.attack.test",
} as const;

/** Name of the placeholder variable (its real value: the env canary). */
export const PLACEHOLDER_NAME = "PH_TOKEN";

/** The rule that injects the injected canary as a Bearer token. */
export const INJECT = [{
  transform: [{ headers: { authorization: "Bearer ${secret:CANARY}" } }],
}];

/**
 * The policy every sandbox batch starts from: scratch, the link-laden input,
 * and the network with the injected canary and the placeholder (whose real
 * value is the env canary).
 */
export function basePolicy(fx: Fixtures): PolicyInput {
  const upstream = upstreamPolicy(fx.ups);
  return {
    limits: { timeoutMs: 30_000, outputBytes: 8 * 1024 * 1024 },
    scratch: true,
    inputs: [`${fx.input}:/inputs/dir`],
    network: {
      allow: {
        [HOSTS.echo]: INJECT,
        [HOSTS.other]: [],
        [HOSTS.plain]: [],
        [HOSTS.dead]: INJECT,
        [HOSTS.reason]: INJECT,
      },
    },
    secrets: {
      [PLACEHOLDER_NAME]: {
        hosts: [HOSTS.echo],
        value: `\${env:${ENV_CANARY_NAME}}`,
      },
    },
    upstream: {
      connectTo: [
        ...upstream.connectTo,
        `${HOSTS.dead}:443:127.0.0.1:${fx.closedPort}`,
      ],
      caCerts: upstream.caCerts,
    },
  };
}

// ---------------------------------------------------------------------------
// Cases

/** The groups of the corpus. */
export type Group =
  | "filesystem"
  | "environment"
  | "processes"
  | "network"
  | "proxy-bypass"
  | "credentials"
  | "resources"
  | "kernel"
  | "names"
  | "quota"
  | "echo";

/**
 * Where the attempt is recorded. `broker`: a permission event with decision
 * deny (of one of the kinds, with a matching value); `injector`: an egress
 * event matching the fields, with decision deny or error unless `decisions`
 * says otherwise (the echo guard's `secret-echo` events are "allow": they
 * record the redaction); `none`: no layer can see the attempt (a syscall
 * refused by seccomp, a namespace wall, a kernel limit), with the reason.
 */
export type AuditExpect =
  | {
    broker: PermissionKind | PermissionKind[];
    value?: string | RegExp | null;
    /** Default ["deny"]; "allow" records an attempt another wall stops. */
    decisions?: PermissionEvent["decision"][];
  }
  | {
    injector: {
      kind?: EgressEvent["kind"];
      host?: string | RegExp;
      port?: number;
      path?: string | RegExp;
      rule?: string | RegExp;
      status?: number;
      /** Exactly these injected header names (e.g. [] toward other hosts). */
      injected?: string[];
      /** Exactly these placeholders substituted. */
      placeholders?: string[];
      decisions?: EgressEvent["decision"][];
    };
  }
  | { none: string };

/** One attempt's outcome inside the attacker program. */
export type Outcome =
  | { ok: true; value: unknown }
  | { ok: false; error: string };

/** What a run left behind (a sandbox run, or a lowered-wall run). */
export interface RunView {
  reason: string;
  exitCode: number;
  signal: string | null;
  stdout: string;
  stderr: string;
  audit: readonly AuditEvent[];
  truncated: boolean;
  durationMs: number;
}

/** What `expect` gets. */
export interface CaseView {
  id: string;
  /** The attempt's outcome; undefined when the program died before reporting. */
  outcome: Outcome | undefined;
  run: RunView;
  fx: Fixtures;
  /** Batch extras: the bystander's result, host-side observations. */
  extra: Record<string, unknown>;
}

/** What a case's program builder knows about its own run. */
export interface RunContext {
  /** Host path of the batch sandbox's scratch directory (sandbox mode). */
  scratchHostPath: string | null;
}

/** One attack. */
export interface AttackCase {
  /** Unique id, e.g. "fs-001". */
  id: string;
  /** States the attack. */
  title: string;
  /** The batch (one sandbox run) it belongs to; default "main". */
  batch?: string;
  /**
   * The attacker program: the body of an async function (JavaScript) whose
   * return value is the observation; a throw is the outcome too. In
   * "seccomp" batches: the body of a python function.
   */
  code: string | ((fx: Fixtures, run: RunContext) => string);
  /** The containment, asserted on the outcome. */
  expect: (view: CaseView) => void | Promise<void>;
  /** Where the attempt is recorded (a function when it names fixtures). */
  audit:
    | AuditExpect
    | AuditExpect[]
    | ((fx: Fixtures) => AuditExpect | AuditExpect[]);
}

/** How a batch runs. */
export interface BatchSpec {
  /** Default "sandbox". */
  mode?: "sandbox" | "namespace" | "seccomp";
  /** Sandbox mode: the policy; default {@linkcode basePolicy}. */
  policy?: (fx: Fixtures) => PolicyInput;
  /** Namespace mode: launcher options. */
  namespace?: (fx: Fixtures) => NamespaceOnlyOptions;
  /**
   * Run a bystander sandbox beside the attack: "after" (it waits on stdin
   * during the attack and finishes after it), or "during" (it runs to
   * completion, with a request through the injector, as soon as the attack
   * prints `@@ready`).
   */
  bystander?: "after" | "during";
  /** Per-case timeout inside the program (ms); default 10 s. */
  caseTimeoutMs?: number;
  /** Print `@@ready` after the last case instead of exiting (for "during"). */
  holdAfterCases?: boolean;
}

/** Program text available to every JavaScript case. */
export const PRELUDE = `${RAW_PROXY_PRELUDE}
const __enc = new TextEncoder();
const __dec = new TextDecoder();
const errText = (e) => String(e?.name) + ": " + String(e?.message);
// Connects, optionally writes, reads until close/silence, closes.
async function tcpTry(options, send = null, idleMs = 1500) {
  const conn = await Deno.connect(options);
  try {
    if (send !== null) await conn.write(typeof send === "string" ? __enc.encode(send) : send);
    const reply = send === null ? "" : await readResponse(conn, idleMs);
    return { connected: true, reply };
  } finally {
    try { conn.close(); } catch {}
  }
}
function connectRequest(authority, extra = "") {
  return "CONNECT " + authority + " HTTP/1.1\\r\\nHost: " + authority + "\\r\\n" + extra + "\\r\\n";
}
async function fetchText(url, init = {}) {
  const r = await fetch(url, init);
  return { status: r.status, airlockError: r.headers.get("x-airlock-error"), headers: Object.fromEntries(r.headers), body: await r.text() };
}
`;

const MARK = "@@case ";

function jsProgram(
  cases: readonly { id: string; code: string }[],
  spec: BatchSpec,
): string {
  const timeout = spec.caseTimeoutMs ?? 10_000;
  const body = cases.map((c) =>
    `__cases.push([${JSON.stringify(c.id)}, async () => {\n${c.code}\n}]);`
  ).join("\n");
  return `${PRELUDE}
// An error thrown asynchronously (a node: callback, a stray rejection) must
// not end the batch: it goes to the case waiting for it, if any.
let __onAsyncError = null;
globalThis.addEventListener("error", (e) => { e.preventDefault(); __onAsyncError?.(e.error ?? e); });
globalThis.addEventListener("unhandledrejection", (e) => { e.preventDefault(); __onAsyncError?.(e.reason); });
const __cases = [];
const __cut = (key, value) => {
  if (typeof value === "string" && value.length > 262144) return value.slice(0, 262144) + "...[cut]";
  if (typeof value === "bigint") return String(value);
  if (value instanceof Uint8Array) return "bytes:" + __dec.decode(value.slice(0, 65536));
  return value;
};
${body}
for (const [id, fn] of __cases) {
  let outcome;
  let timer;
  try {
    const value = await Promise.race([
      fn(),
      new Promise((_, reject) => { timer = setTimeout(() => reject(Object.assign(new Error("no outcome after ${timeout} ms"), { name: "CaseTimeout" })), ${timeout}); }),
    ]);
    outcome = { ok: true, value: value === undefined ? null : value };
  } catch (e) {
    outcome = { ok: false, error: errText(e) };
  } finally {
    clearTimeout(timer);
    __onAsyncError = null;
  }
  let line;
  try { line = JSON.stringify({ id, ...outcome }, __cut); } catch (e) { line = JSON.stringify({ id, ok: false, error: "unserialisable: " + errText(e) }); }
  console.log(${JSON.stringify(MARK)} + line);
}
${
    spec.holdAfterCases
      ? `console.log("@@ready"); setInterval(() => {}, 1000);`
      : `console.log("@@done"); Deno.exit(0);`
  }
`;
}

const PY_PRELUDE = `
import ctypes, json, os, sys, errno, mmap, signal
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return [r, ctypes.get_errno()]
def close_if_fd(r):
    if r[0] >= 0:
        os.close(r[0])
    return r
def in_child(fn):
    # Runs fn in a forked child; returns its exit code or -signal.
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(fn() or 0)
        except BaseException:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
def __case(cid, fn):
    try:
        out = {"ok": True, "value": fn()}
    except BaseException as e:
        out = {"ok": False, "error": type(e).__name__ + ": " + str(e)}
    out["id"] = cid
    print(${JSON.stringify(MARK)} + json.dumps(out), flush=True)
`;

function pyProgram(cases: readonly { id: string; code: string }[]): string {
  const defs = cases.map((c, i) => {
    const body = c.code.split("\n").map((l) => `    ${l}`).join("\n");
    return `def __c${i}():\n${body}\n__case(${JSON.stringify(c.id)}, __c${i})`;
  });
  return `${PY_PRELUDE}\n${defs.join("\n")}\nprint("@@done", flush=True)\n`;
}

/** The production filter, loaded by a real kernel around python3. */
let filterFile: Promise<string> | undefined;
const pythonPool = new SandboxIdentityPool();

async function runPython(
  script: string,
  withFilter: boolean,
): Promise<{ code: number; stdout: string; stderr: string }> {
  filterFile ??= (async () => {
    const path = await Deno.makeTempFile({ prefix: "airlock-attack-bpf-" });
    removeOnExit(path);
    await Deno.writeFile(path, buildSeccompFilter());
    await Deno.chmod(path, 0o644);
    return path;
  })();
  const path = await filterFile;
  const identity = pythonPool.acquire();
  try {
    // As the sandbox does it: an unused host uid, then bwrap with every
    // namespace, no capabilities, an empty environment and the filter on
    // fd 3 (only /usr is mounted: python3 and its libraries).
    const out = await new Deno.Command("/bin/sh", {
      args: [
        "-c",
        'exec 3<"$0" && exec "$@"',
        path,
        "/usr/bin/bwrap",
        "--unshare-all",
        "--unshare-user",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--new-session",
        "--die-with-parent",
        "--cap-drop",
        "ALL",
        "--clearenv",
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--symlink",
        "usr/bin",
        "/bin",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        ...(withFilter ? ["--seccomp", "3"] : []),
        "/usr/bin/python3",
        "-I",
        "-c",
        script,
      ],
      ...(identity.hostUid !== null
        ? { uid: identity.hostUid, gid: identity.hostGid ?? identity.hostUid }
        : {}),
      clearEnv: true,
      env: {},
      cwd: "/",
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    identity.release();
  }
}

function parseOutcomes(stdout: string): Map<string, Outcome> {
  const out = new Map<string, Outcome>();
  for (const line of stdout.split("\n")) {
    if (!line.startsWith(MARK)) continue;
    try {
      const parsed = JSON.parse(line.slice(MARK.length)) as
        & { id: string }
        & Outcome;
      const { id, ...rest } = parsed;
      out.set(id, rest as Outcome);
    } catch {
      // a case printed a broken line: its outcome stays missing
    }
  }
  return out;
}

/** Case-line text per id (for attributing a canary to the case that printed it). */
function caseLines(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    if (!line.startsWith(MARK)) continue;
    const match = line.match(/^@@case \{"id":"([^"]+)"/);
    if (match) out.set(match[1]!, line);
  }
  return out;
}

interface BatchResult {
  run: RunView;
  outcomes: Map<string, Outcome>;
  /** Canary findings attributed to one case (its own output line). */
  caseLeaks: Map<string, string[]>;
  /** Canary findings anywhere else (every case of the batch fails). */
  batchLeaks: string[];
  /** Host-side invariants broken during the batch. */
  violations: string[];
  extra: Record<string, unknown>;
}

const decoder = new TextDecoder();

/** What a scratch entry looks like on the host (lstat, by sandbox path). */
export interface HostEntry {
  uid: number | null;
  gid: number | null;
  mode: number | null;
  kind: "file" | "dir" | "symlink" | "other";
  size: number;
  nlink: number | null;
}

/** Every entry under the host scratch directory, keyed `/scratch/...`. */
async function scratchEntries(
  root: string,
): Promise<Record<string, HostEntry>> {
  const out: Record<string, HostEntry> = {};
  const walk = async (dir: string, shown: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const info = await Deno.lstat(`${dir}/${entry.name}`);
      out[`${shown}/${entry.name}`] = {
        uid: info.uid,
        gid: info.gid,
        mode: info.mode,
        kind: info.isSymlink
          ? "symlink"
          : info.isDirectory
          ? "dir"
          : info.isFile
          ? "file"
          : "other",
        size: info.size,
        nlink: info.nlink,
      };
      if (info.isDirectory && Object.keys(out).length < 10_000) {
        await walk(`${dir}/${entry.name}`, `${shown}/${entry.name}`);
      }
    }
  };
  await walk(root, "/scratch").catch(() => {});
  return out;
}

/** A bystander sandbox: must finish correctly whatever the attack did. */
async function startBystander(fx: Fixtures) {
  const sandbox = await Sandbox.create({
    policy: basePolicy(fx),
    secrets: { CANARY: INJECTED_CANARY },
  });
  const child = await sandbox.spawn({
    code: `const input = await new Response(Deno.stdin.readable).text();
      const r = await fetch("https://${HOSTS.other}/bystander");
      console.log("bystander:" + input + ":" + r.status + ":" + (await r.text()).length);`,
    stdin: "piped",
  });
  const output = Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  return {
    async finish(): Promise<{ ok: boolean; detail: string }> {
      try {
        const writer = child.stdin!.getWriter();
        await writer.write(encoder.encode("fine"));
        await writer.close();
      } catch (e) {
        return { ok: false, detail: `stdin: ${e}` };
      }
      const [stdout, stderr] = await output;
      const status = await child.status;
      await sandbox.close();
      const ok = status.reason === "exit" &&
        /^bystander:fine:200:\d+\n$/.test(stdout);
      return {
        ok,
        detail: `${status.reason} ${status.exitCode} ${
          JSON.stringify(stdout)
        } ${stderr.slice(0, 300)}`,
      };
    },
  };
}

/** One quick run: a trivial program and a request through the injector. */
async function quickBystander(
  fx: Fixtures,
): Promise<{ ok: boolean; detail: string }> {
  await using sandbox = await Sandbox.create({
    policy: { ...basePolicy(fx), limits: { timeoutMs: 15_000 } },
    secrets: { CANARY: INJECTED_CANARY },
  });
  const result = await sandbox.run({
    code: `const r = await fetch("https://${HOSTS.other}/bystander-during");
      console.log("bystander:" + (6 * 7) + ":" + r.status);`,
  });
  return {
    ok: result.reason === "exit" && result.stdout === "bystander:42:200\n",
    detail: `${result.reason} ${JSON.stringify(result.stdout)} ${
      result.stderr.slice(0, 300)
    }`,
  };
}

/** The host-side state every batch must leave untouched. */
async function hostState(fx: Fixtures) {
  return {
    tcp: fx.tcp.accepted(),
    tcp6: fx.tcp6?.accepted() ?? 0,
    unix: fx.unix.accepted(),
    abstract: fx.abstract.accepted(),
    victim: await fx.victim.alive(),
    env: Deno.env.get(ENV_CANARY_NAME),
    secretFile: await Deno.readTextFile(fx.hostSecretFile).catch((e) =>
      `ERR ${e}`
    ),
    files: Object.fromEntries(
      await Promise.all(
        WATCHED_HOST_FILES.map(async (f) => [f, await digest(f)] as const),
      ),
    ),
    hostTmp: [...Deno.readDirSync("/tmp")].map((e) => e.name).filter((n) =>
      /pwn|escaped|attack-out/i.test(n)
    ),
  };
}

function compareHost(
  before: Awaited<ReturnType<typeof hostState>>,
  after: Awaited<ReturnType<typeof hostState>>,
): string[] {
  const out: string[] = [];
  if (after.tcp !== before.tcp) {
    out.push(`the host TCP listener accepted ${after.tcp - before.tcp}`);
  }
  if (after.tcp6 !== before.tcp6) {
    out.push(`the host [::1] listener accepted ${after.tcp6 - before.tcp6}`);
  }
  if (after.unix !== before.unix) {
    out.push(`the host unix socket accepted ${after.unix - before.unix}`);
  }
  if (after.abstract !== before.abstract) {
    out.push(
      `the host abstract socket accepted ${after.abstract - before.abstract}`,
    );
  }
  if (before.victim && !after.victim) out.push("the host victim process died");
  if (after.env !== ENV_CANARY) out.push("the harness env canary changed");
  if (after.secretFile !== `secret=${ENV_CANARY}\n`) {
    out.push("the host secret file changed");
  }
  for (const [file, hash] of Object.entries(before.files)) {
    if (after.files[file] !== hash) out.push(`host file ${file} changed`);
  }
  const created = after.hostTmp.filter((n) => !before.hostTmp.includes(n));
  if (created.length > 0) out.push(`new host /tmp entries: ${created}`);
  return out;
}

/** Requests that reached an upstream the injected canary must never reach. */
function upstreamLeaks(fx: Fixtures): string[] {
  const out: string[] = [];
  for (const name of [HOSTS.other, HOSTS.plain]) {
    for (const server of fx.ups.servers(name)) {
      for (const seen of server.seen) {
        const found = findCanaries(JSON.stringify(seen));
        if (found.length > 0) {
          out.push(`${name} received ${found.join(", ")} (${seen.path})`);
        }
      }
    }
  }
  return out;
}

/**
 * The in-sandbox egress bridge's processes (socat: the listener and one per
 * connection it carries to the injector), seen from the host by the
 * sandbox's own uid (the owner of its scratch directory). Null when the
 * sandbox runs as the harness's uid (not root): then they cannot be told
 * apart from other sandboxes'.
 */
function bridgeProcesses(scratchPath: string | null): number | null {
  if (scratchPath === null) return null;
  const uid = Deno.statSync(scratchPath).uid;
  if (uid === Deno.uid()) return null;
  let count = 0;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const status = Deno.readTextFileSync(`/proc/${entry.name}/status`);
      const name = status.match(/^Name:\s*(\S+)/m)?.[1];
      const owner = Number(status.match(/^Uid:\s*(\d+)/m)?.[1]);
      if (name === "socat" && owner === uid) count++;
    } catch {
      // exited while we looked
    }
  }
  return count;
}

async function runBatch(
  name: string,
  spec: BatchSpec,
  cases: readonly AttackCase[],
  fx: Fixtures,
): Promise<BatchResult> {
  const mode = spec.mode ?? "sandbox";
  const batchStarted = performance.now();
  const before = await hostState(fx);
  const leaksBefore = upstreamLeaks(fx).length;
  const build = (context: RunContext) =>
    cases.map((c) => ({
      id: c.id,
      code: typeof c.code === "function" ? c.code(fx, context) : c.code,
    }));
  const extra: Record<string, unknown> = {};
  let run: RunView;
  const scanned: { where: string; bytes: Uint8Array }[] = [];
  if (mode === "sandbox") {
    const bystander = spec.bystander === "after"
      ? await startBystander(fx)
      : null;
    await using sandbox = await Sandbox.create({
      policy: (spec.policy ?? basePolicy)(fx),
      secrets: { CANARY: INJECTED_CANARY },
    });
    extra.scratchPath = sandbox.scratchPath;
    const program = jsProgram(
      build({ scratchHostPath: sandbox.scratchPath }),
      spec,
    );
    let result: RunResult;
    if (spec.bystander === "during") {
      const child = await sandbox.spawn({ code: program });
      const [out, err] = [child.stdout, child.stderr].map((s) => {
        const chunks: Uint8Array[] = [];
        let ready: () => void = () => {};
        const readyP = new Promise<void>((r) => (ready = r));
        const done = (async () => {
          let text = "";
          for await (const chunk of s) {
            chunks.push(chunk);
            text += decoder.decode(chunk, { stream: true });
            if (text.includes("@@ready")) ready();
          }
          ready();
        })();
        return { chunks, readyP, done };
      }) as [
        { chunks: Uint8Array[]; readyP: Promise<void>; done: Promise<void> },
        { chunks: Uint8Array[]; readyP: Promise<void>; done: Promise<void> },
      ];
      await out.readyP;
      extra.bridgeProcesses = bridgeProcesses(sandbox.scratchPath);
      extra.bystander = await quickBystander(fx);
      // The attack has held its resources for the bystander's whole run.
      child.kill();
      const status = await child.status;
      await Promise.all([out.done, err.done]);
      const concat = (chunks: Uint8Array[]) => {
        const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let at = 0;
        for (const c of chunks) {
          all.set(c, at);
          at += c.length;
        }
        return all;
      };
      const stdoutBytes = concat(out.chunks);
      const stderrBytes = concat(err.chunks);
      result = {
        ...status,
        stdout: decoder.decode(stdoutBytes),
        stderr: decoder.decode(stderrBytes),
        stdoutBytes,
        stderrBytes,
      };
    } else {
      result = await sandbox.run({ code: program });
    }
    if (bystander) extra.bystander = await bystander.finish();
    run = result;
    scanned.push({ where: "stderr", bytes: result.stderrBytes });
    scanned.push({
      where: "stdout (outside case lines)",
      bytes: encoder.encode(
        result.stdout.split("\n").filter((l) => !l.startsWith(MARK)).join(
          "\n",
        ),
      ),
    });
    scanned.push({
      where: "audit trail",
      bytes: encoder.encode(JSON.stringify(result.audit)),
    });
    if (sandbox.scratchPath) {
      // How the quota was enforced, and what the scratch cost the host
      // (a loop image's blocks never shrink: the most the run ever used).
      extra.quotaMode = sandbox.quotaMode;
      extra.scratchUsage = await sandbox.scratchUsage();
      extra.scratch = await scratchEntries(sandbox.scratchPath);
      const files = await filesUnder(sandbox.scratchPath).catch(() => []);
      for (const file of files) {
        scanned.push({ where: `scratch file ${file.path}`, bytes: file.bytes });
      }
    }
  } else if (mode === "namespace") {
    const result = await runNamespaceOnly(
      jsProgram(build({ scratchHostPath: null }), spec),
      spec.namespace?.(fx) ?? {},
    );
    run = {
      reason: "exit",
      exitCode: result.code,
      signal: null,
      stdout: result.stdout,
      stderr: result.stderr,
      audit: [],
      truncated: false,
      durationMs: 0,
    };
    scanned.push({ where: "stderr", bytes: encoder.encode(result.stderr) });
    scanned.push({
      where: "stdout (outside case lines)",
      bytes: encoder.encode(
        result.stdout.split("\n").filter((l) => !l.startsWith(MARK)).join(
          "\n",
        ),
      ),
    });
  } else {
    // The probe must be sensitive: without the filter, setns(-1) is EBADF.
    const control = await runPython(
      PY_PRELUDE + `\nprint(json.dumps(call(308, -1, 0)))\n`,
      false,
    );
    extra.control = control.stdout.trim();
    const program = pyProgram(build({ scratchHostPath: null }));
    const result = await runPython(program, true);
    // The same probe without the filter (still in bwrap, no capabilities):
    // shows which refusals only the filter makes.
    const unfiltered = await runPython(program, false);
    extra.unfiltered = Object.fromEntries(parseOutcomes(unfiltered.stdout));
    run = {
      reason: "exit",
      exitCode: result.code,
      signal: null,
      stdout: result.stdout,
      stderr: result.stderr,
      audit: [],
      truncated: false,
      durationMs: 0,
    };
    scanned.push({ where: "stderr", bytes: encoder.encode(result.stderr) });
  }
  const outcomes = parseOutcomes(run.stdout);
  const caseLeaks = new Map<string, string[]>();
  for (const [id, line] of caseLines(run.stdout)) {
    const found = findCanaries(line);
    if (found.length > 0) caseLeaks.set(id, found);
  }
  const batchLeaks = scanned.flatMap(({ where, bytes }) =>
    findCanaries(bytes).map((label) => `${label} in ${where}`)
  );
  const after = await hostState(fx);
  const violations = compareHost(before, after);
  const newLeaks = upstreamLeaks(fx).slice(leaksBefore);
  violations.push(...newLeaks);
  if (mode === "seccomp" && extra.control !== "[-1, 9]") {
    violations.push(
      `the python probe is not sensitive: unfiltered setns(-1) gave ${extra.control}`,
    );
  }
  if (Deno.env.get("ATTACK_DEBUG")) {
    console.log(
      `\n=== batch ${name} (${mode}) reason=${run.reason} exit=${run.exitCode} in ${
        Math.round(performance.now() - batchStarted)
      } ms`,
    );
    for (const c of cases) {
      console.log(c.id, JSON.stringify(outcomes.get(c.id))?.slice(0, 600));
    }
    console.log(
      "audit:",
      JSON.stringify(
        run.audit.map((e) =>
          e.source === "broker"
            ? `B ${e.permission} ${e.value} ${e.decision}`
            : e.source === "injector"
            ? `I ${e.kind} ${e.method} ${e.host}:${e.port} ${e.path} ${e.decision} ${e.rule} ${e.status}`
            : `H ${e.kind}`
        ),
        null,
        1,
      ),
    );
    console.log("stderr:", run.stderr.slice(0, 1500));
    console.log(
      "extra:",
      JSON.stringify({ ...extra, scratch: undefined }).slice(0, 1000),
    );
    console.log("leaks:", batchLeaks, [...caseLeaks], violations);
    if (extra.unfiltered) {
      for (const c of cases) {
        console.log(
          "unfiltered",
          c.id,
          JSON.stringify((extra.unfiltered as Record<string, unknown>)[c.id]),
        );
      }
    }
  }
  return { run, outcomes, caseLeaks, batchLeaks, violations, extra };
}

function matches(
  pattern: string | RegExp | undefined | null,
  value: string | null | undefined,
): boolean {
  if (pattern === undefined) return true;
  if (pattern === null) return value === null;
  if (value === null || value === undefined) return false;
  return typeof pattern === "string" ? pattern === value : pattern.test(value);
}

function describeAudit(audit: readonly AuditEvent[]): string {
  return JSON.stringify(
    audit.map((e) =>
      e.source === "broker"
        ? `broker ${e.permission} ${e.value} ${e.decision}`
        : e.source === "injector"
        ? `injector ${e.kind} ${e.host}:${e.port} ${e.path} ${e.decision} ${e.rule} ${e.status}`
        : `harness ${e.kind}`
    ),
  );
}

/** A stable text key of one audit expectation (RegExps by source). */
function expectationKey(e: AuditExpect): string {
  return JSON.stringify(
    e,
    (_k, v) => v instanceof RegExp ? `/${v.source}/${v.flags}` : v,
  );
}

/** How many audit records match `e` (broker records carry a count). */
function auditMatches(e: AuditExpect, audit: readonly AuditEvent[]): number {
  if ("none" in e) return 0;
  if ("broker" in e) {
    const kinds = Array.isArray(e.broker) ? e.broker : [e.broker];
    const decisions = e.decisions ?? ["deny"];
    return audit.filter((ev): ev is PermissionEvent =>
      ev.source === "broker" && decisions.includes(ev.decision) &&
      kinds.includes(ev.permission) && matches(e.value, ev.value)
    ).reduce((n, ev) => n + ev.count, 0);
  }
  const want = e.injector;
  const decisions = want.decisions ?? ["deny", "error"];
  return audit.filter((ev) =>
    ev.source === "injector" &&
    decisions.includes(ev.decision) &&
    (want.kind === undefined || ev.kind === want.kind) &&
    matches(want.host, ev.host) &&
    (want.port === undefined || ev.port === want.port) &&
    matches(want.path, ev.path) &&
    matches(want.rule, ev.rule) &&
    (want.status === undefined || ev.status === want.status) &&
    (want.injected === undefined ||
      JSON.stringify(ev.injected) === JSON.stringify(want.injected)) &&
    (want.placeholders === undefined ||
      JSON.stringify(ev.placeholders) === JSON.stringify(want.placeholders))
  ).length;
}

/**
 * Asserts the attempt is in the audit trail as the case says. `sharing`
 * counts the cases of the batch with the very same expectation: the trail
 * must hold at least that many matching records (so one record is never
 * claimed by two attempts).
 */
export function assertAudited(
  expectation: AuditExpect | AuditExpect[],
  audit: readonly AuditEvent[],
  mode: BatchSpec["mode"],
  id: string,
  sharing: (e: AuditExpect) => number = () => 1,
): void {
  const list = Array.isArray(expectation) ? expectation : [expectation];
  assert.ok(list.length > 0, `${id}: no audit expectation`);
  for (const e of list) {
    if ("none" in e) {
      assert.ok(
        e.none.length >= 20,
        `${id}: 'audit: none' needs its reason in a sentence`,
      );
      continue;
    }
    assert.ok(
      (mode ?? "sandbox") === "sandbox",
      `${id}: only sandbox runs have an audit trail; say why with 'none'`,
    );
    const needed = sharing(e);
    const found = auditMatches(e, audit);
    assert.ok(
      found >= needed,
      `${id}: ${found} audit record(s) for ${
        expectationKey(e)
      }, ${needed} attempt(s) of the batch claim one, in ${
        describeAudit(audit)
      }`,
    );
  }
}

// ---------------------------------------------------------------------------
// The corpus of one file

/** Options Deno.test gets for every corpus test. */
const TEST_OPTIONS = { sanitizeOps: false, sanitizeResources: false };

/** The cases of one group (one test file). */
export class Corpus {
  readonly group: Group;
  #batches = new Map<string, BatchSpec>([["main", {}]]);
  #cases: AttackCase[] = [];
  #results: Promise<Map<string, BatchResult | Error>> | undefined;
  #fixtures:
    | Promise<{ fx: Fixtures; teardown: () => Promise<void> }>
    | undefined;

  #concurrency: number;

  /**
   * @param group The group (one test file).
   * @param options `concurrency`: batches run at once (default 1).
   */
  #setup: ((fx: Fixtures) => Promise<void>) | undefined;

  constructor(
    group: Group,
    options: {
      concurrency?: number;
      /** Adds group-specific fixtures (e.g. raw upstreams) before any run. */
      setup?: (fx: Fixtures) => Promise<void>;
    } = {},
  ) {
    this.group = group;
    this.#concurrency = options.concurrency ?? 1;
    this.#setup = options.setup;
  }

  /** Declares a batch (one sandbox run). */
  batch(name: string, spec: BatchSpec): this {
    this.#batches.set(name, spec);
    return this;
  }

  /** Adds cases. */
  add(...cases: AttackCase[]): this {
    for (const c of cases) {
      assert.ok(
        !this.#cases.some((x) => x.id === c.id),
        `duplicate case id ${c.id}`,
      );
      assert.ok(
        this.#batches.has(c.batch ?? "main"),
        `${c.id}: unknown batch ${c.batch}`,
      );
      this.#cases.push(c);
    }
    return this;
  }

  /** The cases so far. */
  get cases(): readonly AttackCase[] {
    return this.#cases;
  }

  #fx() {
    this.#fixtures ??= (async () => {
      const created = await createFixtures();
      try {
        await this.#setup?.(created.fx);
      } catch (error) {
        await created.teardown();
        throw error;
      }
      return created;
    })();
    return this.#fixtures;
  }

  #runAll(): Promise<Map<string, BatchResult | Error>> {
    this.#results ??= (async () => {
      const { fx } = await this.#fx();
      const out = new Map<string, BatchResult | Error>();
      const queue = [...this.#batches].filter(([name]) =>
        this.#cases.some((c) => (c.batch ?? "main") === name)
      );
      const worker = async () => {
        for (let next = queue.shift(); next; next = queue.shift()) {
          const [name, spec] = next;
          const cases = this.#cases.filter((c) => (c.batch ?? "main") === name);
          try {
            out.set(name, await runBatch(name, spec, cases, fx));
          } catch (error) {
            out.set(
              name,
              error instanceof Error ? error : new Error(String(error)),
            );
          }
        }
      };
      await Promise.all(
        Array.from({ length: this.#concurrency }, () => worker()),
      );
      return out;
    })();
    return this.#results;
  }

  /** Registers one test per case, then the health check. */
  register(): void {
    for (const c of this.#cases) {
      Deno.test({
        name: `${c.id} [${this.group}] ${c.title}`,
        ...TEST_OPTIONS,
        fn: async () => {
          const results = await this.#runAll();
          const { fx } = await this.#fx();
          const batchName = c.batch ?? "main";
          const spec = this.#batches.get(batchName)!;
          const batch = results.get(batchName);
          assert.ok(batch, `${c.id}: batch ${batchName} did not run`);
          if (batch instanceof Error) throw batch;
          // (4) no secret in any byte the sandbox could see.
          assert.deepEqual(
            batch.caseLeaks.get(c.id) ?? [],
            [],
            `${c.id}: a canary reached the program's output`,
          );
          assert.deepEqual(
            batch.batchLeaks,
            [],
            `${c.id}: a canary reached output of batch ${batchName}`,
          );
          // Host-side walls of the batch.
          assert.deepEqual(
            batch.violations,
            [],
            `${c.id}: batch ${batchName} broke host invariants`,
          );
          // (1) contained.
          const view: CaseView = {
            id: c.id,
            outcome: batch.outcomes.get(c.id),
            run: batch.run,
            fx,
            extra: batch.extra,
          };
          try {
            await c.expect(view);
          } catch (error) {
            if (error instanceof Error) {
              error.message += `\n  outcome: ${
                JSON.stringify(view.outcome)?.slice(0, 2000)
              }\n  run: ${batch.run.reason} ${batch.run.exitCode} stderr: ${
                batch.run.stderr.slice(0, 800)
              }`;
            }
            throw error;
          }
          // (3) audited.
          const auditOf = (x: AttackCase) => {
            const a = typeof x.audit === "function" ? x.audit(fx) : x.audit;
            return Array.isArray(a) ? a : [a];
          };
          const siblings = this.#cases.filter((x) =>
            (x.batch ?? "main") === batchName
          ).flatMap((x) => auditOf(x).map(expectationKey));
          assertAudited(
            auditOf(c),
            batch.run.audit,
            spec.mode,
            c.id,
            (e) => siblings.filter((k) => k === expectationKey(e)).length,
          );
        },
      });
    }
    Deno.test({
      name: `${this.group}: the harness is healthy after the corpus`,
      ...TEST_OPTIONS,
      fn: async () => {
        await this.#runAll();
        const { fx, teardown } = await this.#fx();
        try {
          await assertHealthy(fx);
        } finally {
          await teardown();
        }
      },
    });
  }
}

/** (2) A trivial program still runs correctly, and the canaries are intact. */
async function assertHealthy(fx: Fixtures): Promise<void> {
  {
    await using sandbox = await Sandbox.create();
    const result = await sandbox.run({ code: "console.log(6 * 7);" });
    assert.equal(result.reason, "exit", result.stderr);
    assert.equal(result.stdout, "42\n");
    assert.equal(result.stderr, "");
  }
  const networked = await quickBystander(fx);
  assert.ok(networked.ok, `a fresh networked sandbox: ${networked.detail}`);
  assert.equal(Deno.env.get(ENV_CANARY_NAME), ENV_CANARY);
  assert.equal(
    await Deno.readTextFile(fx.hostSecretFile),
    `secret=${ENV_CANARY}\n`,
  );
  assert.ok(await fx.victim.alive(), "the host victim process is alive");
  assert.equal(fx.tcp.accepted(), 0, "the host TCP listener saw nobody");
  assert.equal(fx.tcp6?.accepted() ?? 0, 0, "the [::1] listener saw nobody");
  assert.equal(fx.unix.accepted(), 0, "the host unix socket saw nobody");
  assert.equal(fx.abstract.accepted(), 0, "the abstract socket saw nobody");
  assert.deepEqual(upstreamLeaks(fx), []);
  // Only the credentialed hosts ever saw a canary.
  for (const seen of fx.ups.allSeen()) {
    if (findCanaries(JSON.stringify(seen)).length === 0) continue;
    assert.ok(
      [...fx.credentialed].some((name) =>
        fx.ups.servers(name).some((s) => s.seen.includes(seen)) ||
        (name === seen.host?.split(":")[0])
      ),
      `a canary reached an upstream: ${seen.host}${seen.path}`,
    );
  }
}

// ---------------------------------------------------------------------------
// Expectation helpers

/** The outcome, which must exist. */
export function outcomeOf(view: CaseView): Outcome {
  assert.ok(view.outcome, `${view.id}: the program reported no outcome`);
  return view.outcome;
}

/** Asserts the attempt threw, with an error matching `pattern`. */
export function assertThrew(view: CaseView, pattern: RegExp): string {
  const outcome = outcomeOf(view);
  assert.equal(
    outcome.ok,
    false,
    `${view.id}: the attempt succeeded: ${
      JSON.stringify(outcome).slice(0, 1500)
    }`,
  );
  const error = (outcome as { error: string }).error;
  assert.match(error, pattern, `${view.id}`);
  return error;
}

/** Asserts the attempt completed and returns its value. */
export function valueOf<T = Record<string, unknown>>(view: CaseView): T {
  const outcome = outcomeOf(view);
  assert.ok(
    outcome.ok,
    `${view.id}: the attempt threw: ${JSON.stringify(outcome)}`,
  );
  return (outcome as { value: T }).value;
}

/** Deno's refusal by the broker, as the program sees it. */
export const NOT_CAPABLE = /^NotCapable: /;

/** Status code at the start of a raw HTTP response. */
export function statusLine(text: string | null | undefined): number | null {
  const match = (text ?? "").match(/^HTTP\/1\.[01] (\d{3})/);
  return match ? Number(match[1]) : null;
}

/** A scratch entry as the host saw it after the batch. */
export function scratchEntry(view: CaseView, path: string): HostEntry {
  const entries = view.extra.scratch as Record<string, HostEntry> | undefined;
  const entry = entries?.[path];
  assert.ok(entry, `${view.id}: ${path} is not in the host scratch directory`);
  return entry;
}

export { MARKER } from "../kits/upstreams.ts";

/** Every request any upstream saw whose path contains `marker`. */
export function seenWith(fx: Fixtures, marker: string) {
  return fx.ups.allSeen().filter((s) =>
    s.path.includes(marker) || s.body.includes(marker)
  );
}
