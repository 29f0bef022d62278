import assert from "node:assert/strict";
import { auditText } from "./mod.ts";

/** Findings of one deno.json task, as `severity flag`. */
function rateTask(command: string): string[] {
  const text = JSON.stringify({ tasks: { t: command } });
  return auditText(text, "deno.json").map((f) => `${f.severity} ${f.flag}`);
}

Deno.test("auditText() rates each grant by the documented rules", () => {
  const cases: [string, string[]][] = [
    ["deno run -A --no-prompt x.ts", ["critical -A"]],
    ["deno run --allow-run=git --no-prompt x.ts", ["high --allow-run=git"]],
    ["deno run --allow-run=/usr/bin/python3 --no-prompt x.ts", [
      "critical --allow-run=/usr/bin/python3",
    ]],
    ["deno run --allow-ffi=./a.so --no-prompt x.ts", [
      "critical --allow-ffi=./a.so",
    ]],
    ["deno run --allow-write=./dist --no-prompt x.ts", [
      "low --allow-write=./dist",
    ]],
    ["deno run --allow-write=deno.json --no-prompt x.ts", [
      "high --allow-write=deno.json",
    ]],
    ["deno run --allow-write=~ --no-prompt x.ts", ["high --allow-write=~"]],
    ["deno run --allow-write=./gen.ts --no-prompt x.ts", [
      "high --allow-write=./gen.ts",
    ]],
    ["deno run --allow-read=./data --no-prompt x.ts", [
      "low --allow-read=./data",
    ]],
    ["deno run --allow-read=$HOME --no-prompt x.ts", [
      "high --allow-read=$HOME",
    ]],
    ["deno run --allow-read=.env --no-prompt x.ts", ["high --allow-read=.env"]],
    ["deno run --allow-read=/proc/self --no-prompt x.ts", [
      "high --allow-read=/proc/self",
    ]],
    ["deno run --allow-read=~/.aws/credentials --no-prompt x.ts", [
      "high --allow-read=~/.aws/credentials",
    ]],
    ["deno run --allow-read=${HOME}/.config --no-prompt x.ts", [
      "high --allow-read=${HOME}/.config",
    ]],
    ["deno run --allow-env=PORT --no-prompt x.ts", ["low --allow-env=PORT"]],
    ["deno run --allow-env=AWS_REGION --no-prompt x.ts", [
      "medium --allow-env=AWS_REGION",
    ]],
    ["deno run --allow-env=API_KEY --no-prompt x.ts", [
      "medium --allow-env=API_KEY",
    ]],
    ["deno run --allow-net=api.x.com --no-prompt x.ts", [
      "low --allow-net=api.x.com",
    ]],
    ["deno run --allow-net=[::1]:80,127.0.0.1 --no-prompt x.ts", [
      "info --allow-net=[::1]:80,127.0.0.1",
    ]],
    ["deno run --allow-net=169.254.169.254 --no-prompt x.ts", [
      "high --allow-net=169.254.169.254",
    ]],
    ["deno run --allow-net=unix:/var/run/docker.sock --no-prompt x.ts", [
      "critical --allow-net=unix:/var/run/docker.sock",
    ]],
    ["deno run --allow-sys --no-prompt x.ts", ["medium --allow-sys"]],
    ["deno run --allow-sys=hostname --no-prompt x.ts", [
      "low --allow-sys=hostname",
    ]],
    ["deno run --allow-import=jsr.io:443,esm.sh --no-prompt x.ts", [
      "info --allow-import=jsr.io:443,esm.sh",
    ]],
    ["deno run --allow-import=evil.dev --no-prompt x.ts", [
      "medium --allow-import=evil.dev",
    ]],
    ["deno run --allow-hrtime --no-prompt x.ts", ["info --allow-hrtime"]],
  ];
  for (const [command, expected] of cases) {
    assert.deepEqual(rateTask(command), expected, command);
  }
});

Deno.test("auditText() lets deny beat allow: a bare deny cancels, a listed deny mitigates", () => {
  assert.deepEqual(
    rateTask("deno run --allow-net --deny-net --no-prompt x.ts"),
    ["info --allow-net"],
  );
  const [partly] = auditText(
    JSON.stringify({
      tasks: { t: "deno run --allow-read --deny-read=~/.ssh --no-prompt x.ts" },
    }),
    "deno.json",
  );
  assert.equal(partly?.severity, "high");
  assert.match(partly!.message, /partly mitigated by --deny-read=~\/\.ssh/);
  // Denying the only risky entry of a list leaves the rest's severity.
  assert.deepEqual(
    rateTask(
      "deno run --allow-read=./data,~/.ssh --deny-read=~/.ssh --no-prompt x.ts",
    ),
    ["low --allow-read=./data,~/.ssh"],
  );
  assert.deepEqual(
    rateTask(
      "deno run --allow-env=PORT,GH_TOKEN --deny-env=GH_* --no-prompt x.ts",
    ),
    ["low --allow-env=PORT,GH_TOKEN"],
  );
  const [cancelled] = auditText(
    JSON.stringify({
      tasks: { t: "deno run --allow-read=./d,~/.ssh --deny-read=~/.ssh x.ts" },
    }),
    "deno.json",
  );
  assert.equal(
    cancelled?.message,
    "reads only the listed paths (~/.ssh cancelled by --deny-read=~/.ssh)",
  );
  // -A stays critical: a few denies do not make "everything else" safe.
  assert.deepEqual(rateTask("deno run -A --deny-read=/etc --no-prompt x.ts"), [
    "critical -A",
  ]);
});
