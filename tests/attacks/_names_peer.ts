/**
 * The upstream side of the names attacks' namespace (`_dns_namespace.ts`):
 * run in its own network namespace, it waits for the veth end `v1` to be
 * moved in, takes 10.77.0.1 ("the host the name means") and 10.77.0.2 ("the
 * host a search domain would reach"), answers HTTP on port 80 of each, and
 * lists what each saw at `/__seen`. It exits when its stdin closes (or after
 * two minutes, whatever happens to its parent).
 *
 * @module
 */

const ADDRESSES = ["10.77.0.1", "10.77.0.2"];

async function sh(command: string): Promise<boolean> {
  const out = await new Deno.Command("sh", {
    args: ["-c", command],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}

setTimeout(() => Deno.exit(0), 120_000);
const deadline = Date.now() + 30_000;
while (!(await sh("ip link show v1"))) {
  if (Date.now() > deadline) {
    console.error("Cannot start the peer: interface v1 never arrived");
    Deno.exit(1);
  }
  await new Promise((resolve) => setTimeout(resolve, 10));
}
const configured = await sh(
  [
    "ip link set lo up",
    ...ADDRESSES.map((a) => `ip addr add ${a}/24 dev v1`),
    "ip link set v1 up",
  ].join(" && "),
);
if (!configured) {
  console.error("Cannot start the peer: ip addr failed");
  Deno.exit(1);
}
const seen: Record<string, { host: string | null; path: string }[]> = {};
for (const address of ADDRESSES) {
  seen[address] = [];
  Deno.serve({ hostname: address, port: 80, onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/__seen") return Response.json(seen[address]);
    seen[address]!.push({ host: request.headers.get("host"), path });
    return new Response(`served by ${address}\n`);
  });
}
console.log("ready");
await new Response(Deno.stdin.readable).arrayBuffer();
Deno.exit(0);
