/**
 * A fleet on this machine, for tests/cluster_test.ts and bench/capacity.ts:
 * `airlock serve` nodes as separate processes (each its own config and
 * workspace directory) and HAProxy in front of them with the config of
 * deploy/haproxy.ts, all on loopback.
 */

import assert from "node:assert/strict";
import { haproxyConfig } from "../../deploy/haproxy.ts";
import { NODE_V8_FLAGS } from "../../deploy/node_flags.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** Where HAProxy is installed, if it is. */
export const HAPROXY: string | undefined = [
  "/usr/sbin/haproxy",
  "/usr/bin/haproxy",
].find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});

/** Polls `check` until it returns a value other than undefined/false. */
export async function until<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 45_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (true) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Whether a promise has settled, without waiting for it. */
export function settled(promise: Promise<unknown>): Promise<boolean> {
  return Promise.race([
    promise.then(() => true, () => true),
    Promise.resolve(false),
  ]);
}

/** One `airlock serve` process. */
export interface FleetNode {
  name: string;
  /** `http://127.0.0.1:<port>` */
  url: string;
  child: Deno.ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  /** Its exit, once its output has been read to the end. */
  status: Promise<Deno.CommandStatus>;
}

/**
 * Starts a node with `config` (its JSON) written beside its own workspace
 * directory under `dir`; resolves once it listens.
 */
export async function startNode(
  dir: string,
  name: string,
  config: Record<string, unknown>,
): Promise<FleetNode> {
  const tmp = `${dir}/${name}`;
  await Deno.mkdir(tmp, { mode: 0o755 });
  await Deno.chmod(tmp, 0o755);
  const file = `${dir}/${name}.jsonc`;
  await Deno.writeTextFile(
    file,
    JSON.stringify({ ...config, node: { name, ...config.node as object } }),
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-no-legacy-abort",
      "-A",
      "--no-prompt",
      // As the node image runs it (deploy/node_flags.ts).
      `--v8-flags=${NODE_V8_FLAGS}`,
      `${ROOT}http/serve.ts`,
      "--config",
      file,
      "--port",
      "0",
    ],
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", TMPDIR: tmp },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let printed = "";
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      printed += text;
    }
  };
  const reading = Promise.all([read(child.stdout), read(child.stderr)]);
  const status = reading.then(() => child.status);
  const url = await until(`node ${name} listening`, async () => {
    const port = printed.match(/listening on http:\/\/127\.0\.0\.1:(\d+)\//)
      ?.[1];
    if (port) return `http://127.0.0.1:${port}`;
    if (await settled(status)) assert.fail(`node ${name} exited: ${printed}`);
    return undefined;
  }, 60_000).catch((error) => {
    child.kill("SIGKILL");
    throw new Error(`${error.message}; it printed: ${printed}`);
  });
  return { name, url, child, output: () => printed, status };
}

/** HAProxy in front of some nodes. */
export interface Router {
  url: string;
  child: Deno.ChildProcess;
  /** Stops it; resolves to what it logged. */
  stop(): Promise<string>;
}

/** A free loopback port (closed again: HAProxy binds it next). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/** Starts HAProxy routing to `nodes` by sandbox id (deploy/haproxy.ts). */
export async function startRouter(
  dir: string,
  nodes: readonly FleetNode[],
  options: { log?: boolean } = {},
): Promise<Router> {
  assert.ok(HAPROXY, "Cannot start the router: install haproxy");
  const port = freePort();
  const file = `${dir}/haproxy-${port}.cfg`;
  await Deno.writeTextFile(
    file,
    haproxyConfig({
      bind: `127.0.0.1:${port}`,
      nodes: nodes.map((node) => ({
        name: node.name,
        address: node.url.replace("http://", ""),
      })),
      checkIntervalMs: 250,
      ...(options.log ? { log: true } : {}),
    }),
  );
  const child = new Deno.Command(HAPROXY, {
    args: ["-db", "-f", file],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log = (async () => {
    let text = "";
    for await (
      const chunk of child.stderr.pipeThrough(new TextDecoderStream())
    ) text += chunk;
    return text;
  })();
  const url = `http://127.0.0.1:${port}`;
  await until(
    "the router listens",
    () =>
      fetch(`${url}/version`).then(async (r) => {
        await r.body?.cancel();
        return true;
      }, () => false),
  );
  return {
    url,
    child,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      await child.status;
      return await log;
    },
  };
}

/** Stops nodes at once (SIGINT) and waits for them. */
export async function stopNodes(nodes: Iterable<FleetNode>): Promise<void> {
  await Promise.all([...nodes].map(async (node) => {
    try {
      node.child.kill("SIGINT");
    } catch { /* exited */ }
    await node.status;
  }));
}
