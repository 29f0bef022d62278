import assert from "node:assert/strict";
import { resultBody, spool } from "./_spool.ts";

const encoder = new TextEncoder();

function chunks(...parts: (string | Uint8Array)[]) {
  return ReadableStream.from(
    parts.map((p) => typeof p === "string" ? encoder.encode(p) : p),
  );
}

async function files(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
}

Deno.test("spool() keeps small output in memory and writes nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = await spool(chunks("a", "b"), dir, 16);
    assert.equal(out.size, 2);
    assert.deepEqual(await files(dir), []);
    const body = resultBody({ exitCode: 0 }, out, out, () => {});
    assert.deepEqual(await new Response(body).json(), {
      exitCode: 0,
      stdout: "ab",
      stderr: "ab",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spool() moves output past its memory share to a private file, deleted with the answer", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const big = new Uint8Array(300_000).fill(0x78);
    const out = await spool(chunks("head-", big, "-tail"), dir, 1024);
    const err = await spool(chunks(), dir, 1024);
    const [name] = await files(dir);
    assert.ok(name, "a spool file exists");
    assert.equal((await Deno.stat(`${dir}/${name}`)).mode! & 0o777, 0o600);
    let done = 0;
    const body = resultBody({ reason: "exit" }, out, err, () => done++);
    const json = await new Response(body).json();
    assert.equal(json.stdout, `head-${"x".repeat(300_000)}-tail`);
    assert.equal(json.stderr, "");
    assert.equal(done, 1);
    assert.deepEqual(await files(dir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resultBody() decodes characters split between pieces and escapes control bytes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const euro = encoder.encode("€"); // 3 bytes
    const out = await spool(
      chunks(
        euro.subarray(0, 1),
        euro.subarray(1),
        '"\n\0',
        new Uint8Array([0xff]),
      ),
      dir,
      2,
    );
    const body = resultBody({}, out, await spool(chunks(), dir), () => {});
    const json = await new Response(body).json();
    assert.equal(json.stdout, '€"\n\0\uFFFD');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resultBody() cancelled by a client that went away deletes the spool files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = await spool(chunks(new Uint8Array(200_000)), dir, 1024);
    let done = 0;
    const body = resultBody({}, out, out, () => done++);
    const reader = body.getReader();
    await reader.read();
    await reader.cancel();
    assert.equal(done, 1);
    assert.deepEqual(await files(dir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
