/**
 * A resolver world the test controls: a private mount and network namespace
 * whose `/etc/resolv.conf` and `/etc/hosts` are the test's files, a tiny DNS
 * server on its 127.0.0.1:53, and (for end-to-end runs) a peer namespace
 * behind a veth pair whose addresses are not the harness's own.
 *
 * The names attacks (`names_test.ts`) use it to show that search domains
 * (`search` and `ndots:5`, as in every Kubernetes pod) never turn an allowed
 * name into another host: the DNS server logs every name it is asked, and
 * answers the search-domain spelling of a name with a different address.
 *
 * Nothing here touches the host's own files or interfaces: the bind mounts
 * and interfaces live and die with the namespace's processes.
 *
 * @module
 */

import dgram from "node:dgram";

/** A DNS zone: fully qualified names (trailing dot) to IPv4 addresses. */
export type Zone = Readonly<Record<string, readonly string[]>>;

/** A running DNS server and the names it was asked. */
export interface DnsStub {
  /** Every question, as `TYPE name.` (`A api.example.com.`), in order. */
  readonly queries: string[];
  /** Stops the server. */
  close(): Promise<void>;
}

const TYPES: Record<number, string> = { 1: "A", 28: "AAAA", 5: "CNAME" };

/**
 * Starts a UDP DNS server answering A questions from `zone` (case
 * insensitive), NXDOMAIN for names not in it, and an empty answer for other
 * types of a known name.
 *
 * @param zone Names (with trailing dot) and their IPv4 addresses.
 * @param options Where to listen; default 127.0.0.1:53.
 * @returns The server and its question log.
 *
 * @example Usage
 * ```ts ignore
 * const dns = await startDnsStub({ "api.example.test.": ["10.77.0.1"] });
 * ```
 */
export async function startDnsStub(
  zone: Zone,
  options: { hostname?: string; port?: number } = {},
): Promise<DnsStub> {
  const queries: string[] = [];
  const socket = dgram.createSocket("udp4");
  socket.on("message", (message, peer) => {
    const reply = answer(zone, message, queries);
    if (reply) socket.send(reply, peer.port, peer.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(options.port ?? 53, options.hostname ?? "127.0.0.1", () => {
      socket.off("error", reject);
      resolve();
    });
  });
  return {
    queries,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** The reply to one query datagram, or null for garbage. */
function answer(
  zone: Zone,
  query: Uint8Array,
  log: string[],
): Uint8Array | null {
  if (query.length < 17) return null;
  const view = new DataView(query.buffer, query.byteOffset, query.byteLength);
  if (view.getUint16(4) !== 1) return null;
  let offset = 12;
  const labels: string[] = [];
  while (offset < query.length && query[offset] !== 0) {
    const length = query[offset]!;
    if (length > 63 || offset + 1 + length > query.length) return null;
    labels.push(
      new TextDecoder().decode(query.subarray(offset + 1, offset + 1 + length)),
    );
    offset += 1 + length;
  }
  if (offset + 5 > query.length) return null;
  const type = view.getUint16(offset + 1);
  const questionEnd = offset + 5;
  const name = `${labels.join(".").toLowerCase()}.`;
  log.push(`${TYPES[type] ?? type} ${name}`);
  const known = Object.hasOwn(zone, name);
  const addresses = known && type === 1 ? zone[name]! : [];
  const out = new Uint8Array(questionEnd + addresses.length * 16);
  const outView = new DataView(out.buffer);
  outView.setUint16(0, view.getUint16(0)); // id
  // QR, the query's opcode and RD, AA, RA; NXDOMAIN for unknown names.
  const flags = 0x8000 | (view.getUint16(2) & 0x7900) | 0x0400 | 0x0080 |
    (known ? 0 : 3);
  outView.setUint16(2, flags);
  outView.setUint16(4, 1);
  outView.setUint16(6, addresses.length);
  out.set(query.subarray(12, questionEnd), 12);
  let at = questionEnd;
  for (const address of addresses) {
    outView.setUint16(at, 0xc00c); // the name: a pointer to the question
    outView.setUint16(at + 2, 1); // A
    outView.setUint16(at + 4, 1); // IN
    outView.setUint32(at + 6, 0); // TTL 0: nothing is cached
    outView.setUint16(at + 10, 4);
    address.split(".").forEach((octet, i) => out[at + 12 + i] = Number(octet));
    at += 16;
  }
  return out;
}

/** Files the namespace sees at `/etc/resolv.conf` and `/etc/hosts`. */
export interface ResolverFiles {
  /** Contents of `/etc/resolv.conf`. */
  resolvConf: string;
  /** Contents of `/etc/hosts`. */
  hosts: string;
}

/**
 * Says whether this machine can make the namespaces (root, `unshare`,
 * `ip`, veth pairs): `null` if it can, else the reason to skip.
 *
 * @returns `null`, or why not.
 *
 * @example Usage
 * ```ts ignore
 * const why = await namespaceUnavailable();
 * ```
 */
export async function namespaceUnavailable(): Promise<string | null> {
  if (Deno.uid() !== 0) return "not root";
  try {
    const probe = await new Deno.Command("unshare", {
      args: [
        "--mount",
        "--net",
        "--fork",
        "--kill-child",
        "--",
        "sh",
        "-c",
        "ip link set lo up && ip link add v0 type veth peer name v1",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (probe.success) return null;
    return `unshare/ip/veth failed: ${
      new TextDecoder().decode(probe.stderr).trim().slice(0, 200)
    }`;
  } catch (error) {
    return `cannot run unshare: ${(error as Error).message}`;
  }
}

/**
 * Runs a Deno script in a fresh mount and network namespace (loopback up)
 * with `files` bound over `/etc/resolv.conf` and `/etc/hosts`, hands it
 * `input` as JSON on stdin, and returns the JSON object its last stdout
 * line holds.
 *
 * @param script The script's path.
 * @param files What the namespace's resolver reads.
 * @param input Handed to the script.
 * @returns The report, with the script's stderr for messages.
 *
 * @example Usage
 * ```ts ignore
 * const { report } = await runInResolverNamespace("child.ts", files, {});
 * ```
 */
export async function runInResolverNamespace(
  script: string,
  files: ResolverFiles,
  input: unknown,
): Promise<{ report: Record<string, unknown>; stderr: string }> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-dns-ns-" });
  try {
    await Deno.writeTextFile(`${dir}/resolv.conf`, files.resolvConf);
    await Deno.writeTextFile(`${dir}/hosts`, files.hosts);
    const setup = [
      "set -e",
      "ip link set lo up",
      `mount --bind ${dir}/resolv.conf /etc/resolv.conf`,
      `mount --bind ${dir}/hosts /etc/hosts`,
      `exec "$0" run -A --no-prompt "$1"`,
    ].join("\n");
    const child = new Deno.Command("unshare", {
      args: [
        "--mount",
        "--net",
        "--fork",
        "--kill-child",
        "--",
        "sh",
        "-c",
        setup,
        Deno.execPath(),
        script,
      ],
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(JSON.stringify(input)));
    await writer.close();
    const output = await child.output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    const last = stdout.trim().split("\n").at(-1) ?? "";
    let report: Record<string, unknown>;
    try {
      report = JSON.parse(last);
    } catch {
      throw new Error(
        `Cannot read the namespace run's report: exit ${output.code}\nstdout: ${
          stdout.slice(-2000)
        }\nstderr: ${stderr.slice(-4000)}`,
      );
    }
    return { report, stderr };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
