/**
 * The deno.json tasks exactly as users and CI run them, with their own
 * permission flags (a test that runs the module with -A would not notice a
 * task missing a flag).
 */

import assert from "node:assert/strict";

const root = new URL("..", import.meta.url).pathname;

async function task(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", ...args],
    cwd: root,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    text: new TextDecoder().decode(out.stdout) +
      new TextDecoder().decode(out.stderr),
  };
}

Deno.test("deno task doctor passes on this host with its own flags (it runs a sandboxed hello world)", async () => {
  const { code, text } = await task("doctor");
  assert.equal(code, 0, text);
  assert.match(text, /ok\s+sandboxed run\s+hello world ran/);
});

Deno.test("deno task example (the quick start) runs the example in a sandbox and refuses each escape", async () => {
  const { code, text } = await task("example");
  assert.equal(code, 0, text);
  for (
    const what of [
      "read /etc/passwd",
      "read bwrap's environment",
      "spawn a shell",
      "connect to 1.1.1.1:443",
    ]
  ) {
    assert.match(
      text,
      new RegExp(`${what.replaceAll(".", "\\.")}: refused`),
      text,
    );
  }
  // The environment is the sandbox's own.
  assert.match(text, /environment: .*\bTMPDIR\b/, text);
  assert.doesNotMatch(text, /ALLOWED/, text);
});

Deno.test("deno task run and deno task audit work with their own flags", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/p.ts`,
      `console.log("task ok"); try { Deno.readTextFileSync("/etc/hostname"); } catch { /* refused */ }`,
    );
    const run = await task("run", `${dir}/p.ts`);
    assert.equal(run.code, 0, run.text);
    assert.match(run.text, /task ok/);
    const audit = await task("audit", "--json", `${dir}/p.ts`);
    assert.equal(audit.code, 0, audit.text);
    assert.match(audit.text, /"value": "\/etc\/hostname"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
