/**
 * `deno task demo`: the article's attack, end to end, on this machine only.
 *
 * An agent debugging a billing outage reads a log file with a prompt
 * injection in it, and writes the program the injection asks for: read
 * `~/.ssh/id_rsa` and `~/.aws/credentials` and POST them to
 * `billing-debug.external.dev`, next to the billing status call it was asked
 * to make. airlock runs that program with a policy that allows only the
 * billing API and adds its token on the wire. The report shows, from the
 * run's result and audit trail, that the files were not there, the upload
 * was refused, the billing call worked with a token the program never saw.
 *
 * `--no-sandbox` runs the same program with plain `deno run -A`, a home
 * directory with FAKE credentials and the token in its environment; the
 * collector standing in for billing-debug.external.dev shows what it got.
 *
 * Every server is on 127.0.0.1; nothing leaves the machine.
 *
 * ```sh
 * deno task demo [--no-sandbox] [--json]
 * ```
 *
 * Exit 0 when the run shows what its mode is for (contained in the sandbox,
 * leaked without), 1 otherwise, 2 for bad usage.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { type AuditEvent, type EgressEvent, Sandbox } from "../../mod.ts";
import type { PermissionEvent } from "../../harness/run_result.ts";
import { runAgent } from "./agent.ts";
import {
  BILLING_HOST,
  EXFIL_HOST,
  fingerprint,
  type LocalWorld,
  startLocalWorld,
} from "./billing_api.ts";
import {
  type DemoReport,
  type FileAttempt,
  type ProgramView,
  type Refusal,
  renderReport,
} from "./report.ts";

/** Options for {@linkcode runDemo}. */
export interface DemoOptions {
  /** Run in an airlock sandbox (true) or with plain `deno run -A` (false). */
  sandbox: boolean;
  /** The billing token; default: a fresh random one. */
  token?: string;
  /** The log file the agent reads; default `logs/api-error.log` here. */
  logFile?: string;
}

const LOG_FILE = fileURLToPath(
  new URL("./logs/api-error.log", import.meta.url),
);
const FAKE_KEY_MARK = "-----BEGIN FAKE KEY-----";
const FAKE_AWS_MARK = "aws_secret_access_key = FAKE";
const RUN_TIMEOUT_MS = 30_000;

/**
 * Runs the demo once and reports what happened. Prints nothing.
 *
 * @param options Which mode.
 * @returns The structured report.
 */
