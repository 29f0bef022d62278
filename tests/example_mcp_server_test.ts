/**
 * examples/mcp_server as a client sees it: the server is a subprocess
 * (`deno run -A --config deno.json examples/mcp_server/main.ts`) spoken to
 * in newline-delimited JSON-RPC over its stdin and stdout.
 */

import assert from "node:assert/strict";
import {
  anyAlive,
  processesMentioning,
  startedRun,
  startedRunDirs,
} from "./kits/sandbox_processes.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = `${ROOT}examples/mcp_server/main.ts`;

interface RpcResponse {
  jsonrpc: "2.0";
  id: string | number | null;
  result?: Record<string, unknown>;
  error?: { code: number; message: string };
}

/** The server as a subprocess, with a JSON-RPC client on its pipes. */
function spawnServer(tmpDir: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, MAIN],
    cwd: ROOT,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", TMPDIR: tmpDir },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const guard = setTimeout(() => child.kill("SIGKILL"), 120_000);
  const stdin = child.stdin.getWriter();
  const encoder = new TextEncoder();
  const waiting = new Map<string | number, (r: RpcResponse) => void>();
  const unmatched: RpcResponse[] = [];
  const stdoutLines: string[] = [];
  let nextId = 1;

  const reading = (async () => {
    let buffer = "";
    for await (
      const chunk of child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      buffer += chunk;
      let at: number;
      while ((at = buffer.indexOf("\n")) !== -1) {
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 1);
        stdoutLines.push(line);
        const message = JSON.parse(line) as RpcResponse;
        const resolve = message.id === null
          ? undefined
          : waiting.get(message.id);
        if (resolve) {
          waiting.delete(message.id!);
          resolve(message);
        } else {
          unmatched.push(message);
        }
      }
    }
    assert.equal(buffer, "", "stdout ends with a complete line");
  })();
  const stderr = new Response(child.stderr).text();

  return {
    child,
    unmatched,
    /** The id of the last request sent. */
    get lastId(): number {
      return nextId - 1;
    },
    stdoutLines,
    /** Sends raw text (a newline is added). */
    async send(text: string): Promise<void> {
      await stdin.write(encoder.encode(text + "\n"));
    },
    /** Sends a request and waits for its response. */
    async request(
      method: string,
      params?: Record<string, unknown>,
    ): Promise<RpcResponse> {
      const id = nextId++;
      const answered = new Promise<RpcResponse>((resolve) =>
        waiting.set(id, resolve)
      );
      await this.send(
        JSON.stringify({ jsonrpc: "2.0", id, method, params }),
      );
      return await answered;
    },
    /** Waits for the next response without a matching request. */
    async nextUnmatched(): Promise<RpcResponse> {
      const deadline = Date.now() + 30_000;
      while (unmatched.length === 0) {
        assert.ok(Date.now() < deadline, "no response arrived");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return unmatched.shift()!;
    },
    /** Closes stdin and waits for the exit. */
    async finish(): Promise<{ code: number; stderr: string }> {
      clearTimeout(guard);
      await stdin.close().catch(() => {});
      const status = await child.status;
      await reading;
      return { code: status.code, stderr: await stderr };
    },
  };
}

