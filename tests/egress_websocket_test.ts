/**
 * WebSockets from inside real sandboxes: `new WebSocket("wss://...")` goes
 * through the injector (Deno honours HTTPS_PROXY for WebSockets), messages
 * round-trip, the upgrade request carries the injected header, and an
 * upstream that sends the secret back as a message (text, binary, or large
 * enough to span many reads) delivers only the redaction marker.
 */

import assert from "node:assert/strict";
import { Sandbox } from "../mod.ts";
import {
  assertNoBytes,
  assertRefused,
  type Attempt,
  egressEvents,
  lastJson,
  MARKER,
  randomSecret,
  startUpstreams,
  tryEach,
  upstreamPolicy,
} from "./kits/upstreams.ts";

const LIMITS = { timeoutMs: 60_000 };

/**
 * Program snippet: opens `url`, sends each message in turn (waiting for each
 * reply) and resolves to the replies (binary replies decoded as
 * `binary:<text>`).
 */
function wsExpr(url: string, messages: string[]): string {
  return `new Promise((resolve, reject) => {
    const ws = new WebSocket(${JSON.stringify(url)});
    ws.binaryType = "arraybuffer";
    const toSend = ${JSON.stringify(messages)};
    const replies = [];
    ws.onopen = () => ws.send(toSend.shift());
    ws.onmessage = (e) => {
      replies.push(typeof e.data === "string"
        ? e.data
        : "binary:" + new TextDecoder().decode(e.data));
      if (toSend.length > 0) ws.send(toSend.shift());
      else { ws.close(); resolve(replies); }
    };
    ws.onerror = (e) => reject(new Error("websocket error: " + (e.message ?? e.type)));
    ws.onclose = (e) => { if (replies.length === 0) reject(new Error("closed " + e.code)); };
  })`;
}

Deno.test("WebSocket through the injector: messages round-trip and the upgrade request carries the injected header", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  const secret = randomSecret();
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: {
        allow: {
          "api.example.test": [{
            transform: [{
              headers: {
                authorization: "Bearer ${secret:T}",
                "x-injected": "ws",
              },
            }],
          }],
        },
      },
      upstream: upstreamPolicy(ups),
    },
    secrets: { T: secret },
  });
  const result = await sandbox.run({
    code: tryEach({
      ws: wsExpr("wss://api.example.test/ws", ["hello", "wörld ✓", "again"]),
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  assert.deepEqual(out.ws, {
    ok: true,
    value: ["echo:hello", "echo:wörld ✓", "echo:again"],
  }, result.stderr);
  const api = ups.get("api.example.test");
  assert.deepEqual(api.wsMessages, ["hello", "wörld ✓", "again"]);
  assert.equal(api.seen.length, 1);
  assert.equal(api.seen[0]!.websocket, true);
  assert.equal(api.header(0, "authorization"), `Bearer ${secret}`);
  assert.equal(api.header(0, "x-injected"), "ws");
  // Compression would hide echoes from the guard: never negotiated.
  assert.equal(api.header(0, "sec-websocket-extensions"), null);
  const ws = egressEvents(result.audit).filter((e) => e.kind === "websocket");
  assert.equal(ws.length, 1, JSON.stringify(result.audit));
  assert.equal(ws[0]!.scheme, "wss");
  assert.equal(ws[0]!.status, 101);
  assert.equal(ws[0]!.decision, "allow");
  assert.deepEqual(ws[0]!.injected.sort(), ["authorization", "x-injected"]);
  assertNoBytes(result.stdoutBytes, secret, "stdout");
});

Deno.test("WebSocket echo: an upstream that sends the Authorization value back (text, binary, 140 KB) delivers only the marker", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  const secret = randomSecret();
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      scratch: true,
      network: {
        allow: {
          "api.example.test": [{
            transform: [{
              headers: { authorization: "Bearer ${secret:T}" },
            }],
          }],
        },
      },
      upstream: upstreamPolicy(ups),
    },
    secrets: { T: secret },
  });
  const result = await sandbox.run({
    code: `const replies = await ${
      wsExpr("wss://api.example.test/ws", [
        "auth",
        "auth-binary",
        "auth-big",
        "still-open",
      ])
    };
      await Deno.writeTextFile("/scratch/replies.json", JSON.stringify(replies));
      console.error(replies[0]);
      console.log(JSON.stringify(replies.map((r) => r.length > 1000
        ? { big: r.length, markers: r.split(${
      JSON.stringify(MARKER)
    }).length - 1, rest: r.replaceAll("x", "").replaceAll(${
      JSON.stringify(MARKER)
    }, "") }
        : r)));`,
  });
  assert.equal(result.exitCode, 0, result.stderr);
  const replies = lastJson<unknown[]>(result);
  assert.equal(replies[0], MARKER);
  assert.equal(replies[1], `binary:${MARKER}`);
  assert.deepEqual(replies[2], {
    big: 140_000 + 2 * MARKER.length,
    markers: 2,
    rest: "",
  });
  assert.equal(replies[3], "echo:still-open", "the stream stayed valid");
  assert.equal(
    ups.get("api.example.test").header(0, "authorization"),
    `Bearer ${secret}`,
  );
  assertNoBytes(result.stdoutBytes, secret, "stdout");
  assertNoBytes(result.stderrBytes, secret, "stderr");
  const saved = await Deno.readFile(`${sandbox.scratchPath}/replies.json`);
  assertNoBytes(saved, secret, "scratch/replies.json");
  const echo = egressEvents(result.audit).filter((e) =>
    e.kind === "secret-echo"
  );
  assert.equal(echo.length, 1, JSON.stringify(result.audit));
  assert.ok((echo[0]!.redactions ?? 0) >= 4);
});

Deno.test("WebSocket to a refused host: not in the allowlist (Deno) and the wildcard apex (injector); the upstream sees nothing", async () => {
  await using ups = await startUpstreams([
    "other.example.test",
    "wild.example.test",
  ]);
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: { allow: ["*.wild.example.test"] },
      upstream: upstreamPolicy(ups),
    },
  });
  const result = await sandbox.run({
    code: tryEach({
      other: wsExpr("wss://other.example.test/ws", ["hi"]),
      apex: wsExpr("wss://wild.example.test/ws", ["hi"]),
      plain: wsExpr("ws://wild.example.test/ws", ["hi"]),
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  assertRefused(out.other, "other.example.test", 443, result.audit);
  assert.equal(
    assertRefused(out.apex, "wild.example.test", 443, result.audit),
    "injector",
  );
  assert.equal(
    assertRefused(out.plain, "wild.example.test", 80, result.audit),
    "injector",
  );
  assert.deepEqual(ups.allSeen(), []);
});
