/**
 * The command line (`airlock run`, `airlock doctor`, the `airlock` entry
 * point itself), run as real subprocesses: exit codes, streaming and --json
 * output, paths relative to the user's directory, and usage errors a person
 * can act on.
 */

import assert from "node:assert/strict";
import { EXIT_CODES } from "../cli/exit_codes.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const RUN = `${ROOT}cli/run.ts`;
const DOCTOR = `${ROOT}cli/doctor.ts`;
const AIRLOCK = `${ROOT}cli/mod.ts`;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(
  script: string,
  args: string[],
  stdin?: string,
  cwd = ROOT,
): Promise<CliResult> {
  return await deno(
    ["run", "-A", "--config", `${ROOT}deno.json`, script, ...args],
    { cwd, ...(stdin !== undefined ? { stdin } : {}) },
  );
}

/** Runs Deno with `args` in `cwd`. */
async function deno(
  args: string[],
  options: {
    cwd: string;
    stdin?: string;
    env?: Record<string, string>;
    clearEnv?: boolean;
  },
): Promise<CliResult> {
  const { stdin } = options;
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: options.cwd,
    clearEnv: options.clearEnv ?? false,
    // INIT_CWD from a `deno task test` around this test must not leak in.
    env: {
      NO_COLOR: "1",
      DENO_NO_UPDATE_CHECK: "1",
      ...(options.clearEnv ? {} : { INIT_CWD: "" }),
      ...options.env,
    },
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

const run = (args: string[], stdin?: string) => cli(RUN, args, stdin);

/** The `airlock` command (cli/mod.ts), started in `cwd`. */
const airlock = (args: string[], cwd = ROOT, stdin?: string) =>
  cli(AIRLOCK, args, stdin, cwd);

/** A world-readable temp dir holding `files`. */
async function tempFiles(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-test-cli-" });
  await Deno.chmod(dir, 0o755);
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text, { mode: 0o644 });
  }
  return dir;
}

async function withFiles(
  files: Record<string, string>,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await tempFiles(files);
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("cli passes the program's exit code through (7 -> 7)", async () => {
  await withFiles({
    "exit7.ts": `console.log("out"); console.error("err"); Deno.exit(7);`,
  }, async (dir) => {
    const result = await run([`${dir}/exit7.ts`]);
    assert.equal(result.code, 7, result.stderr);
    assert.equal(result.stdout, "out\n");
    assert.equal(result.stderr, "err\n");
  });
});

Deno.test("cli exits 0 for a program that succeeds", async () => {
  const result = await run(["-"], `console.log("fine")`);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "fine\n");
});

Deno.test("cli exits 124 on timeout with a note on stderr", async () => {
  const result = await run(
    ["--timeout", "300ms", "-"],
    "setInterval(() => {}, 1000);",
  );
  assert.equal(result.code, EXIT_CODES.timeout);
  assert.equal(result.code, 124);
  assert.match(result.stderr, /timeout/);
  assert.match(result.stderr, /300 ms/);
  assert.equal(result.stdout, "");
});

Deno.test("cli --json prints a parseable RunResult", async () => {
  const result = await run(
    ["--json", "-", "--", "a b", "c"],
    `console.log(JSON.stringify(Deno.args)); Deno.exit(3);`,
  );
  assert.equal(result.code, 3, result.stderr);
  const json = JSON.parse(result.stdout);
  assert.equal(json.reason, "exit");
  assert.equal(json.exitCode, 3);
  assert.equal(json.success, false);
  assert.equal(json.stdout, `["a b","c"]\n`);
  assert.equal(json.stderr, "");
  assert.equal(typeof json.durationMs, "number");
  assert.equal(json.stdoutBytes, undefined);
});

Deno.test("cli --json reports a timeout's reason and exits 124", async () => {
  const result = await run(
    ["--json", "--timeout", "300ms", "-"],
    "setInterval(() => {}, 1000);",
  );
  assert.equal(result.code, 124);
  assert.equal(JSON.parse(result.stdout).reason, "timeout");
});

Deno.test("cli --help exits 0 and documents every option and exit code", async () => {
  const result = await run(["--help"]);
  assert.equal(result.code, 0);
  for (
    const option of [
      "--policy",
      "--timeout",
      "--memory",
      "--scratch",
      "--input",
      "--json",
      "--help",
      "-h",
    ]
  ) {
    assert.ok(result.stdout.includes(option), `help lacks ${option}`);
  }
  for (const [name, code] of Object.entries(EXIT_CODES)) {
    assert.match(
      result.stdout,
      new RegExp(`\\b${code}\\b`),
      `help lacks ${name} (${code})`,
    );
  }
  assert.match(result.stdout, /program args/);
  const short = await run(["-h"]);
  assert.equal(short.code, 0);
  assert.equal(short.stdout, result.stdout);
});

