/**
 * Runs inside the names attacks' namespace (see `_dns_namespace.ts`): reads
 * its task from stdin, starts the DNS server, resolves names with
 * airlock's `systemResolver` (and, as the control, with a plain relative
 * `getaddrinfo`), optionally runs a real sandbox whose program asks the
 * injector for those names, and prints one JSON report line.
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import { systemResolver } from "../../injector/resolver.ts";
import { Sandbox } from "../../mod.ts";
import type { PolicyInput } from "../../mod.ts";
import { startDnsStub, type Zone } from "./_dns_namespace.ts";

interface Task {
  zone: Zone;
  /** Names for systemResolver. */
  names: string[];
  /** Names for a relative getaddrinfo (what the injector used to do). */
  control: string[];
  sandbox?: { policy: PolicyInput; code: string };
}

// The harness's own requests below must not go through a proxy variable.
for (const name of ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]) {
  Deno.env.delete(name);
}

const task: Task = JSON.parse(await new Response(Deno.stdin.readable).text());
const dns = await startDnsStub(task.zone);
const report: Record<string, unknown> = {};

const errorText = (e: unknown) => `error: ${(e as Error).message}`;

const resolved: Record<string, unknown> = {};
for (const name of task.names) {
  const before = dns.queries.length;
  let addresses: unknown;
  try {
    addresses = await systemResolver(name);
  } catch (error) {
    addresses = errorText(error);
  }
  resolved[name] = { addresses, queries: dns.queries.slice(before) };
}
report.resolver = resolved;

const control: Record<string, unknown> = {};
for (const name of task.control) {
  const before = dns.queries.length;
  let addresses: unknown;
  try {
    addresses = (await lookup(name, { all: true })).map((a) => a.address);
  } catch (error) {
    addresses = errorText(error);
  }
  control[name] = { addresses, queries: dns.queries.slice(before) };
}
report.control = control;

async function sh(command: string): Promise<void> {
  const out = await new Deno.Command("sh", { args: ["-c", command] }).output();
  if (!out.success) {
    throw new Error(
      `Cannot run '${command}': ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

async function seenBy(address: string): Promise<unknown> {
  const response = await fetch(`http://${address}/__seen`);
  return await response.json();
}

if (task.sandbox) {
  await sh(
    "ip link add v0 type veth peer name v1 && ip addr add 10.77.0.254/24 dev v0 && ip link set v0 up",
  );
  const peer = new Deno.Command("unshare", {
    args: [
      "--net",
      "--fork",
      "--kill-child",
      "--",
      Deno.execPath(),
      "run",
      "-A",
      new URL("./_names_peer.ts", import.meta.url).pathname,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    await sh(`ip link set v1 netns ${peer.pid}`);
    const reader = peer.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("Cannot start the peer: it exited");
      text += value;
    }
    reader.releaseLock();
    peer.stdout.cancel().catch(() => {});
    await using sandbox = await Sandbox.create({ policy: task.sandbox.policy });
    const before = dns.queries.length;
    const result = await sandbox.run({ code: task.sandbox.code });
    report.sandbox = {
      reason: result.reason,
      exitCode: result.exitCode,
      stdout: result.stdout,
      stderr: result.stderr.slice(0, 4000),
      egress: sandbox.auditTrail.filter((e) => e.source === "injector"),
      queries: dns.queries.slice(before),
      seen: {
        "10.77.0.1": await seenBy("10.77.0.1"),
        "10.77.0.2": await seenBy("10.77.0.2"),
      },
    };
    // The harness stays up: a fresh sandbox runs a trivial program.
    await using fresh = await Sandbox.create();
    const health = await fresh.run({ code: "console.log(6 * 7);" });
    report.health = { reason: health.reason, stdout: health.stdout };
  } finally {
    const writer = peer.stdin.getWriter();
    await writer.close().catch(() => {});
    await peer.status;
  }
}

await dns.close();
console.log(JSON.stringify(report));
