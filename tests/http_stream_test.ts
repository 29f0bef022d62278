/**
 * The run stream's output encoding over real HTTP on 127.0.0.1: text by
 * default (a character split across the program's writes arrives whole),
 * the exact bytes as base64 with `?binary=1`, and the typed client giving
 * both `text` and `data` either way.
 */

import assert from "node:assert/strict";
import { createApp } from "../http/app.ts";
import { AirlockClient, type RunStreamEvent } from "../http/client.ts";

/** Writes "é" (0xC3 0xA9) in two writes, then an invalid byte, then "ok". */
const SPLIT = `
await Deno.stdout.write(new Uint8Array([0x61, 0xc3]));
await new Promise((r) => setTimeout(r, 50));
await Deno.stdout.write(new Uint8Array([0xa9, 0x0a]));
await new Promise((r) => setTimeout(r, 50));
await Deno.stdout.write(new Uint8Array([0xff, 0x6f, 0x6b]));
console.error("to stderr");
`;

async function withServer(
  fn: (url: string, client: AirlockClient, id: string) => Promise<void>,
): Promise<void> {
  const tmpDir = await Deno.makeTempDir({ prefix: "airlock-stream-test-" });
  await Deno.chmod(tmpDir, 0o755);
  const api = createApp({ tokens: null, sandboxDefaults: { tmpDir } });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    api.app.fetch,
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  const client = new AirlockClient({ baseUrl: url });
  try {
    const { id } = await client.createSandbox({});
    await fn(url, client, id);
  } finally {
    await api.shutdown();
    await server.shutdown();
    await Deno.remove(tmpDir, { recursive: true });
  }
}

/** The `event:` and parsed `data:` of every server-sent event. */
async function rawEvents(
  response: Response,
): Promise<{ event: string; data: Record<string, unknown> }[]> {
  const text = await response.text();
  return text.split("\n\n").filter(Boolean).map((block) => {
    const event = /^event: (.*)$/m.exec(block)?.[1] ?? "";
    const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? "null");
    return { event, data };
  });
}

const output = (events: { event: string; data: Record<string, unknown> }[]) =>
  events.filter((e) => e.event === "stdout").map((e) => e.data);

Deno.test("run stream: stdout and stderr are text by default, a split character arriving whole", async () => {
  await withServer(async (url, _client, id) => {
    const response = await fetch(`${url}/sandboxes/${id}/runs/stream`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ code: SPLIT }),
    });
    assert.equal(response.status, 200);
    const events = await rawEvents(response);
    const chunks = output(events);
    for (const chunk of chunks) {
      assert.deepEqual(Object.keys(chunk), ["text"], JSON.stringify(chunk));
    }
    assert.equal(chunks.map((c) => c.text).join(""), "aé\n\uFFFDok");
    // The character split across writes is never sent in halves.
    assert.ok(chunks.every((c) => !String(c.text).includes("\uFFFD\uFFFD")));
    assert.ok(
      events.some((e) => e.event === "stderr" && e.data.text === "to stderr\n"),
    );
    assert.equal(events.at(-1)?.event, "status");
  });
});

Deno.test("run stream: ?binary=1 sends the exact bytes as base64", async () => {
  await withServer(async (url, _client, id) => {
    const response = await fetch(
      `${url}/sandboxes/${id}/runs/stream?binary=1`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ code: SPLIT }),
      },
    );
    const chunks = output(await rawEvents(response));
    const bytes = chunks.flatMap((c) => {
      assert.deepEqual(Object.keys(c), ["base64"]);
      return [...atob(String(c.base64))].map((ch) => ch.charCodeAt(0));
    });
    assert.deepEqual(
      bytes,
      [0x61, 0xc3, 0xa9, 0x0a, 0xff, 0x6f, 0x6b],
    );
  });
});

Deno.test("AirlockClient.runStream gives text and bytes; binary: true keeps the exact bytes", async () => {
  await withServer(async (_url, client, id) => {
    const collect = async (binary: boolean) => {
      const events: RunStreamEvent[] = [];
      for await (const e of client.runStream(id, { code: SPLIT }, { binary })) {
        events.push(e);
      }
      const out = events.flatMap((e) => e.type === "stdout" ? [e] : []);
      return {
        text: out.map((e) => e.text).join(""),
        bytes: out.flatMap((e) => [...e.data]),
        last: events.at(-1)?.type,
      };
    };
    const text = await collect(false);
    assert.equal(text.text, "aé\n\uFFFDok");
    assert.equal(text.last, "status");
    const exact = await collect(true);
    assert.equal(exact.text, "aé\n\uFFFDok");
    assert.deepEqual(exact.bytes, [0x61, 0xc3, 0xa9, 0x0a, 0xff, 0x6f, 0x6b]);
    // Control: the text form's bytes are UTF-8 of the text, not the
    // program's invalid byte.
    assert.notDeepEqual(text.bytes, exact.bytes);
  });
});