Deno.test("cli refuses an unknown flag with exit code 125", async () => {
  const result = await run(["--bogus-flag", "x.ts"]);
  assert.equal(result.code, EXIT_CODES.usage);
  assert.equal(result.code, 125);
  assert.match(result.stderr, /--bogus-flag/);
  assert.match(result.stderr, /--help/);
});

Deno.test("cli refuses a missing program with exit code 125", async () => {
  const result = await run([]);
  assert.equal(result.code, 125);
  assert.match(result.stderr, /program/i);
});

Deno.test("cli refuses a bad duration with exit code 125", async () => {
  const result = await run(["--timeout", "soon", "-"], "1");
  assert.equal(result.code, 125);
});

Deno.test("cli refuses an invalid policy file with 125, listing every problem", async () => {
  const policy = JSON.stringify({
    limits: { timeoutMs: "x", bogus: 1 },
    scratch: 3,
    extra: true,
  });
  await withFiles(
    { "policy.json": policy, "p.ts": "console.log('ran')" },
    async (dir) => {
      const result = await run([
        "--policy",
        `${dir}/policy.json`,
        `${dir}/p.ts`,
      ]);
      assert.equal(result.code, 125);
      assert.equal(result.stdout, "", "the program did not run");
      for (
        const needle of [
          "limits.timeoutMs",
          "'bogus'",
          "scratch",
          "'extra'",
          "4 problems",
        ]
      ) {
        assert.ok(
          result.stderr.includes(needle),
          `stderr lacks ${needle}: ${result.stderr}`,
        );
      }
    },
  );
});

Deno.test("cli refuses an unreadable policy file with 125", async () => {
  const result = await run(["--policy", "/nonexistent/policy.json", "-"], "1");
  assert.equal(result.code, 125);
  assert.match(result.stderr, /nonexistent\/policy\.json/);
});

Deno.test("cli accepts a JSONC policy file", async () => {
  await withFiles({
    "policy.jsonc":
      `// comment\n{ "limits": { "timeoutMs": 300 }, /* trailing */ }`,
  }, async (dir) => {
    const result = await run(
      ["--policy", `${dir}/policy.jsonc`, "-"],
      "setInterval(() => {}, 1000);",
    );
    assert.equal(result.code, 124, result.stderr);
  });
});

Deno.test("cli --input HOST:/inputs/x makes a host file readable", async () => {
  await withFiles({ "data.txt": "payload-123" }, async (dir) => {
    const result = await run(
      ["--input", `${dir}/data.txt:/inputs/x`, "-"],
      `console.log(await Deno.readTextFile("/inputs/x"));`,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "payload-123\n");
  });
});

Deno.test("cli --input without a target mounts at /inputs/<name>", async () => {
  await withFiles({ "data.csv": "a,b" }, async (dir) => {
    const result = await run(
      ["--input", `${dir}/data.csv`, "-"],
      `console.log(await Deno.readTextFile("/inputs/data.csv"));`,
    );
    assert.equal(result.stdout, "a,b\n", result.stderr);
  });
});

Deno.test("cli --input of a missing file exits 125", async () => {
  const result = await run(["--input", "/nonexistent/file", "-"], "1");
  assert.equal(result.code, 125);
  assert.match(result.stderr, /nonexistent\/file/);
});

Deno.test("cli reads the program from stdin with '-'", async () => {
  const result = await run(["-"], `const n: number = 6 * 7; console.log(n);`);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "42\n");
});

Deno.test("cli runs a program file with relative imports and passes args after --", async () => {
  await withFiles({
    "main.ts":
      `import { twice } from "./lib.ts"; console.log(twice(Deno.args.join("|")));`,
    "lib.ts": `export const twice = (s: string) => s + s;`,
  }, async (dir) => {
    const result = await run([`${dir}/main.ts`, "--", "x", "--y"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "x|--yx|--y\n");
  });
});

Deno.test("cli --scratch gives the program a writable cwd", async () => {
  const result = await run(
    ["--scratch", "-"],
    `Deno.writeTextFileSync("f", "1"); console.log(Deno.cwd());`,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "/scratch\n");
});

Deno.test("cli exits 127 for a program that cannot be bundled", async () => {
  const result = await run(
    ["-"],
    `import x from "npm:left-pad"; console.log(x);`,
  );
  assert.equal(result.code, EXIT_CODES.bundle);
  assert.match(result.stderr, /npm:left-pad/);
});

Deno.test("cli maps limits to their documented exit codes", async () => {
  const oom = await run(
    ["--memory", "64M", "-"],
    `const a = []; while (true) a.push({ s: "x".repeat(64) + Math.random() });`,
  );
  assert.equal(oom.code, EXIT_CODES.oom, oom.stderr.slice(-300));
  assert.match(oom.stderr, /oom/);
});

Deno.test("cli doctor exits 0 and reports bwrap ok", async () => {
  const result = await cli(DOCTOR, []);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /^ok\s+bwrap\s/m);
  assert.match(result.stdout, /^ok\s+sandboxed run\s/m);
});

