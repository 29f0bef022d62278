/**
 * Network isolation: with the default "deny-all" policy the program reaches
 * no host listener (TCP or unix), no routable address and no vsock peer, and
 * its network namespace holds only `lo`. Proven through the public API and,
 * with Deno allowing everything, through the namespace and seccomp alone.
 *
 * No packet leaves the machine: 10.255.255.1 fails inside the empty network
 * namespace before anything is sent.
 */

import assert from "node:assert/strict";
import { Sandbox } from "../mod.ts";
import { runNamespaceOnly } from "./kits/namespace_only.ts";

/** A host listener that counts the connections it receives. */
class CountingListener {
  accepted = 0;
  #listener: Deno.Listener;
  #loop: Promise<void>;
  #onClose: () => Promise<void>;

  constructor(listener: Deno.Listener, onClose = () => Promise.resolve()) {
    this.#listener = listener;
    this.#onClose = onClose;
    this.#loop = (async () => {
      try {
        for await (const conn of listener) {
          this.accepted++;
          conn.close();
        }
      } catch {
        // listener closed
      }
    })();
  }

  async [Symbol.asyncDispose]() {
    this.#listener.close();
    await this.#loop;
    await this.#onClose();
  }
}

function tcpListener(): CountingListener & { port: number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  return Object.assign(new CountingListener(listener), { port });
}

/**
 * A program that awaits each expression (a connection attempt) and prints a
 * JSON map from attempt name to "CONNECTED" or the error.
 */
function tryEach(attempts: Record<string, string>): string {
  const lines = Object.entries(attempts).map(([name, expr]) => {
    const key = JSON.stringify(name);
    return `try { const c = await (${expr}); out[${key}] = "CONNECTED"; try { c.close?.(); } catch {} } catch (e) { out[${key}] = e.name + ": " + e.message; }`;
  });
  return `const out = {};\n${
    lines.join("\n")
  }\nconsole.log(JSON.stringify(out));`;
}

function outcomes(stdout: string, stderr: string): Record<string, string> {
  const line = stdout.trim().split("\n").at(-1);
  assert.ok(line, `no output; stderr: ${stderr}`);
  return JSON.parse(line);
}

function assertAllFailed(
  out: Record<string, string>,
  expected: string[],
): void {
  assert.deepEqual(Object.keys(out).sort(), [...expected].sort());
  for (const [name, outcome] of Object.entries(out)) {
    assert.ok(!outcome.startsWith("CONNECTED"), `${name} connected`);
  }
}

async function runSandboxed(code: string) {
  await using sandbox = await Sandbox.create({
    policy: { limits: { timeoutMs: 15_000 } },
  });
  return await sandbox.run({ code });
}

function loopbackAttempts(port: number): Record<string, string> {
  return {
    "Deno.connect": `Deno.connect({ hostname: "127.0.0.1", port: ${port} })`,
    "Deno.connect localhost":
      `Deno.connect({ hostname: "localhost", port: ${port} })`,
    "fetch": `fetch("http://127.0.0.1:${port}/")`,
    "node:net": `new Promise(async (resolve, reject) => {
      const net = await import("node:net");
      const s = net.connect(${port}, "127.0.0.1");
      s.on("connect", () => resolve(s.destroy()));
      s.on("error", reject);
    })`,
  };
}

Deno.test("sandbox cannot connect to a TCP port the harness listens on at 127.0.0.1", async () => {
  await using host = tcpListener();
  const attempts = loopbackAttempts(host.port);
  const result = await runSandboxed(tryEach(attempts));
  assertAllFailed(
    outcomes(result.stdout, result.stderr),
    Object.keys(attempts),
  );
  assert.equal(host.accepted, 0);
});

Deno.test("namespace alone: sandbox cannot connect to a TCP port the harness listens on", async () => {
  await using host = tcpListener();
  const attempts = loopbackAttempts(host.port);
  const result = await runNamespaceOnly(tryEach(attempts));
  const out = outcomes(result.stdout, result.stderr);
  assertAllFailed(out, Object.keys(attempts));
  // The sandbox's own loopback answers: nobody listens there.
  assert.match(out["Deno.connect"]!, /ConnectionRefused/);
  assert.equal(host.accepted, 0);
});

const ROUTABLE = {
  "Deno.connect 10.255.255.1:9":
    `Deno.connect({ hostname: "10.255.255.1", port: 9 })`,
};

Deno.test("sandbox cannot connect to a routable address", async () => {
  const result = await runSandboxed(tryEach(ROUTABLE));
  assert.equal(result.reason, "exit", "failed at once, not at the timeout");
  assertAllFailed(
    outcomes(result.stdout, result.stderr),
    Object.keys(ROUTABLE),
  );
});

Deno.test("namespace alone: a routable address is unreachable (no route in the namespace)", async () => {
  const result = await runNamespaceOnly(tryEach(ROUTABLE), {
    limits: { timeoutMs: 15_000 },
  });
  assert.equal(result.code, 0, "failed at once, not at the timeout");
  const out = outcomes(result.stdout, result.stderr);
  assert.match(out["Deno.connect 10.255.255.1:9"]!, /NetworkUnreachable/);
});

const VSOCK = {
  "vsock cid 2": `Deno.connect({ transport: "vsock", cid: 2, port: 1 })`,
};