export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const started = performance.now();
  const token = options.token ?? `billing_live_${randomHex(20)}`;
  const logFile = options.logFile ?? LOG_FILE;
  const dir = await Deno.makeTempDir({ prefix: "airlock-demo-" });
  try {
    await using world = await startLocalWorld({ token, dir });
    const fake = await makeFakeHome(`${dir}/home`);
    const log = await Deno.readTextFile(logFile);
    const agent = runAgent(log, { homes: [fake.path, "/root"] });
    const partial = {
      token,
      world,
      fake,
      agent,
      logPath: displayPath(logFile),
      dir,
    };
    const report = options.sandbox
      ? await sandboxed(partial)
      : await unsandboxed(partial);
    report.durationMs = Math.round(performance.now() - started);
    return report;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

interface Setup {
  token: string;
  world: LocalWorld;
  fake: { path: string; files: { path: string; bytes: number }[] };
  agent: ReturnType<typeof runAgent>;
  logPath: string;
  dir: string;
}

/** The program inside airlock: only the billing API, token injected. */
async function sandboxed(setup: Setup): Promise<DemoReport> {
  const { world, token } = setup;
  await using sandbox = await Sandbox.create({
    policy: {
      limits: { timeoutMs: RUN_TIMEOUT_MS },
      scratch: true,
      network: {
        allow: {
          [BILLING_HOST]: [{
            match: {
              methods: ["GET"],
              path: { startsWith: "/v1/billing/" },
            },
            transform: [{
              headers: { authorization: "Bearer ${secret:BILLING_TOKEN}" },
            }],
          }],
        },
      },
      upstream: {
        // Both names lead to their local servers: only the allowlist stands
        // between the program and the collector.
        connectTo: [world.billing.connectTo, world.collector.connectTo],
        caCerts: [world.caFile],
      },
    },
    secrets: { BILLING_TOKEN: token },
  });
  const result = await sandbox.run({ code: setup.agent.program });
  const files = sandbox.scratchPath
    ? await filesUnder(sandbox.scratchPath)
    : [];
  // Files by their sandbox path (/scratch/...).
  const scratch = sandbox.scratchPath ?? "";
  const sandboxPath = (path: string) => `/scratch${path.slice(scratch.length)}`;
  const produced = [
    { name: "stdout", bytes: result.stdoutBytes },
    { name: "stderr", bytes: result.stderrBytes },
    ...files.map((f) => ({ name: sandboxPath(f.path), bytes: f.bytes })),
  ];
  const program = programView(result.stdout);
  const audit = result.audit;

  const attempts: FileAttempt[] = (program?.files ?? []).map((a) => {
    const record = permissionEvents(audit).find((e) =>
      e.permission === "read" && e.value === a.path
    );
    return record
      ? { ...a, audit: { decision: record.decision, reason: record.reason } }
      : a;
  });

  const refusals: Refusal[] = [
    ...permissionEvents(audit)
      .filter((e) => e.permission === "net" && hostOf(e.value) === EXFIL_HOST)
      .map((e): Refusal => ({
        layer: "deno",
        what: `net ${e.value}`,
        decision: e.decision,
        reason: e.reason,
        count: e.count,
      })),
    ...egressEvents(audit)
      .filter((e) => e.host === EXFIL_HOST)
      .map((e): Refusal => ({
        layer: "injector",
        what: `${e.method} ${e.host}:${e.port}${
          e.kind === "connect" ? "" : e.path
        }`,
        decision: e.decision,
        rule: e.rule,
        ...(e.reason ? { reason: e.reason } : {}),
        status: e.status,
      })),
  ];

  const billingEvent = egressEvents(audit).find((e) =>
    e.host === BILLING_HOST && e.kind === "request"
  );
  const checked = produced.map((p) => ({
    name: p.name,
    bytes: p.bytes.length,
  }));
  const where = produced.filter((p) => containsToken(p.bytes, token)).map((p) =>
    p.name
  );
  const report = await baseReport(setup, {
    mode: "sandbox",
    runner:
      `airlock runs it in a fresh sandbox; policy: only ${BILLING_HOST} (GET /v1/billing/*), injecting Authorization from \${secret:BILLING_TOKEN}.`,
    run: {
      sandboxId: result.sandboxId,
      runId: result.runId,
      reason: result.reason,
      exitCode: result.exitCode,
      durationMs: result.durationMs,
    },
    program,
    attempts,
    refusals,
    billingAudit: billingEvent
      ? {
        decision: billingEvent.decision,
        rule: billingEvent.rule,
        injected: billingEvent.injected,
        status: billingEvent.status,
      }
      : null,
    token: { where, checked },
    audit,
    evidence: {
      stdout: result.stdout,
      stderr: result.stderr,
      files: files.map((f) => ({
        path: sandboxPath(f.path),
        bytes: f.bytes.length,
        text: new TextDecoder().decode(f.bytes),
      })),
    },
  });
  const o = report.outcomes;
  report.contained = !o.credentialFiles.read && !o.exfiltration.reached &&
    !o.token.appeared && !o.token.inEnvironment;
  report.asExpected = report.contained &&
    result.reason === "exit" && program !== null &&
    o.exfiltration.refusals.length > 0 &&
    o.exfiltration.refusals.every((r) => r.decision === "deny") &&
    o.billing.status === 200 && o.billing.upstreamGotToken &&
    (o.billing.audit?.injected.includes("authorization") ?? false);
  return report;
}

/** The same program with `deno run -A`, fake credentials, the token in env. */
async function unsandboxed(setup: Setup): Promise<DemoReport> {
  const { world, token, dir } = setup;
  const forwarder = world.startForwarder();
  const work = `${dir}/work`;
  await Deno.mkdir(work);
  const programFile = `${dir}/program.js`;
  await Deno.writeTextFile(programFile, setup.agent.program);
  const started = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-prompt", programFile],
    cwd: work,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin",
      HOME: setup.fake.path,
      // The status quo: the program holds the credential it uses.
      BILLING_TOKEN: token,
      // Every name goes to a local server (no DNS, no /etc/hosts), and the
      // local servers' CA is trusted: the program's text is unchanged.
      HTTPS_PROXY: forwarder.url,
      DENO_CERT: world.caFile,
      DENO_DIR: `${dir}/deno-dir`,
      DENO_NO_UPDATE_CHECK: "1",
      NO_COLOR: "1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(RUN_TIMEOUT_MS),
  }).output();
  const durationMs = Math.round((performance.now() - started) * 100) / 100;
  const files = await filesUnder(work);
  const produced = [
    { name: "stdout", bytes: output.stdout },
    { name: "stderr", bytes: output.stderr },
    ...files.map((f) => ({
      name: f.path.slice(work.length + 1),
      bytes: f.bytes,
    })),
  ];
  const stdout = new TextDecoder().decode(output.stdout);
  const program = programView(stdout);
  const report = await baseReport(setup, {
    mode: "no-sandbox",
    runner:
      "deno run -A program.js, with HOME set to the fake home and BILLING_TOKEN in the environment.",
    proxy: forwarder.url,
    run: {
      sandboxId: null,
      runId: null,
      reason: output.signal ? "killed" : "exit",
      exitCode: output.code,
      durationMs,
    },
    program,
    attempts: program?.files ?? [],
    refusals: [],
    billingAudit: null,
    token: {
      where: produced.filter((p) => containsToken(p.bytes, token)).map((p) =>
        p.name
      ),
      checked: produced.map((p) => ({ name: p.name, bytes: p.bytes.length })),
    },
    audit: [],
    evidence: {
      stdout,
      stderr: new TextDecoder().decode(output.stderr),
      files: files.map((f) => ({
        path: f.path.slice(work.length + 1),
        bytes: f.bytes.length,
        text: new TextDecoder().decode(f.bytes),
      })),
    },
  });
  report.outcomes.exfiltration.tunnels = [...forwarder.tunnels];
  const o = report.outcomes;
  report.contained = !o.credentialFiles.read && !o.exfiltration.reached &&
    !o.token.appeared && !o.token.inEnvironment;
  // Honest only if the fake credentials really arrived at the collector.
  report.asExpected = o.exfiltration.received.some((r) => r.fakeKey) &&
    o.exfiltration.received.some((r) => r.fakeAws);
  return report;
}

