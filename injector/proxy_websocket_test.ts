/**
 * WebSockets through the injector: ws:// (absolute-form upgrade) and wss://
 * (upgrade inside a CONNECT tunnel), with the echo guard on server frames
 * when a secret was injected into the upgrade request.
 */

import assert from "node:assert/strict";
import type { NetworkPolicyInput } from "./network_policy.ts";
import {
  concatBytes,
  connectUnix,
  type HttpConn,
  proxyTls,
  sharedTestPki,
  startProxy,
  startUpstream,
  type TestProxy,
  WS,
  wsAccept,
  wsFrame,
  WsReader,
  wsUpgrade,
} from "../tests/kits/injector.ts";

const SECRET = "sk-ws-3e8d1c6b9a2f4057";
const MARKER = "[airlock:redacted]";

interface Env extends AsyncDisposable {
  proxy: TestProxy;
  /** `sec-websocket-extensions` each upgrade carried at the upstream. */
  extensions: (string | null)[];
  /** Upgrade requests the upstreams received. */
  upgrades: number;
}

/**
 * Two Deno.serve echo servers (plain for port 80, TLS for 443): on open they
 * send `auth:<Authorization they received>`, then echo every message.
 */
async function setup(network: NetworkPolicyInput): Promise<Env> {
  const pki = await sharedTestPki();
  const extensions: (string | null)[] = [];
  let upgrades = 0;
  const handler = (request: Request): Response => {
    if (request.headers.get("upgrade") !== "websocket") {
      return new Response("not a websocket", { status: 400 });
    }
    upgrades++;
    extensions.push(request.headers.get("sec-websocket-extensions"));
    const auth = request.headers.get("authorization") ?? "";
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => socket.send(`auth:${auth}`);
    socket.onmessage = (event) => socket.send(event.data);
    socket.onerror = () => {};
    return response;
  };
  const plain = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    handler,
  );
  const secure = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: pki.certPem,
    key: pki.keyPem,
    onListen() {},
  }, handler);
  const proxy = await startProxy({
    network,
    secretValues: { API_TOKEN: SECRET },
    connectTo: [
      `api.example.test:80:127.0.0.1:${plain.addr.port}`,
      `api.example.test:443:127.0.0.1:${secure.addr.port}`,
    ],
    caCerts: [pki.caPem],
  });
  return {
    proxy,
    extensions,
    get upgrades() {
      return upgrades;
    },
    async [Symbol.asyncDispose]() {
      await proxy.close();
      await Promise.all([plain.shutdown(), secure.shutdown()]);
    },
  };
}

const INJECT = (allowInsecure: boolean): NetworkPolicyInput => ({
  allow: {
    "api.example.test": [{
      allowInsecure,
      transform: [{ headers: { Authorization: "Bearer ${secret:API_TOKEN}" } }],
    }],
  },
});

/** Runs the echo conversation on an upgraded connection. */
async function converse(conn: HttpConn): Promise<{ first: string }> {
  const reader = new WsReader(conn.reader);
  const first = await reader.message();
  assert.ok(first);
  assert.equal(first.opcode, WS.text);
  await conn.send(wsFrame(WS.text, "hello, world"));
  const hello = await reader.message();
  assert.equal(hello?.opcode, WS.text);
  assert.equal(hello?.text, "hello, world");
  const binary = crypto.getRandomValues(new Uint8Array(300));
  await conn.send(wsFrame(WS.binary, binary));
  const binaryBack = await reader.message();
  assert.equal(binaryBack?.opcode, WS.binary);
  assert.deepEqual(binaryBack?.data, binary);
  // 64-bit length frames, and a message fragmented by the client.
  const big = "x".repeat(70_000);
  await conn.send(wsFrame(WS.text, big));
  assert.equal((await reader.message())?.text, big);
  await conn.send(
    concatBytes([
      wsFrame(WS.text, "frag", { fin: false }),
      wsFrame(0, "mented", { fin: true }),
    ]),
  );
  assert.equal((await reader.message())?.text, "fragmented");
  // Ping gets a pong back through the relay.
  await conn.send(wsFrame(WS.ping, "are you there"));
  const pong = await reader.frame();
  assert.equal(pong?.opcode, WS.pong);
  assert.equal(new TextDecoder().decode(pong?.payload), "are you there");
  // Close handshake.
  await conn.send(wsFrame(WS.close, new Uint8Array([0x03, 0xe8])));
  const close = await reader.message();
  assert.equal(close?.opcode, WS.close);
  return { first: first.text };
}