Deno.test("mcp_server: initialize, tools/list, run_code with a denied read, errors, and a clean exit when stdin closes", async () => {
  const parent = await Deno.makeTempDir({ prefix: "airlock-example-mcp-" });
  await Deno.chmod(parent, 0o755);
  const server = spawnServer(parent);
  try {
    // initialize: the client's version is accepted; tools are offered.
    const init = await server.request("initialize", {
      protocolVersion: "2025-06-18",
      capabilities: {},
      clientInfo: { name: "airlock-test", version: "0.0.0" },
    });
    assert.equal(init.error, undefined);
    assert.equal(init.result?.protocolVersion, "2025-06-18");
    assert.deepEqual(init.result?.capabilities, {
      tools: { listChanged: false },
    });
    assert.equal(
      (init.result?.serverInfo as { name: string }).name,
      "airlock",
    );
    await server.send(
      JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
    );

    // The sandbox exists now: its workspace is under our TMPDIR.
    const workspaces = () =>
      [...Deno.readDirSync(parent)].map((e) => e.name).filter((n) =>
        n.startsWith("airlock-")
      );
    assert.equal(workspaces().length, 1);
    assert.ok(processesMentioning(parent).length > 0, "the watchdog runs");

    // tools/list: run_code with its input schema.
    const list = await server.request("tools/list");
    const tools = list.result?.tools as {
      name: string;
      inputSchema: {
        required: string[];
        properties: Record<string, { type: string }>;
      };
    }[];
    assert.equal(tools.length, 1);
    assert.equal(tools[0]!.name, "run_code");
    assert.deepEqual(tools[0]!.inputSchema.required, ["code"]);
    assert.equal(tools[0]!.inputSchema.properties.code?.type, "string");
    assert.equal(tools[0]!.inputSchema.properties.timeoutMs?.type, "integer");

    // run_code: prints, and a read of /etc/passwd is refused.
    const call = await server.request("tools/call", {
      name: "run_code",
      arguments: {
        code: `console.log("hello from mcp", 6 * 7);
try {
  Deno.readTextFileSync("/etc/passwd");
  console.log("passwd READ");
} catch (error) {
  console.log("passwd refused:", error.name);
}
await Deno.writeTextFile("kept.txt", "still here");`,
        timeoutMs: 20_000,
      },
    });
    assert.equal(call.error, undefined, JSON.stringify(call));
    const result = call.result as {
      content: { type: string; text: string }[];
      structuredContent: {
        exitCode: number;
        reason: string;
        stdout: string;
        denied: string[];
      };
      isError: boolean;
    };
    assert.equal(result.isError, false);
    assert.equal(result.structuredContent.exitCode, 0);
    assert.equal(
      result.structuredContent.stdout,
      "hello from mcp 42\npasswd refused: NotCapable\n",
    );
    assert.ok(
      result.structuredContent.denied.some((d) =>
        d.startsWith("read /etc/passwd")
      ),
      JSON.stringify(result.structuredContent.denied),
    );
    assert.equal(result.content[0]?.type, "text");
    assert.deepEqual(
      JSON.parse(result.content[0]!.text),
      result.structuredContent,
    );

    // An uncaught denial is a tool error; /scratch persisted between calls.
    const second = await server.request("tools/call", {
      name: "run_code",
      arguments: {
        code: `console.log(await Deno.readTextFile("kept.txt"));
Deno.readTextFileSync("/etc/passwd");`,
      },
    });
    const failed = second.result as typeof result;
    assert.equal(failed.isError, true);
    assert.equal(failed.structuredContent.exitCode, 1);
    assert.equal(failed.structuredContent.stdout, "still here\n");
    assert.match(failed.content[0]!.text, /NotCapable/);

    // Code that does not compile: a tool error the model can read.
    const broken = await server.request("tools/call", {
      name: "run_code",
      arguments: { code: "const = ;" },
    });
    const brokenResult = broken.result as typeof result;
    assert.equal(brokenResult.isError, true);
    assert.match(brokenResult.content[0]!.text, /Cannot bundle the program/);

    // Bad arguments are tool errors too; an unknown tool is -32602.
    const noCode = await server.request("tools/call", {
      name: "run_code",
      arguments: { source: "1" },
    });
    assert.equal((noCode.result as typeof result).isError, true);
    const unknownTool = await server.request("tools/call", {
      name: "rm_rf",
      arguments: {},
    });
    assert.equal(unknownTool.error?.code, -32602);

    // ping.
    assert.deepEqual((await server.request("ping")).result, {});

    // Unknown method: -32601.
    const unknown = await server.request("resources/list");
    assert.equal(unknown.error?.code, -32601);
    assert.match(unknown.error!.message, /resources\/list/);

    // Malformed JSON: -32700 with id null, and the server keeps serving.
    await server.send('{"jsonrpc": "2.0", "id": 99, "method": ');
    const parse = await server.nextUnmatched();
    assert.equal(parse.id, null);
    assert.equal(parse.error?.code, -32700);
    // A message that is JSON but not a request: -32600.
    await server.send(JSON.stringify({ jsonrpc: "2.0", id: "x", params: 1 }));
    const invalid = await server.nextUnmatched();
    assert.equal(invalid.id, "x");
    assert.equal(invalid.error?.code, -32600);
    assert.deepEqual((await server.request("ping")).result, {});
    const after = await server.request("tools/call", {
      name: "run_code",
      arguments: { code: "console.log('still serving')" },
    });
    assert.equal(
      (after.result as typeof result).structuredContent.stdout,
      "still serving\n",
    );

    // Shut down by closing stdin: exit 0, nothing left behind.
    const { code, stderr } = await server.finish();
    assert.equal(code, 0, stderr);
    assert.match(stderr, /sandbox removed/);
    // Every stdout line was a JSON-RPC message (nothing else on stdout).
    for (const line of server.stdoutLines) {
      assert.equal(JSON.parse(line).jsonrpc, "2.0");
    }
    assert.equal(server.unmatched.length, 0);
    assert.deepEqual(workspaces(), []);
    const deadline = Date.now() + 30_000;
    while (processesMentioning(parent).length > 0) {
      assert.ok(
        Date.now() < deadline,
        `still running: ${processesMentioning(parent).join(", ")}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    try {
      server.child.kill("SIGKILL");
    } catch { /* exited */ }
    await server.finish().catch(() => {});
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("mcp_server: a ping is answered during a run, a cancelled call gets no response, and closing stdin mid-run kills the run", async () => {
  const parent = await Deno.makeTempDir({ prefix: "airlock-example-mcp-" });
  await Deno.chmod(parent, 0o755);
  const server = spawnServer(parent);
  const forever =
    `console.log("started"); while (true) { await new Promise((r) => setTimeout(r, 50)); }`;
  try {
    await server.request("initialize", {
      protocolVersion: "2024-11-05",
      capabilities: {},
      clientInfo: { name: "airlock-test", version: "0.0.0" },
    });
    // A run that never ends, cancelled by the client: no response for it.
    const cancelled = server.request("tools/call", {
      name: "run_code",
      arguments: { code: forever },
    });
    const cancelledId = server.lastId;
    let answered = false;
    cancelled.then(() => (answered = true));
    // One deadline for the cancel and the second run's start (each can take
    // seconds on a loaded machine).
    const deadline = Date.now() + 60_000;
    const first = await startedRun(parent);
    // Requests are served while the run is live.
    assert.deepEqual((await server.request("ping")).result, {});
    await server.send(JSON.stringify({
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: cancelledId, reason: "user stopped it" },
    }));
    while (anyAlive(first.pids)) {
      assert.ok(Date.now() < deadline, "the cancelled run is still alive");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.deepEqual((await server.request("ping")).result, {});
    assert.equal(answered, false, "a cancelled request gets no response");

    // Another endless run; closing stdin ends it and the server.
    const live = server.request("tools/call", {
      name: "run_code",
      arguments: { code: forever },
    });
    while (true) {
      const dirs = startedRunDirs(parent).filter((d) => d !== first.dir);
      if (dirs.some((d) => processesMentioning(`${d}/`).length > 0)) break;
      assert.ok(Date.now() < deadline, "the second run did not start");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const { code, stderr } = await server.finish();
    assert.equal(code, 0, stderr);
    // The live run was killed and its result still sent.
    const killed = (await live).result as {
      structuredContent: { reason: string };
    };
    assert.equal(killed.structuredContent.reason, "killed");
    assert.equal(answered, false, "no late response for the cancelled call");
    assert.deepEqual([...Deno.readDirSync(parent)], []);
    const end = Date.now() + 30_000;
    while (processesMentioning(parent).length > 0) {
      assert.ok(Date.now() < end, "sandbox processes left behind");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    try {
      server.child.kill("SIGKILL");
    } catch { /* exited */ }
    await server.finish().catch(() => {});
    await Deno.remove(parent, { recursive: true });
  }
});