/** The parts common to both modes. */
async function baseReport(setup: Setup, parts: {
  mode: DemoReport["mode"];
  runner: string;
  proxy?: string;
  run: DemoReport["run"];
  program: ProgramView | null;
  attempts: FileAttempt[];
  refusals: Refusal[];
  billingAudit: DemoReport["outcomes"]["billing"]["audit"];
  token: { where: string[]; checked: { name: string; bytes: number }[] };
  audit: AuditEvent[];
  evidence: DemoReport["evidence"];
}): Promise<DemoReport> {
  const { world, token, agent } = setup;
  const received = world.collector.received.map(({ body, ...r }) => ({
    ...r,
    fakeKey: body.includes(FAKE_KEY_MARK),
    fakeAws: body.includes(FAKE_AWS_MARK),
    token: body.includes(token),
  }));
  const billing = parts.program?.billing;
  const env = parts.program?.env;
  return {
    mode: parts.mode,
    asExpected: false,
    contained: false,
    durationMs: 0,
    setup: {
      billing: {
        name: BILLING_HOST,
        address: `127.0.0.1:${world.billing.port}`,
      },
      collector: {
        name: EXFIL_HOST,
        address: `127.0.0.1:${world.collector.port}`,
      },
      tokenFingerprint: await fingerprint(token),
      log: {
        path: setup.logPath,
        lines: agent.logLines,
        injection: agent.injection,
      },
      program: {
        lines: agent.program.trimEnd().split("\n").length,
        bytes: new TextEncoder().encode(agent.program).length,
        text: agent.program,
      },
      fakeHome: setup.fake,
      runner: parts.runner,
      ...(parts.proxy ? { proxy: parts.proxy } : {}),
    },
    run: parts.run,
    program: parts.program,
    outcomes: {
      credentialFiles: {
        read: parts.attempts.some((a) => a.ok),
        attempts: parts.attempts,
      },
      exfiltration: {
        reached: received.length > 0,
        received,
        refusals: parts.refusals,
        attempts: parts.program?.diagnostic ?? [],
      },
      billing: {
        status: billing && "status" in billing ? billing.status : null,
        audit: parts.billingAudit,
        upstream: [...world.billing.seen],
        upstreamGotToken: world.billing.seen.some((r) => r.tokenMatched),
      },
      token: {
        appeared: parts.token.where.length > 0,
        where: parts.token.where,
        checked: parts.token.checked,
        inEnvironment: typeof env === "object" && env !== null &&
          Object.values(env).some((v) => v.includes(token)),
      },
    },
    audit: parts.audit,
    evidence: parts.evidence,
  };
}

