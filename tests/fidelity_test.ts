/**
 * Fidelity: what the program writes, exits with and receives crosses the
 * sandbox boundary unchanged, byte for byte.
 */

import assert from "node:assert/strict";
import { Sandbox } from "../mod.ts";
import type { RunOptions, RunResult } from "../mod.ts";

async function runOnce(
  code: string,
  options: Omit<RunOptions, "code" | "files" | "entry" | "path"> = {},
): Promise<RunResult> {
  await using sandbox = await Sandbox.create();
  return await sandbox.run({ ...options, code });
}

/** Writes all of `bytes` (given as a JSON array) to `stream` (stdout/stderr). */
function writeBytes(stream: "stdout" | "stderr", bytes: number[]): string {
  return `{
    const bytes = new Uint8Array(${JSON.stringify(bytes)});
    let off = 0;
    while (off < bytes.length) off += Deno.${stream}.writeSync(bytes.subarray(off));
  }`;
}

/** xorshift32 bytes: the same generator runs in the test and the program. */
const GENERATOR = `function generate(n, seed) {
  const out = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}`;
const generate = new Function(`${GENERATOR}; return generate;`)() as (
  n: number,
  seed: number,
) => Uint8Array;

for (const code of [0, 1, 2, 3, 42, 255]) {
  Deno.test(`sandbox exit code ${code} comes back exactly`, async () => {
    const result = await runOnce(`Deno.exit(${code});`);
    assert.equal(result.exitCode, code);
    assert.equal(result.reason, "exit");
    assert.equal(result.signal, null);
    assert.equal(result.success, code === 0);
  });
}

Deno.test("sandbox exit code from an uncaught error is 1", async () => {
  const result = await runOnce(`throw new Error("boom");`);
  assert.equal(result.exitCode, 1);
  assert.equal(result.reason, "exit");
  assert.match(result.stderr, /boom/);
});

const AWKWARD = [
  0xff,
  0xfe,
  0x00,
  0x80,
  0xc3,
  0x28,
  0xed,
  0xa0,
  0x80,
  0x00,
  0x0a,
  0x0d,
  0xf8,
  0x88,
  0x80,
  0x80,
  0x80,
  0xe2,
  0x82,
  0x00,
  0x1b,
  0x5b,
  0x33,
  0x31,
  0x6d,
  0x7f,
];

Deno.test("sandbox stdout bytes (invalid UTF-8, NUL) come back byte-exact", async () => {
  const result = await runOnce(writeBytes("stdout", AWKWARD));
  assert.deepEqual([...result.stdoutBytes], AWKWARD);
});

Deno.test("sandbox stderr bytes (invalid UTF-8, NUL) come back byte-exact", async () => {
  const result = await runOnce(writeBytes("stderr", AWKWARD));
  assert.deepEqual([...result.stderrBytes], AWKWARD);
  assert.equal(result.stdoutBytes.length, 0);
});

Deno.test("sandbox 200 KB binary payload comes back byte-exact", async () => {
  const size = 200 * 1024;
  const result = await runOnce(`${GENERATOR}
    const bytes = generate(${size}, 12345);
    let off = 0;
    while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));`);
  assert.equal(result.reason, "exit", result.stderr);
  assert.equal(result.truncated, false);
  assert.deepEqual(result.stdoutBytes, generate(size, 12345));
});

Deno.test("sandbox interleaved stdout and stderr each keep their own bytes", async () => {
  const result = await runOnce(`
    for (let i = 0; i < 1000; i++) { console.log("o" + i); console.error("e" + i); }`);
  const range = [...Array(1000).keys()];
  assert.equal(result.stdout, range.map((i) => `o${i}\n`).join(""));
  assert.equal(result.stderr, range.map((i) => `e${i}\n`).join(""));
});

const UNICODE =
  "emoji 😀👩‍👩‍👧‍👦🏳️‍🌈 CJK 漢字かなカナ한국어 combining e\u0301 a\u030a\u0323 " +
  "RTL مرحبا שלום zero-width \u200b\u200d BOM \ufeff astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢";

Deno.test("sandbox unicode output round-trips", async () => {
  const result = await runOnce(`console.log(${JSON.stringify(UNICODE)});`);
  assert.equal(result.stdout, `${UNICODE}\n`);
  assert.deepEqual(
    result.stdoutBytes,
    new TextEncoder().encode(`${UNICODE}\n`),
  );
});

Deno.test("sandbox stdin bytes reach the program exactly", async () => {
  const input = new Uint8Array([...Array(256).keys(), ...generate(100_000, 7)]);
  const result = await runOnce(
    `const data = new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer());
     let off = 0;
     while (off < data.length) off += Deno.stdout.writeSync(data.subarray(off));`,
    { stdin: input },
  );
  assert.equal(result.reason, "exit", result.stderr);
  assert.deepEqual(result.stdoutBytes, input);
});

Deno.test("sandbox stdin given as a string reaches the program as UTF-8", async () => {
  const result = await runOnce(
    `console.log(await new Response(Deno.stdin.readable).text());`,
    { stdin: UNICODE },
  );
  assert.equal(result.stdout, `${UNICODE}\n`);
});

Deno.test("sandbox without stdin reads end-of-file at once", async () => {
  const result = await runOnce(
    `console.log((await new Response(Deno.stdin.readable).arrayBuffer()).byteLength);`,
  );
  assert.equal(result.stdout, "0\n");
});

Deno.test("sandbox Deno.args round-trip with spaces, unicode and flags", async () => {
  const args = [
    "plain",
    "with space",
    "  leading and trailing  ",
    "ünïcödé 😀 漢字",
    "",
    "--flag",
    "-x",
    "--allow-all",
    "a=b c",
    'quote\'s "double"',
    "$HOME `id` $(id)",
    "tab\there",
    "-",
    "--",
  ];
  const result = await runOnce(`console.log(JSON.stringify(Deno.args));`, {
    args,
  });
  assert.equal(result.reason, "exit", result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), args);
});

Deno.test("sandbox program given as files with an entry runs with its imports", async () => {
  await using sandbox = await Sandbox.create();
  const result = await sandbox.run({
    files: {
      "main.ts":
        `import { greet } from "./lib/greet.ts"; console.log(greet("box"));`,
      "lib/greet.ts": `export const greet = (n: string): string => "hi " + n;`,
    },
    entry: "main.ts",
  });
  assert.equal(result.stdout, "hi box\n", result.stderr);
});
