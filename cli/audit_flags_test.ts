/**
 * `deno task audit:flags` as a real subprocess with the task's own
 * permissions (read only, no prompt): exit codes, --json shape, usage errors,
 * colour, --trail.
 */

import assert from "node:assert/strict";
import type { AuditReport } from "../audit/report.ts";
import type { Finding } from "../audit/flags/mod.ts";
import { AUDIT_FLAGS_EXIT, renderFindings } from "./audit_flags.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const CLI = `${ROOT}cli/audit_flags.ts`;
const FIXTURE = `${ROOT}tests/fixtures/risky_project`;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI exactly as the deno.json task does. */
async function cli(args: string[], cwd = ROOT): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--no-prompt", CLI, ...args],
    cwd,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
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
}

async function withProject(
  files: Record<string, string>,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-audit-flags-" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const tasks = (t: Record<string, string>) => JSON.stringify({ tasks: t });

Deno.test("audit:flags --fail-on: critical and high fail on the fixture, none never fails", async () => {
  assert.equal(
    (await cli(["--fail-on", "critical", FIXTURE])).code,
    AUDIT_FLAGS_EXIT.findings,
  );
  assert.equal((await cli(["--fail-on", "high", FIXTURE])).code, 1);
  assert.equal((await cli([FIXTURE])).code, 1, "the default is high");
  const none = await cli(["--fail-on", "none", FIXTURE]);
  assert.equal(none.code, AUDIT_FLAGS_EXIT.ok);
  assert.match(none.stdout, /--fail-on none: never fails/);
});

Deno.test("audit:flags --fail-on sets the bar: a project whose worst is high passes critical, fails high", async () => {
  await withProject({
    "deno.json": tasks({ t: "deno run --allow-env --no-prompt x.ts" }),
  }, async (dir) => {
    const critical = await cli(["--fail-on", "critical", dir]);
    assert.equal(critical.code, 0, critical.stdout);
    assert.match(critical.stdout, /None at or above --fail-on critical/);
    const high = await cli(["--fail-on", "high", dir]);
    assert.equal(high.code, 1);
    assert.match(high.stdout, /1 at or above --fail-on high: failing/);
    assert.equal((await cli([dir])).code, 1, "the default is high");
    // "At or above": a lower bar than the worst finding fails too.
    assert.equal((await cli(["--fail-on", "medium", dir])).code, 1);
    assert.equal((await cli(["--fail-on", "none", dir])).code, 0);
  });
});

Deno.test("audit:flags passes a clean project at the default bar, and the path defaults to the cwd", async () => {
  await withProject({
    "deno.json": tasks({
      start: "deno run --allow-net=localhost:8000 --no-prompt main.ts",
      ok: "deno fmt --check && deno task start",
    }),
  }, async (dir) => {
    const result = await cli([], dir);
    assert.equal(result.code, 0, result.stdout);
    assert.match(
      result.stdout,
      /^info +allow-net +deno\.json:1 +--allow-net=localhost:8000 /m,
    );
    assert.match(
      result.stdout,
      /1 finding\(s\): 0 critical, 0 high, 0 medium, 0 low, 1 info/,
    );
    // Info findings fail only when asked to.
    assert.equal((await cli(["--fail-on", "info"], dir)).code, 1);
  });
});

Deno.test("audit:flags exits 125 (usage) on bad usage, an unreadable path or a bad trail", async () => {
  await withProject(
    { "not-json.json": "{", "other.json": '{ "a": 1 }' },
    async (dir) => {
      const cases: [string[], RegExp][] = [
        [
          ["--fail-on", "severe"],
          /Cannot use '--fail-on severe': use one of critical, high, medium, low, info, none/,
        ],
        [["--fail-on"], /--fail-on/],
        [["--frobnicate"], /frobnicate/],
        [["a", "b"], /Cannot audit more than one path/],
        [[`${dir}/missing`], /Cannot audit '.*missing'/],
        [["--trail", `${dir}/nope.json`, dir], /Cannot read trail/],
        [["--trail", `${dir}/not-json.json`, dir], /Cannot read trail/],
        [["--trail", `${dir}/other.json`, dir], /airlock audit --json/],
      ];
      for (const [args, message] of cases) {
        const result = await cli(args);
        assert.equal(result.code, AUDIT_FLAGS_EXIT.usage, args.join(" "));
        assert.match(result.stderr, message, args.join(" "));
        assert.match(result.stderr, /Run with --help for usage/);
        assert.equal(result.stdout, "");
      }
    },
  );
});

Deno.test("audit:flags --json prints an array of findings with exactly the documented fields", async () => {
  const result = await cli(["--json", "--fail-on", "none", FIXTURE]);
  assert.equal(result.code, 0);
  const findings: unknown = JSON.parse(result.stdout);
  assert.ok(Array.isArray(findings) && findings.length > 0);
  // stdout is only the JSON; the verdict goes to stderr for the CI log.
  assert.match(result.stderr, /^\d+ finding\(s\): .*--fail-on none/m);
  const gate = await cli(["--json", "--exclude", "scripts", FIXTURE]);
  assert.equal(gate.code, AUDIT_FLAGS_EXIT.findings);
  assert.ok(Array.isArray(JSON.parse(gate.stdout)));
  assert.match(
    gate.stderr,
    /^Skipped 1 path\(s\): scripts \(--exclude scripts\)\.\n.* at or above --fail-on high: failing \(exit code 1\)\.\n$/,
  );
  const fields = [
    "command",
    "file",
    "flag",
    "id",
    "line",
    "message",
    "severity",
    "suggestion",
  ];
  for (const finding of findings as Record<string, unknown>[]) {
    assert.deepEqual(Object.keys(finding).sort(), fields);
    assert.ok(Number.isInteger(finding.line) && (finding.line as number) >= 1);
    assert.ok(
      ["critical", "high", "medium", "low", "info"].includes(
        finding.severity as string,
      ),
    );
    assert.match(finding.id as string, /^[a-z]+(?:-[a-z]+)*$/);
    for (const key of ["command", "file", "flag", "message", "suggestion"]) {
      assert.equal(typeof finding[key], "string", key);
      assert.notEqual(finding[key], "", key);
    }
  }
  // Paths are relative to the cwd, so file:line opens in an editor.
  const first = (findings as Finding[]).find((f) =>
    f.flag === "--allow-run=git,bash"
  );
  assert.deepEqual(
    first &&
      {
        file: first.file,
        line: first.line,
        severity: first.severity,
        command: first.command,
      },
    {
      file: "tests/fixtures/risky_project/deno.json",
      line: 9,
      severity: "critical",
      command: "deno run --allow-run=git,bash --no-prompt tool.ts",
    },
  );
});

Deno.test("audit:flags --help documents every option, severity and exit code, with examples", async () => {
  const result = await cli(["--help"]);
  assert.equal(result.code, 0);
  for (
    const text of [
      "airlock audit-flags [options] [path]",
      "--fail-on SEVERITY",
      "--trail FILE",
      "--exclude GLOB",
      "--no-default-excludes",
      "remote-unpinned",
      "deno-eval",
      "--json",
      "--no-color",
      "critical",
      "info",
      "0  no finding at or above --fail-on",
      "1  at least one finding at or above --fail-on",
      "125  bad usage",
      "Examples:",
      "airlock audit --learn --json agent.ts > trail.json",
    ]
  ) {
    assert.ok(result.stdout.includes(text), `--help lacks '${text}'`);
  }
});

Deno.test("audit:flags prints no colour codes with NO_COLOR or when not a terminal, and --exclude skips", async () => {
  const result = await cli([
    "--exclude",
    "scripts",
    "--fail-on",
    "none",
    FIXTURE,
  ]);
  assert.equal(result.code, 0);
  assert.ok(!result.stdout.includes("\x1b"), "no ANSI escapes");
  assert.match(result.stdout, /^SEVERITY +ID +LOCATION +FLAG +COMMAND$/m);
  assert.match(
    result.stdout,
    /^critical +allow-all +tests\/fixtures\/risky_project\/deno\.json:7 +-A +deno run -A main\.ts$/m,
  );
  assert.match(result.stdout, /^ +why: every permission/m);
  assert.match(result.stdout, /^ +fix: /m);
  assert.ok(!result.stdout.includes("deploy.sh"), "--exclude scripts");
  // What was skipped is said, so an exclusion never hides a finding silently.
  assert.match(
    result.stdout,
    /^Skipped 1 path\(s\): scripts \(--exclude scripts\)\.$/m,
  );
  // The verdict is the last line, after what was skipped.
  assert.match(result.stdout, /\.\n\d+ finding\(s\): [^\n]*never fails\.\n$/);
  assert.match(result.stdout, /Makefile:8/);
});

Deno.test("renderFindings() colours severities only when asked, and shows hostile control and bidi characters as escapes", () => {
  const finding: Finding = {
    id: "allow-all",
    file: "deno.json",
    line: 3,
    command: "deno run -A x.ts\x1b[2K\x1b[1A",
    flag: "-A",
    severity: "critical",
    message: "every permission\u202e",
    suggestion: "fix",
  };
  const plain = renderFindings([finding], { color: false, failOn: "high" });
  assert.ok(!plain.includes("\x1b") && !plain.includes("\u202e"));
  assert.match(plain, /deno run -A x\.ts\\u\{1b\}\[2K\\u\{1b\}\[1A/);
  assert.match(plain, /every permission\\u\{202e\}/);
  // A long command is cut in the middle: the script at its end stays.
  const long = renderFindings([{
    ...finding,
    command: `deno run ${"--allow-read=./data ".repeat(8)}agent.ts`,
  }], { color: false, failOn: "high" });
  assert.match(long, /deno run --allow-read=\.\/data .*….* agent\.ts\n/);
  const colored = renderFindings([finding], { color: true, failOn: "high" });
  assert.ok(colored.includes("\x1b[1;31mcritical\x1b[0m"));
  assert.equal(
    renderFindings([], { color: true, failOn: "high" }),
    "No Deno permission grants found.\n",
  );
});

Deno.test("audit:flags --trail proposes the exact flags the recorded run used", async () => {
  const report: AuditReport = {
    program: "agent.ts",
    generatedAt: "2025-06-12T09:41:09.000Z",
    learn: false,
    run: {
      exitCode: 0,
      reason: "exit",
      durationMs: 10,
      completed: true,
      summary: "The program exited with code 0.",
    },
    events: [],
    entries: [{
      kind: "egress",
      value: "api.github.com:443",
      hostValue: null,
      decision: "allow",
      reason: "allowed",
      count: 2,
      time: "2025-06-12T09:41:07.000Z",
    }],
    summary: {},
    workingDirectory: ".",
    refused: [],
    callouts: [],
    minimalFlags: ["--allow-net=api.github.com:443"],
    denoCommand: "deno run --allow-net=api.github.com:443 agent.ts",
    flagNotes: [],
    policySnippet: {},
  };
  await withProject({
    "deno.json": tasks({
      agent: "deno run --allow-net --allow-read --no-prompt agent.ts",
    }),
    "trail.json": JSON.stringify(report),
  }, async (dir) => {
    const result = await cli(["--json", "--trail", `${dir}/trail.json`, dir]);
    assert.equal(result.code, 1);
    const findings = JSON.parse(result.stdout) as Finding[];
    const fix = (flag: string) =>
      findings.find((f) => f.flag === flag)?.suggestion;
    assert.equal(
      fix("--allow-net"),
      "the recorded run of agent.ts used: --allow-net=api.github.com:443",
    );
    assert.equal(
      fix("--allow-read"),
      "the recorded run of agent.ts used no read: delete --allow-read",
    );
  });
});
