import assert from "node:assert/strict";
import { auditText } from "./mod.ts";
import { type ParsedDenoCommand, parseDenoCommand } from "./parse.ts";

/** `kind=values` of each grant, values "*" for all. */
function grants(parsed: ParsedDenoCommand | null): string[] {
  assert.ok(parsed, "expected a parsed command");
  return parsed.grants.map((g) => `${g.kind}=${g.values?.join(",") ?? "*"}`);
}

const parse = (line: string) => parseDenoCommand(line.split(" "));

Deno.test("parseDenoCommand() reads every permission flag form", () => {
  const cases: [string, string[]][] = [
    ["run -A x.ts", ["all=*"]],
    ["run --allow-all x.ts", ["all=*"]],
    ["run -R --allow-read=a,b x.ts", ["read=*", "read=a,b"]],
    ["run -W=out --allow-write x.ts", ["write=out", "write=*"]],
    ["run -N=h:443 --allow-net x.ts", ["net=h:443", "net=*"]],
    ["run -E --allow-env=HOME x.ts", ["env=*", "env=HOME"]],
    ["run -S --allow-sys=hostname x.ts", ["sys=*", "sys=hostname"]],
    ["run --allow-run --allow-run=git x.ts", ["run=*", "run=git"]],
    ["run --allow-ffi=./a.so x.ts", ["ffi=./a.so"]],
    ["run -I --allow-import=jsr.io x.ts", ["import=*", "import=jsr.io"]],
    ["run --allow-hrtime x.ts", ["hrtime=*"]],
    ["install --allow-scripts=npm:a", ["scripts=npm:a"]],
  ];
  for (const [line, expected] of cases) {
    assert.deepEqual(grants(parse(line)), expected, line);
  }
  const denied = parse("run --allow-read --deny-read=~/.ssh --deny-net x.ts")!;
  assert.deepEqual(
    denied.denies.map((d) => `${d.kind}=${d.values ?? "*"}`),
    ["read=~/.ssh", "net=*"],
  );
  assert.equal(parse("run x.ts")!.noPrompt, false);
  assert.equal(parse("run --no-prompt x.ts")!.noPrompt, true);
  assert.deepEqual(parse("run -P x.ts")!.permissionSet?.name, "default");
  assert.deepEqual(
    parse("run --permission-set=ci x.ts")!.permissionSet?.name,
    "ci",
  );
  assert.deepEqual(parse("test -P=t")!.permissionSet?.name, "t");
});

Deno.test("parseDenoCommand() takes the word after a bare list flag as the script, as Deno does", () => {
  const bare = parse("run --allow-net api.example.com main.ts")!;
  assert.deepEqual(grants(bare), ["net=*"]);
  assert.equal(bare.script, "api.example.com");
  assert.deepEqual(bare.misplacedValue, {
    flag: "--allow-net",
    word: "api.example.com",
  });
  const listed = parse("run --allow-net=api.example.com main.ts")!;
  assert.deepEqual(grants(listed), ["net=api.example.com"]);
  assert.equal(listed.script, "main.ts");
  assert.equal(listed.misplacedValue, null);
  // A script-looking word is taken as the script it looks like.
  assert.equal(parse("run -R main.ts")!.misplacedValue, null);
  // The finding says so, and suggests the '=' form.
  const [finding] = auditText(
    JSON.stringify({ tasks: { t: "deno run -N api.example.com main.ts" } }),
    "deno.json",
  );
  assert.equal(finding?.severity, "high");
  assert.match(
    finding!.message,
    /'api\.example\.com' after it is not its list/,
  );
  assert.match(finding!.suggestion, /--allow-net=api\.example\.com/);
});

Deno.test("parseDenoCommand() reads combined short flags as Deno 2.9 does: -RN is -R -N, -R/tmp is -R=/tmp", () => {
  assert.deepEqual(grants(parse("run -RN x.ts")), ["read=*", "net=*"]);
  assert.deepEqual(grants(parse("run -NR=/tmp x.ts")), ["net=*", "read=/tmp"]);
  assert.deepEqual(grants(parse("run -R/tmp x.ts")), ["read=/tmp"]);
  assert.deepEqual(grants(parse("run -Nfoo.com x.ts")), ["net=foo.com"]);
  // Which letters continue a cluster depends on the subcommand: -f is
  // install's --force, not the start of a value.
  assert.deepEqual(grants(parse("install -g -Nf npm:x")), ["net=*"]);
  assert.deepEqual(grants(parse("run -qAr x.ts")), ["all=*"]);
  // -c takes the next word: it is not the script.
  const config = parse("run -Rc deno.json x.ts")!;
  assert.deepEqual(grants(config), ["read=*"]);
  assert.equal(config.script, "x.ts");
  assert.equal(parse("run --config deno.json x.ts")!.script, "x.ts");
});

Deno.test("parseDenoCommand() gives flags after the script to the script, except for test and bench", () => {
  assert.deepEqual(grants(parse("run x.ts -A --allow-net")), []);
  assert.deepEqual(grants(parse("compile -o app x.ts -A")), []);
  assert.deepEqual(grants(parse("test a_test.ts -A")), ["all=*"]);
  assert.deepEqual(grants(parse("bench b.ts -N")), ["net=*"]);
  assert.deepEqual(grants(parse("test -R -- -A")), ["read=*"]);
});

Deno.test("parseDenoCommand() reports flags Deno rejects", () => {
  const problems = (line: string) => parse(line)!.problems.map((p) => p.flag);
  assert.deepEqual(problems("run --allow-foo x.ts"), ["--allow-foo"]);
  assert.deepEqual(problems("run --deny-everything x.ts"), [
    "--deny-everything",
  ]);
  assert.deepEqual(problems("run -qZ x.ts"), ["-qZ"]);
  assert.deepEqual(problems("run --allow-read= x.ts"), ["--allow-read="]);
  assert.deepEqual(problems("run -R= x.ts"), ["-R="]);
  assert.deepEqual(problems("run --allow-all=yes x.ts"), ["--allow-all=yes"]);
  assert.deepEqual(problems("run -R -N x.ts"), []);
});

Deno.test("parseDenoCommand() ignores commands that grant nothing: deno task, fmt, --version, bare deno", () => {
  for (
    const line of [
      "task dev",
      "fmt --check",
      "--version",
      "",
      "lint",
      "cache x.ts",
    ]
  ) {
    assert.equal(parseDenoCommand(line ? line.split(" ") : []), null, line);
  }
  // `deno x.ts` is `deno run x.ts`; `deno -A` alone is a REPL with -A.
  assert.equal(parse("-A x.ts")!.subcommand, "run");
  assert.equal(parse("x.ts")!.subcommand, "run");
  assert.equal(parse("-A")!.subcommand, "repl");
  assert.equal(parse("-q run -A x.ts")!.subcommand, "run");
  // A local install fetches dependencies: only lifecycle scripts run.
  assert.deepEqual(grants(parse("install -A")), []);
  assert.deepEqual(grants(parse("install -g -A npm:cowsay")), ["all=*"]);
});