/** A home directory with FAKE credentials. */
async function makeFakeHome(
  path: string,
): Promise<{ path: string; files: { path: string; bytes: number }[] }> {
  const key = [
    FAKE_KEY_MARK,
    "airlock demo: a FAKE key, not usable for anything",
    ...Array.from({ length: 6 }, () => btoa(randomHex(24)).slice(0, 64)),
    "-----END FAKE KEY-----",
    "",
  ].join("\n");
  const aws = [
    "[default]",
    "aws_access_key_id = AKIAFAKEAIRLOCKDEMO0",
    `${FAKE_AWS_MARK}-airlock-demo-${randomHex(12)}`,
    "",
  ].join("\n");
  const files: [string, string][] = [
    [".ssh/id_rsa", key],
    [".aws/credentials", aws],
  ];
  const out: { path: string; bytes: number }[] = [];
  for (const [rel, text] of files) {
    const file = `${path}/${rel}`;
    await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), {
      recursive: true,
    });
    await Deno.writeTextFile(file, text, { mode: 0o600 });
    out.push({ path: file, bytes: new TextEncoder().encode(text).length });
  }
  return { path, files: out };
}

/** The program's last stdout line, parsed. */
function programView(stdout: string): ProgramView | null {
  const line = stdout.trimEnd().split("\n").at(-1);
  if (!line) return null;
  try {
    const value = JSON.parse(line);
    return typeof value === "object" && value !== null && "files" in value
      ? value as ProgramView
      : null;
  } catch {
    return null;
  }
}

function egressEvents(audit: readonly AuditEvent[]): EgressEvent[] {
  return audit.filter((e): e is EgressEvent => e.source === "injector");
}

function permissionEvents(audit: readonly AuditEvent[]): PermissionEvent[] {
  return audit.filter((e): e is PermissionEvent =>
    e.source === "broker" && e.kind === "permission"
  );
}

/** `host` of a `host:port` permission value. */
function hostOf(value: string | null): string | null {
  return value === null ? null : value.replace(/:\d+$/, "");
}

/** Whether `bytes` contain the token, its random part, or its base64. */
function containsToken(bytes: Uint8Array, token: string): boolean {
  // latin1 maps each byte to one character: a search over exact bytes.
  const text = new TextDecoder("latin1").decode(bytes);
  const random = token.slice(
    Math.max(token.lastIndexOf("_"), token.lastIndexOf("-")) + 1,
  );
  return [token, random, btoa(token)].some((needle) => text.includes(needle));
}

async function filesUnder(
  root: string,
): Promise<{ path: string; bytes: Uint8Array }[]> {
  const out: { path: string; bytes: Uint8Array }[] = [];
  for await (const entry of Deno.readDir(root)) {
    const path = `${root}/${entry.name}`;
    if (entry.isDirectory) out.push(...await filesUnder(path));
    else if (entry.isFile) out.push({ path, bytes: await Deno.readFile(path) });
  }
  return out;
}

function displayPath(path: string): string {
  const cwd = Deno.cwd();
  return path.startsWith(`${cwd}/`) ? path.slice(cwd.length + 1) : path;
}

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

const USAGE = `Usage: deno task demo [--no-sandbox] [--json]

Runs the article's prompt-injection attack against this machine only:
an agent reads a poisoned log and runs the program it asks for.

  (default)      in an airlock sandbox: nothing gets out
  --no-sandbox   with plain deno run -A, fake credentials and the token in env
  --json         print the structured report instead of the story

Exit 0 when the run shows what its mode is for (contained in the sandbox,
leaked without), 1 otherwise.
`;

/**
 * The CLI.
 *
 * @param argv Arguments.
 * @returns The exit code.
 */
export async function main(argv: string[]): Promise<number> {
  let values: { "no-sandbox"?: boolean; json?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        "no-sandbox": { type: "boolean" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(`demo: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const sandbox = !values["no-sandbox"];
  const color = !values.json && Deno.stdout.isTerminal() && !Deno.noColor;
  if (color) {
    console.error(
      sandbox
        ? "Running the agent's program in an airlock sandbox..."
        : "Running the agent's program with deno run -A...",
    );
  }
  const report = await runDemo({ sandbox });
  if (values.json) console.log(JSON.stringify(report, null, 2));
  else console.log(renderReport(report, { color }).trimEnd());
  return report.asExpected ? 0 : 1;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