Deno.test("cli doctor and run work from a directory only its owner may enter (a checkout under a 0700 home)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airlock-private-" });
  try {
    await Deno.chmod(dir, 0o700);
    await Deno.writeTextFile(`${dir}/hello.ts`, `console.log("hello");`);
    const doctor = await cli(DOCTOR, [], undefined, dir);
    assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
    const ran = await cli(RUN, ["hello.ts"], undefined, dir);
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout, "hello\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------ airlock

Deno.test("airlock run resolves the program and --input against the directory it was started in", async () => {
  await withFiles({
    "hello.ts": `console.log(await Deno.readTextFile("/inputs/data.csv"));`,
    "data.csv": "from the user's directory",
  }, async (dir) => {
    const result = await airlock(
      ["run", "--input", "./data.csv", "hello.ts"],
      dir,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "from the user's directory\n");
    // Control: started elsewhere, the same relative path is not found,
    // and the message says where it looked.
    const elsewhere = await airlock(["run", "hello.ts"], ROOT);
    assert.equal(elsewhere.code, EXIT_CODES.usage);
    assert.match(
      elsewhere.stderr,
      new RegExp(
        `Cannot run 'hello\\.ts': there is no such file in '${
          ROOT.replace(/\/$/, "")
        }'`,
      ),
    );
  });
});

Deno.test("deno task run (this checkout's task) resolves paths against INIT_CWD, where deno task was started", async () => {
  await withFiles({
    "hello.ts": `console.log(await Deno.readTextFile("/inputs/data.csv"));`,
    "data.csv": "init-cwd",
  }, async (dir) => {
    const result = await deno(
      [
        "task",
        "--config",
        `${ROOT}deno.json`,
        "run",
        "--input",
        "data.csv",
        "hello.ts",
      ],
      {
        cwd: dir,
        // No INIT_CWD at all: deno task sets it only when it is unset.
        clearEnv: true,
        env: {
          PATH: Deno.env.get("PATH") ?? "",
          HOME: Deno.env.get("HOME") ?? "/root",
        },
      },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^init-cwd$/m);
  });
});

Deno.test("airlock run of a directory says it is a directory and names programs in it", async () => {
  const result = await airlock(["run", "examples"], ROOT);
  assert.equal(result.code, EXIT_CODES.usage);
  assert.match(
    result.stderr,
    /Cannot run 'examples' as it is a directory: name a program file in it, e\.g\. 'examples\/hello\.ts'/,
  );
  assert.doesNotMatch(result.stderr, /entry|bundle/i);
});

Deno.test("airlock run --input HOST:/etc/x says sandbox paths must be under /inputs/", async () => {
  await withFiles(
    { "data.csv": "a", "p.ts": "console.log(1)" },
    async (dir) => {
      const result = await airlock(
        ["run", "--input", "./data.csv:/etc/x", "p.ts"],
        dir,
      );
      assert.equal(result.code, EXIT_CODES.usage);
      assert.match(
        result.stderr,
        /Cannot mount --input '\.\/data\.csv:\/etc\/x': the path inside the sandbox \('\/etc\/x'\) must be under \/inputs\/, e\.g\. '\.\/data\.csv:\/inputs\/data\.csv'/,
      );
      assert.doesNotMatch(result.stderr, /does not exist/);
      assert.equal(result.stdout, "", "the program did not run");
    },
  );
});

Deno.test("airlock run: an unknown option is quoted in balance, with 'did you mean'", async () => {
  const result = await airlock(["run", "--timout", "5s", "-"], ROOT, "1");
  assert.equal(result.code, EXIT_CODES.usage);
  const line = result.stderr.split("\n")[0]!;
  assert.equal(
    line,
    "airlock: Unknown option '--timout' for 'airlock run': did you mean '--timeout'? (to pass '--timout' to the program, put it after '--')",
  );
  assert.equal(line.split("'").length % 2, 1, "quotes are balanced");
  assert.match(result.stderr, /Run with --help for usage/);
  const command = await airlock(["rnu", "x.ts"]);
  assert.equal(command.code, EXIT_CODES.usage);
  assert.match(command.stderr, /Unknown command 'rnu': did you mean 'run'\?/);
});

Deno.test("airlock run --allow-net '*' is refused at the flag, without an internal policy path", async () => {
  const result = await airlock(["run", "--allow-net", "*", "-"], ROOT, "1");
  assert.equal(result.code, EXIT_CODES.usage);
  assert.match(
    result.stderr,
    /^airlock: Cannot use --allow-net '\*': '\*' would match every host: list the hosts, or use '\*\.example\.com'/,
  );
  assert.doesNotMatch(result.stderr, /network\.allow|key Cannot/);
  const inject = await airlock(
    ["run", "--inject", "*.com:Authorization=Bearer x", "-"],
    ROOT,
    "1",
  );
  assert.equal(inject.code, EXIT_CODES.usage);
  assert.match(
    inject.stderr,
    /Cannot use --inject '\*\.com': .*top-level domain/,
  );
});

Deno.test("airlock run --policy: validator wording is said in a person's words", async () => {
  const policy = JSON.stringify({
    limits: { timeoutMs: 1.5, memoryMb: "lots" },
    network: {
      allow: { "api.example.com": [{ match: { methods: ["GET"] } }] },
    },
    inputs: [3],
  });
  await withFiles({ "policy.json": policy }, async (dir) => {
    const result = await airlock(
      ["run", "--policy", "policy.json", "-"],
      dir,
      "1",
    );
    assert.equal(result.code, EXIT_CODES.usage);
    for (
      const line of [
        "limits.timeoutMs: must be a whole number",
        "limits.memoryMb: must be a number, not a string",
        "network.allow.api.example.com.0: needs 'transform' or 'response'",
        "inputs.0: must be a string, or an object, not a number",
      ]
    ) {
      assert.ok(
        result.stderr.includes(line),
        `lacks '${line}':\n${result.stderr}`,
      );
    }
    assert.doesNotMatch(
      result.stderr,
      /Invalid input|expected array|received undefined/,
    );
  });
});

Deno.test("airlock run --timeout: a bare number is refused (one unit rule: durations carry a unit)", async () => {
  const bare = await airlock(["run", "--timeout", "5000", "-"], ROOT, "1");
  assert.equal(bare.code, EXIT_CODES.usage);
  assert.match(
    bare.stderr,
    /Cannot use --timeout '5000' as a duration needs a unit: write '5000ms' or '5000s'/,
  );
  const long = await airlock(["run", "--timeout", "25h", "-"], ROOT, "1");
  assert.equal(long.code, EXIT_CODES.usage);
  assert.match(long.stderr, /the longest run is 24h/);
  const ms = await airlock(
    ["run", "--json", "--timeout", "5000ms", "-"],
    ROOT,
    "console.log(1)",
  );
  assert.equal(ms.code, 0, ms.stderr);
  assert.equal(JSON.parse(ms.stdout).limits.timeoutMs, 5000);
});

Deno.test("airlock doctor --json prints the checks as JSON", async () => {
  const result = await airlock(["doctor", "--json"]);
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.equal(report.ok, true);
  const names = report.checks.map((c: { name: string }) => c.name);
  for (const name of ["bwrap", "user namespaces", "sandboxed run"]) {
    assert.ok(names.includes(name), names.join(", "));
  }
  for (const check of report.checks) {
    assert.equal(typeof check.ok, "boolean");
    assert.equal(typeof check.detail, "string");
  }
  const typo = await airlock(["doctor", "--jsno"]);
  assert.equal(typo.code, EXIT_CODES.usage);
  assert.match(typo.stderr, /did you mean '--json'\?/);
});

Deno.test("airlock --version and --help; every command has --help", async () => {
  const version = await airlock(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^airlock \d+\.\d+\.\d+ \(deno /);
  const help = await airlock(["--help"]);
  assert.equal(help.code, 0);
  for (
    const name of ["run", "audit", "audit-flags", "serve", "doctor", "demo"]
  ) {
    assert.match(help.stdout, new RegExp(`^  ${name} `, "m"));
    const own = await airlock([name, "--help"]);
    assert.equal(own.code, 0, `${name}: ${own.stderr}`);
    assert.match(own.stdout, /Usage/i, name);
  }
});
