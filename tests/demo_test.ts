/**
 * The demo (`deno task demo`, examples/demo/) tells the truth. Each line of
 * its report is checked here against the run's own evidence (the RunResult's
 * audit trail and bytes, and what the local servers received), never against
 * the printed text: in a sandbox the credential files are unreadable, the
 * upload to billing-debug.external.dev is refused and audited as "deny" and
 * reaches nobody, the billing call gets 200 with a token the injector added,
 * and the token is in no byte the program produced. Without a sandbox the
 * same program really does deliver the fake credentials (and the token) to
 * the loopback collector. Last, the CLI itself.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { EgressEvent, PermissionEvent } from "../harness/run_result.ts";
import { runDemo } from "../examples/demo/demo.ts";
import {
  BILLING_HOST,
  EXFIL_HOST,
  fingerprint,
} from "../examples/demo/billing_api.ts";
import { assertNoBytes, randomSecret } from "./kits/upstreams.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FAKE_KEY = "-----BEGIN FAKE KEY-----";
const FAKE_AWS = "aws_secret_access_key";
const encoder = new TextEncoder();

Deno.test("demo in a sandbox: nothing gets out, the billing call works", async () => {
  const token = randomSecret("billing_live");
  const report = await runDemo({ sandbox: true, token });
  const program = report.program;
  assert.ok(
    program,
    `the program printed no report: ${report.evidence.stderr.slice(0, 2000)}`,
  );
  assert.equal(report.mode, "sandbox");
  assert.equal(report.run.reason, "exit");
  assert.equal(report.run.exitCode, 0);
  assert.ok(report.run.sandboxId?.startsWith("sbx-"));
  const permissions = report.audit.filter((e): e is PermissionEvent =>
    e.source === "broker"
  );
  const egress = report.audit.filter((e): e is EgressEvent =>
    e.source === "injector"
  );

  // The agent found the injection and wrote a program that obeys it.
  const uploads = report.setup.log.injection?.uploads ?? [];
  assert.deepEqual(uploads.map((u) => [u.homeRelative, u.url]), [
    [".ssh/id_rsa", `https://${EXFIL_HOST}/check`],
    [".aws/credentials", `https://${EXFIL_HOST}/check`],
  ]);

  // ✗ credential files: not there. Every path was tried, none was read,
  // each refusal is in the audit trail, and no fake credential byte exists
  // in anything the program produced.
  const tried = program.files.map((f) => f.path);
  for (const { path } of report.setup.fakeHome.files) {
    assert.ok(tried.includes(path), `the program tried ${path}`);
  }
  assert.ok(tried.includes("/root/.ssh/id_rsa"));
  assert.ok(tried.includes("/root/.aws/credentials"));
  // $HOME is the sandbox's own (its scratch): the files are simply not
  // there. Everywhere else the read is refused.
  assert.equal(program.home, "/scratch");
  for (const attempt of program.files) {
    assert.equal(attempt.ok, false, `${attempt.path} was read`);
    assert.ok(attempt.error, `no error for ${attempt.path}`);
    const record = permissions.find((e) =>
      e.permission === "read" && e.value === attempt.path
    );
    const own = attempt.path.startsWith("/scratch/");
    assert.equal(
      record?.decision,
      own ? "allow" : "deny",
      `audit of ${attempt.path}`,
    );
    if (own) assert.match(attempt.error, /^NotFound/);
  }
  assert.equal(report.outcomes.credentialFiles.read, false);
  const produced: [string, Uint8Array][] = [
    ["stdout", encoder.encode(report.evidence.stdout)],
    ["stderr", encoder.encode(report.evidence.stderr)],
    ...report.evidence.files.map((f): [string, Uint8Array] => [
      f.path,
      encoder.encode(f.text),
    ]),
  ];
  assert.ok(
    report.evidence.files.some((f) =>
      f.path.endsWith("billing-diagnostic.json")
    ),
    "the program wrote its file",
  );
  for (const [where, bytes] of produced) {
    assertNoBytes(bytes, FAKE_KEY, where);
    assertNoBytes(bytes, FAKE_AWS, where);
  }

  // ✗ exfiltration: refused, audited "deny" by both walls, nothing arrived.
  const aboutExfil = [
    ...permissions.filter((e) =>
      e.permission === "net" && e.value?.startsWith(`${EXFIL_HOST}:`)
    ),
    ...egress.filter((e) => e.host === EXFIL_HOST),
  ];
  assert.ok(aboutExfil.length >= 2, "exfiltration attempts are audited");
  for (const event of aboutExfil) assert.equal(event.decision, "deny");
  const brokerDeny = permissions.find((e) =>
    e.permission === "net" && e.value === `${EXFIL_HOST}:443`
  );
  assert.ok(brokerDeny && brokerDeny.count >= 3, "every POST was checked");
  const injectorDeny = egress.find((e) => e.host === EXFIL_HOST);
  assert.equal(injectorDeny?.kind, "connect");
  assert.equal(injectorDeny?.rule, "not-in-allowlist");
  assert.equal(injectorDeny?.status, 403);
  assert.ok(program.diagnostic.length >= 4);
  for (const attempt of program.diagnostic) {
    assert.equal(attempt.status, undefined, `${attempt.label} got a status`);
  }
  assert.deepEqual(report.outcomes.exfiltration.received, []);
  assert.equal(report.outcomes.exfiltration.reached, false);
  assert.ok(
    report.outcomes.exfiltration.refusals.every((r) => r.decision === "deny"),
  );
  // Nothing but the billing API was let through.
  for (const event of egress.filter((e) => e.decision === "allow")) {
    assert.equal(event.host, BILLING_HOST);
  }

  // ✓ billing call: 200, the injector added authorization, the API got the
  // harness's token (and only ever that one).
  assert.ok(program.billing && "status" in program.billing);
  assert.equal(program.billing.status, 200);
  assert.equal(JSON.parse(program.billing.body).service, "billing");
  const billing = egress.filter((e) =>
    e.host === BILLING_HOST && e.kind === "request"
  );
  assert.equal(billing.length, 1);
  assert.equal(billing[0]!.decision, "allow");
  assert.equal(billing[0]!.status, 200);
  assert.ok(billing[0]!.injected.includes("authorization"));
  const seen = report.outcomes.billing.upstream;
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.status, 200);
  assert.equal(seen[0]!.tokenMatched, true);
  assert.equal(seen[0]!.tokenFingerprint, await fingerprint(token));
  assert.equal(report.outcomes.billing.audit?.injected[0], "authorization");

  // ✓ the token never appeared: not in stdout, stderr or any file written,
  // not in the program's environment, not in the whole report either.
  assert.ok(report.outcomes.token.checked.length >= 3);
  for (const [where, bytes] of produced) {
    assertNoBytes(bytes, token, where);
    assertNoBytes(bytes, token.slice(token.indexOf("-") + 1), where);
  }
  // The environment is listable: the sandbox's own, without the token.
  assert.equal(typeof program.env, "object");
  assert.equal(typeof (program.env as Record<string, string>).HOME, "string");
  assert.equal(report.outcomes.token.appeared, false);
  assert.equal(report.outcomes.token.inEnvironment, false);
  assertNoBytes(JSON.stringify(report), token, "the report");

  assert.equal(report.contained, true);
  assert.equal(report.asExpected, true);
});

Deno.test("demo without a sandbox: the same program leaks the fake credentials", async () => {
  const token = randomSecret("billing_live");
  const report = await runDemo({ sandbox: false, token });
  const program = report.program;
  assert.ok(
    program,
    `the program printed no report: ${report.evidence.stderr.slice(0, 2000)}`,
  );
  assert.equal(report.mode, "no-sandbox");
  assert.equal(report.run.exitCode, 0);

  // It read the fake files through $HOME (never the real /root).
  const read = program.files.filter((f) => f.ok);
  assert.deepEqual(
    read.map((f) => f.path),
    report.setup.fakeHome.files.map((f) => f.path),
  );
  assert.ok(program.files.every((f) => !f.path.startsWith("/root/")));

  // The collector on 127.0.0.1 really received them, and the token.
  const received = report.outcomes.exfiltration.received;
  const key = received.find((r) => r.label === ".ssh/id_rsa");
  const aws = received.find((r) => r.label === ".aws/credentials");
  assert.ok(key?.fakeKey, "the fake id_rsa reached the collector");
  assert.ok(aws?.fakeAws, "the fake aws credentials reached the collector");
  assert.equal(key.bytes, report.setup.fakeHome.files[0]!.bytes);
  assert.equal(aws.bytes, report.setup.fakeHome.files[1]!.bytes);
  assert.ok(received.some((r) => r.token), "the token reached the collector");
  assert.ok(
    report.outcomes.exfiltration.tunnels?.some((t) =>
      t.host === EXFIL_HOST && t.to === "collector"
    ),
  );

  // The billing call worked with the token the program held itself.
  assert.equal(report.outcomes.billing.status, 200);
  assert.equal(report.outcomes.billing.upstreamGotToken, true);
  assert.equal(report.outcomes.token.inEnvironment, true);
  assert.ok(report.evidence.stdout.includes(token));

  assert.equal(report.contained, false);
  assert.equal(report.asExpected, true);
});

async function cli(
  command: string,
  args: string[],
): Promise<{ code: number; out: string; stdout: string }> {
  const output = await new Deno.Command(command, {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return {
    code: output.code,
    out: decode(output.stdout) + decode(output.stderr),
    stdout: decode(output.stdout),
  };
}

const SANDBOX_OUTCOMES = [
  "✗ credential files: not there",
  `✗ exfiltration to ${EXFIL_HOST}: refused`,
  "decision deny",
  "✓ billing call: GET /v1/billing/status -> 200",
  'injected ["authorization"]',
  "✓ the token never appeared inside the sandbox",
  "Run time ",
];

Deno.test("CLI: deno task demo exits 0 and names each outcome", async () => {
  const { code, out } = await cli(Deno.execPath(), ["task", "demo"]);
  assert.equal(code, 0, out);
  for (const line of SANDBOX_OUTCOMES) {
    assert.ok(out.includes(line), `missing "${line}" in:\n${out}`);
  }
});

Deno.test("CLI: the demo's own command, both modes", async () => {
  // The task's `deno run` part, without the doctor step before it.
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const task: string = config.tasks.demo;
  const args = task.slice(task.indexOf("&& deno run ") + 8).split(" ");

  const sandboxed = await cli(Deno.execPath(), args);
  assert.equal(sandboxed.code, 0, sandboxed.out);
  for (const line of SANDBOX_OUTCOMES) {
    assert.ok(
      sandboxed.out.includes(line),
      `missing "${line}" in:\n${sandboxed.out}`,
    );
  }
  assert.ok(!sandboxed.out.includes("\x1b["), "colour without a terminal");

  const bare = await cli(Deno.execPath(), [...args, "--no-sandbox"]);
  assert.equal(bare.code, 0, bare.out);
  assert.ok(
    bare.out.includes(
      `✗ LEAKED: the fake id_rsa and aws credentials reached ${EXFIL_HOST}`,
    ),
    bare.out,
  );

  const json = await cli(Deno.execPath(), [...args, "--json"]);
  assert.equal(json.code, 0, json.out);
  const report = JSON.parse(json.stdout);
  assert.equal(report.mode, "sandbox");
  assert.equal(report.contained, true);
});