Deno.test("websocket ws:// (absolute-form upgrade): the injected secret echoed back arrives as [airlock:redacted]; other messages intact", async () => {
  await using env = await setup(INJECT(true));
  const conn = await connectUnix(env.proxy.path);
  try {
    const { response, key } = await wsUpgrade(
      conn,
      "http://api.example.test/ws",
      "api.example.test",
      [["Authorization", "sandbox-own"]],
    );
    assert.equal(response.status, 101);
    assert.equal(response.get("sec-websocket-accept"), await wsAccept(key));
    const { first } = await converse(conn);
    assert.ok(!first.includes(SECRET), first);
    assert.match(first, /^auth:(Bearer )?\[airlock:redacted\]$/);
  } finally {
    conn.close();
  }
  const upgrade = await env.proxy.waitForEvent((e) => e.kind === "websocket");
  assert.equal(upgrade.scheme, "ws");
  assert.equal(upgrade.status, 101);
  assert.deepEqual(upgrade.injected, ["authorization"]);
  const echo = await env.proxy.waitForEvent((e) => e.kind === "secret-echo");
  assert.equal(echo.scheme, "ws");
  assert.ok((echo.redactions ?? 0) >= 1);
  for (const event of env.proxy.events) {
    assert.ok(!JSON.stringify(event).includes(SECRET));
  }
});

Deno.test("websocket ws:// upgrade with a ws: absolute-form target works too", async () => {
  await using env = await setup({ allow: ["api.example.test"] });
  const conn = await connectUnix(env.proxy.path);
  try {
    const { response } = await wsUpgrade(
      conn,
      "ws://api.example.test/ws",
      "api.example.test",
      [["Authorization", "sandbox-own"]],
    );
    assert.equal(response.status, 101);
    const { first } = await converse(conn);
    // Nothing injected: the sandbox's own header went through unchanged.
    assert.equal(first, "auth:sandbox-own");
  } finally {
    conn.close();
  }
});

Deno.test("websocket wss:// (upgrade inside CONNECT + TLS): echoed secret redacted, messages intact", async () => {
  await using env = await setup(INJECT(false));
  const conn = await proxyTls(env.proxy, "api.example.test");
  try {
    const { response } = await wsUpgrade(conn, "/ws", "api.example.test");
    assert.equal(response.status, 101);
    const { first } = await converse(conn);
    assert.ok(!first.includes(SECRET), first);
    assert.match(first, /^auth:(Bearer )?\[airlock:redacted\]$/);
  } finally {
    conn.close();
  }
  const upgrade = await env.proxy.waitForEvent((e) => e.kind === "websocket");
  assert.equal(upgrade.scheme, "wss");
  assert.equal(upgrade.decision, "allow");
  await env.proxy.waitForEvent((e) => e.kind === "secret-echo");
});

Deno.test("websocket ws:// with an injection rule but no allowInsecure is refused with 403 cleartext-credentials", async () => {
  await using env = await setup(INJECT(false));
  const conn = await connectUnix(env.proxy.path);
  try {
    const { response } = await wsUpgrade(
      conn,
      "http://api.example.test/ws",
      "api.example.test",
    );
    assert.equal(response.status, 403);
    assert.equal(response.get("x-airlock-error"), "cleartext-credentials");
  } finally {
    conn.close();
  }
  assert.equal(env.upgrades, 0);
});