Deno.test("sandbox cannot connect to the hypervisor over vsock", async () => {
  // Deno refuses vsock without --unstable-vsock: it ends the program at the
  // call instead of throwing, so nothing after the attempt runs.
  const result = await runSandboxed(tryEach(VSOCK));
  assert.ok(!result.stdout.includes("CONNECTED"), result.stdout);
  assert.notEqual(result.exitCode, 0);
  assert.match(result.stderr, /unstable-vsock/);
});

Deno.test("seccomp alone: socket(AF_VSOCK) is refused even with Deno allowing it", async () => {
  // AF_VSOCK is not isolated by network namespaces; only the filter stops it.
  const result = await runNamespaceOnly(tryEach(VSOCK), {
    denoFlags: ["--unstable-vsock"],
  });
  const out = outcomes(result.stdout, result.stderr);
  assert.match(out["vsock cid 2"]!, /os error 97/, "EAFNOSUPPORT from seccomp");
});

/** Listens on a unix socket in a fresh, world-accessible dir under /tmp. */
async function unixListener(): Promise<
  CountingListener & { path: string; dir: string }
> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-test-sock-" });
  await Deno.chmod(dir, 0o777);
  const path = `${dir}/harness.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  await Deno.chmod(path, 0o777);
  const counting = new CountingListener(
    listener,
    () => Deno.remove(dir, { recursive: true }),
  );
  return Object.assign(counting, { path, dir });
}

function unixAttempt(path: string): Record<string, string> {
  return {
    "unix socket": `Deno.connect({ transport: "unix", path: ${
      JSON.stringify(path)
    } })`,
  };
}

Deno.test("sandbox cannot connect to a unix socket the harness listens on in /tmp", async () => {
  await using host = await unixListener();
  const attempts = unixAttempt(host.path);
  const result = await runSandboxed(tryEach(attempts));
  assertAllFailed(
    outcomes(result.stdout, result.stderr),
    Object.keys(attempts),
  );
  assert.equal(host.accepted, 0);
});

Deno.test("namespace alone: a harness unix socket in /tmp does not exist inside", async () => {
  await using host = await unixListener();
  const attempts = unixAttempt(host.path);
  const result = await runNamespaceOnly(tryEach(attempts));
  const out = outcomes(result.stdout, result.stderr);
  assert.match(out["unix socket"]!, /NotFound/);
  assert.equal(host.accepted, 0);
});

Deno.test("sandbox cannot connect to a unix socket inside a read-only input directory", async () => {
  // A read-only bind mount does not stop connect(2): only Deno's read-only
  // grant on inputs does (connecting needs write access).
  await using host = await unixListener();
  await using sandbox = await Sandbox.create({
    policy: { inputs: [`${host.dir}:/inputs/sock`] },
  });
  const attempts = unixAttempt("/inputs/sock/harness.sock");
  const result = await sandbox.run({ code: tryEach(attempts) });
  assertAllFailed(
    outcomes(result.stdout, result.stderr),
    Object.keys(attempts),
  );
  assert.equal(host.accepted, 0);
});

Deno.test("namespace alone: the network namespace holds only lo", async () => {
  const result = await runNamespaceOnly(`
    const dev = Deno.readTextFileSync("/proc/net/dev").split("\\n").slice(2)
      .map((l) => l.split(":")[0].trim()).filter(Boolean);
    const ifaces = [...new Set(Deno.networkInterfaces().map((i) => i.name))];
    console.log(JSON.stringify({ dev, ifaces }));
  `);
  const { dev, ifaces } = outcomes(result.stdout, result.stderr) as unknown as {
    dev: string[];
    ifaces: string[];
  };
  assert.deepEqual(dev, ["lo"]);
  assert.ok(ifaces.every((name) => name === "lo"), `interfaces: ${ifaces}`);
});

Deno.test("sandbox sees only its own loopback in the network interfaces, and none when the policy refuses system information", async () => {
  // Harmless system information is answered by default (issue 14): the
  // interfaces are the sandbox's namespace's, so the host's addresses, which
  // would tell the program where it runs, never show.
  const listed = await runSandboxed(
    `console.log(JSON.stringify(Deno.networkInterfaces().map((i) => [i.name, i.address])));`,
  );
  assert.equal(listed.reason, "exit", listed.stderr);
  const interfaces = JSON.parse(listed.stdout.trim()) as [string, string][];
  assert.ok(interfaces.length > 0, listed.stdout);
  for (const [name, address] of interfaces) {
    assert.equal(name, "lo", listed.stdout);
    assert.match(address, /^(127\.0\.0\.1|::1)$/, listed.stdout);
  }
  // Control: with system: "deny" the same call is refused.
  await using sandbox = await Sandbox.create({
    policy: { limits: { timeoutMs: 15_000 }, system: "deny" },
  });
  const refused = await sandbox.run({
    code: tryEach({ "networkInterfaces": `Deno.networkInterfaces()` }),
  });
  assertAllFailed(outcomes(refused.stdout, refused.stderr), [
    "networkInterfaces",
  ]);
  assert.match(
    outcomes(refused.stdout, refused.stderr)["networkInterfaces"]!,
    /NotCapable/,
  );
});