Deno.test("websocket upgrade to a host outside the allowlist is refused with 403", async () => {
  await using env = await setup({ allow: ["other.example.test"] });
  const conn = await connectUnix(env.proxy.path);
  try {
    const { response } = await wsUpgrade(
      conn,
      "http://api.example.test/ws",
      "api.example.test",
    );
    assert.equal(response.status, 403);
    assert.equal(response.get("x-airlock-error"), "blocked-by-policy");
  } finally {
    conn.close();
  }
  assert.equal(env.upgrades, 0);
});

Deno.test("websocket: permessage-deflate offered by the sandbox never reaches the upstream", async () => {
  await using env = await setup(INJECT(false));
  const conn = await proxyTls(env.proxy, "api.example.test");
  try {
    const { response } = await wsUpgrade(conn, "/ws", "api.example.test", [[
      "Sec-WebSocket-Extensions",
      "permessage-deflate; client_max_window_bits",
    ]]);
    assert.equal(response.status, 101);
    assert.equal(response.get("sec-websocket-extensions"), undefined);
    const first = await new WsReader(conn.reader).message();
    assert.match(first?.text ?? "", /^auth:(Bearer )?\[airlock:redacted\]$/);
  } finally {
    conn.close();
  }
  assert.deepEqual(env.extensions, [null]);
});

Deno.test("websocket echo guard: a secret split across continuation frames and inside control frames is redacted", async () => {
  const pki = await sharedTestPki();
  const server = (text: string, fin: boolean, opcode: number = WS.text) =>
    wsFrame(opcode, text, { fin, mask: false });
  await using upstream = startUpstream({
    tls: pki,
    handler: async (request, respond) => {
      const auth = request.get("authorization") ?? "";
      const key = request.get("sec-websocket-key") ?? "";
      await respond.write(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${await wsAccept(key)}\r\n\r\n`,
      );
      const cut = 12;
      await respond.write(server(`split:${auth.slice(0, cut)}`, false));
      await respond.write(server(auth.slice(cut, cut + 5), false, 0));
      await respond.write(server(`${auth.slice(cut + 5)}:end`, true, 0));
      await respond.write(server(`ping ${auth}`, true, WS.ping));
      await respond.write(server("plain message", true));
      await respond.write(
        concatBytes([
          new Uint8Array([0x88, 2 + `bye ${auth}`.length, 0x03, 0xe8]),
          new TextEncoder().encode(`bye ${auth}`),
        ]),
      );
      respond.close();
    },
  });
  await using proxy = await startProxy({
    network: INJECT(false),
    secretValues: { API_TOKEN: SECRET },
    connectTo: [`api.example.test:443:127.0.0.1:${upstream.port}`],
    caCerts: [pki.caPem],
  });
  const conn = await proxyTls(proxy, "api.example.test");
  const frames: string[] = [];
  try {
    const { response } = await wsUpgrade(conn, "/ws", "api.example.test");
    assert.equal(response.status, 101);
    const reader = new WsReader(conn.reader);
    let message = "";
    while (true) {
      const frame = await reader.frame();
      if (frame === null) break;
      const text = new TextDecoder().decode(frame.payload);
      frames.push(`${frame.opcode}:${frame.fin ? 1 : 0}:${text}`);
      if (frame.opcode === WS.text || frame.opcode === 0) message += text;
      if (frame.opcode === WS.close) break;
    }
    assert.match(
      message,
      /^split:(Bearer )?\[airlock:redacted\]:endplain message$/,
    );
  } finally {
    conn.close();
  }
  const all = frames.join("\n");
  assert.ok(!all.includes(SECRET), all);
  assert.ok(!all.includes(SECRET.slice(0, 10)), all);
  assert.ok(
    frames.some((f) => f.startsWith(`${WS.ping}:1:ping ${MARKER}`)),
    all,
  );
  assert.ok(
    frames.some((f) => f.startsWith(`${WS.close}:1:`) && f.includes(MARKER)),
    all,
  );
  const echo = await proxy.waitForEvent((e) => e.kind === "secret-echo");
  assert.ok((echo.redactions ?? 0) >= 3, JSON.stringify(echo));
});
