/**
 * The injector's side of transparent egress: the connections the
 * in-sandbox bridge (bridge.ts) opens on the run's socket.
 *
 * - The DNS channel: every query is answered here, from the policy alone,
 *   with the run's own table of loopback addresses (synthetic_names.ts).
 *   Nothing is ever asked of a real resolver, so a looked-up name carries
 *   nothing out; each refused or malformed lookup is an audit record.
 * - Transparent connections: the bridge says which address and port the
 *   program dialled; the injector maps the address back to the name the
 *   program looked up (an address no lookup returned is refused) and
 *   decides on that name, never on SNI or Host (invariant 3). A TCP rule
 *   for the name and port opens a plain tunnel (tcp_tunnel.ts); otherwise
 *   the connection is an implicit CONNECT to the name, served like one:
 *   TLS terminated with a leaf for the name, every request decided,
 *   credentials injected, a Host or SNI naming another host refused.
 *
 * The bridge runs as the program's own uid and says what the program
 * says: nothing it sends is trusted beyond what a CONNECT would be.
 *
 * @module
 */

import { auditEvent } from "./_audit_event.ts";
import type { BufferedReader, SocketChannel } from "./_channel.ts";
import {
  DNS_RCODE,
  DNS_TYPE,
  dnsAnswer,
  dnsError,
  dnsTypeName,
  MAX_DNS_QUERY,
  parseDnsQuery,
} from "./_dns.ts";
import type { EgressEvent } from "./audit.ts";
import { BRIDGE_PROTOCOL } from "./bridge.ts";
import { canonicalHost, hostKind } from "./canonical_host.ts";
import type { Decision } from "./compiled_policy.ts";
import type { SessionContext } from "./session_context.ts";
import { isSyntheticAddress } from "./synthetic_names.ts";
import { tcpEvent, tunnelTcp } from "./tcp_tunnel.ts";

/** Serves an allowed (or refused) name as an implicit CONNECT tunnel. */
export type TunnelServer = (
  tunnel: { host: string; port: number },
  reader: BufferedReader,
  client: SocketChannel,
  ctx: SessionContext,
) => Promise<void>;

/** Longest opening line read (`\0airlock-bridge/1 tcp 127.64.0.1 65535`). */
const MAX_PREAMBLE = 64;

/**
 * Serves one connection that opened with the bridge's NUL byte.
 *
 * @param reader The connection, nothing consumed yet.
 * @param client The connection.
 * @param ctx The binding.
 * @param serveTunnel How HTTP(S) tunnels are served (proxy_session.ts).
 * @returns When the connection is done.
 *
 * @example Usage
 * ```ts ignore
 * await serveBridge(reader, client, ctx, serveTunnel);
 * ```
 */
export async function serveBridge(
  reader: BufferedReader,
  client: SocketChannel,
  ctx: SessionContext,
  serveTunnel: TunnelServer,
): Promise<void> {
  const started = performance.now();
  const line = await readLine(reader, MAX_PREAMBLE);
  const match = line?.match(
    /^\0(\S+) (?:(dns)|tcp (\d{1,3}(?:\.\d{1,3}){3}) (\d{1,5}))$/,
  );
  const port = Number(match?.[4] ?? 0);
  if (
    !match || match[1] !== BRIDGE_PROTOCOL || !ctx.bridge ||
    (match[2] !== "dns" && (port < 1 || port > 65535))
  ) {
    // Only the bridge speaks this, and only on a binding that has one;
    // anything else is a program probing the socket (walls lowered).
    ctx.audit(auditEvent(ctx, started, {
      kind: "connect",
      method: "BRIDGE",
      scheme: "http",
      host: "?",
      port: 0,
      path: "",
      decision: "deny",
      rule: "bad-bridge-line",
      reason: "a connection opened with a NUL byte but no bridge line",
      via: "transparent",
    }));
    return;
  }
  if (match[2] === "dns") {
    ctx.bridge.opened();
    await serveDns(reader, client, ctx);
    return;
  }
  await serveTransparent(
    match[3]!,
    port,
    reader,
    client,
    ctx,
    serveTunnel,
  );
}

async function serveTransparent(
  address: string,
  port: number,
  reader: BufferedReader,
  client: SocketChannel,
  ctx: SessionContext,
  serveTunnel: TunnelServer,
): Promise<void> {
  const started = performance.now();
  // The name comes from the run's own table, never from the connection:
  // an address no lookup of this run returned (a scan of the range, a
  // guess, an address of another run) is refused.
  const name = isSyntheticAddress(address)
    ? ctx.bridge!.names.nameAt(address)
    : null;
  if (name === null) {
    ctx.audit(tcpEvent(ctx, started, {
      host: address,
      port,
      via: "transparent",
    }, {
      decision: "deny",
      rule: "unknown-address",
      reason:
        `no name looked up in this run was answered with '${address}': connect by name`,
    }));
    return;
  }
  const network = ctx.policy().network;
  const tcp = network.decideTcp(name, port);
  if (tcp.allowed) {
    await tunnelTcp(
      { host: name, port, rule: tcp.id, via: "transparent" },
      reader,
      client,
      ctx,
    );
    return;
  }
  if (!network.ports.http.includes(port)) {
    // Not a port the policy speaks HTTP on: a plain TCP client, which can
    // only be told by the connection closing (and the audit).
    ctx.audit(tcpEvent(ctx, started, { host: name, port, via: "transparent" }, {
      decision: "deny",
      rule: tcp.id,
      reason: `airlock's network policy has no TCP rule for '${name}:${port}'`,
    }));
    return;
  }
  const decision = network.decide(name, port);
  ctx.audit(auditEvent(ctx, started, {
    kind: "connect",
    method: "CONNECT",
    scheme: "https",
    host: name,
    port,
    path: "",
    decision: decision.allowed ? "allow" : "deny",
    rule: decision.id,
    ...(decision.allowed ? {} : { reason: decision.reason }),
    via: "transparent",
  }));
  // Served like a CONNECT to the name even when the name is refused: the
  // program then gets airlock's 403 (over TLS, with a leaf for the name it
  // asked for) instead of a bare connection error; every request in the
  // tunnel is decided again and refused.
  await serveTunnel({ host: name, port }, reader, client, ctx);
}

async function serveDns(
  reader: BufferedReader,
  client: SocketChannel,
  ctx: SessionContext,
): Promise<void> {
  for (;;) {
    const head = await readExactly(reader, 6);
    if (head === null) return;
    const view = new DataView(head.buffer, head.byteOffset, 6);
    const tag = view.getUint32(0);
    const length = view.getUint16(4);
    // The bridge drops larger datagrams; a frame past the bound is not
    // the bridge's: the channel ends.
    if (length > MAX_DNS_QUERY) return;
    const query = await readExactly(reader, length);
    if (query === null) return;
    const answer = answerQuery(query, ctx);
    if (answer === null) continue;
    const frame = new Uint8Array(6 + answer.length);
    const out = new DataView(frame.buffer);
    out.setUint32(0, tag);
    out.setUint16(4, answer.length);
    frame.set(answer, 6);
    await client.write(frame);
  }
}

/**
 * Answers one query from the policy alone, and records refusals. Every name
 * gets an address of the run's own (allowed or not): a refused name is
 * refused when the program connects, with an error that names airlock,
 * not with a DNS failure that names nothing.
 */
function answerQuery(
  bytes: Uint8Array,
  ctx: SessionContext,
): Uint8Array | null {
  const started = performance.now();
  const query = parseDnsQuery(bytes);
  const record = (
    fields: Partial<EgressEvent> & Pick<EgressEvent, "decision" | "rule">,
  ) =>
    ctx.audit(auditEvent(ctx, started, {
      kind: "dns",
      method: "name" in query ? dnsTypeName(query.type) : "?",
      scheme: "dns",
      host: "name" in query ? query.name.slice(0, 255) || "." : "?",
      port: 53,
      path: "",
      via: "transparent",
      ...fields,
    }));
  if (!("name" in query)) {
    record({ decision: "deny", rule: "malformed", reason: query.reason });
    return query.id === null ? null : dnsError(query.id, query.rcode);
  }
  // CHAOS/HYBRID classes ask about the resolver, not a host: never answered.
  if (query.class !== 1) {
    record({ decision: "deny", rule: "malformed", reason: "class not IN" });
    return dnsAnswer(query, { rcode: DNS_RCODE.refused });
  }
  let name: string | null = null;
  try {
    name = query.printable && query.name !== ""
      ? canonicalHost(query.name)
      : null;
  } catch {
    // not a host name
  }
  if (name === null || hostKind(name) !== "domain") {
    // Binary labels, an empty or IP-shaped name: never a host to connect to.
    record({
      decision: "deny",
      rule: "not-a-host-name",
      reason: "not a host name: refused",
    });
    return dnsAnswer(query, { rcode: DNS_RCODE.refused });
  }
  if (name === "localhost") {
    // The sandbox's own loopback, as /etc/hosts says (not recorded).
    return query.type === DNS_TYPE.A
      ? dnsAnswer(query, { rcode: DNS_RCODE.ok, address: "127.0.0.1" })
      : dnsAnswer(query, { rcode: DNS_RCODE.ok });
  }
  const decision = decideName(ctx, name);
  const verdict = {
    decision: "deny" as const,
    rule: decision.id,
    reason:
      `airlock's network policy allows no connection to '${name}': answered inside the sandbox, connections to it are refused`,
  };
  if (query.type !== DNS_TYPE.A) {
    // IPv4 only (AAAA and other types: no record), consistently for every
    // name: a client never has a second address to try.
    if (!decision.allowed) record({ ...verdict, answer: "none" });
    return dnsAnswer(query, { rcode: DNS_RCODE.ok });
  }
  const address = ctx.bridge!.names.addressFor(name);
  // A program looking up names without end (a flood of unique names) must
  // not grow harness memory without end: the table is bounded.
  if (address === null) {
    record({
      decision: "deny",
      rule: "too-many-names",
      reason: "the run looked up more names than airlock answers for one run",
    });
    return dnsAnswer(query, { rcode: DNS_RCODE.refused });
  }
  // A lookup of an allowed name is not recorded (the connection that
  // follows is; Deno's fetch looks names up even through the proxy): only
  // refusals are, with the address given.
  if (!decision.allowed) record({ ...verdict, answer: address });
  return dnsAnswer(query, { rcode: DNS_RCODE.ok, address });
}

/** Whether the policy allows the name on any of its ports (for the audit). */
function decideName(ctx: SessionContext, name: string): Decision {
  const network = ctx.policy().network;
  let refusal: Decision | null = null;
  for (const port of network.ports.tcp) {
    const decision = network.decideTcp(name, port);
    if (decision.allowed) return decision;
  }
  for (const port of network.ports.http) {
    const decision = network.decide(name, port);
    if (decision.allowed) return decision;
    refusal ??= decision;
  }
  return refusal ?? {
    allowed: false,
    id: "not-in-allowlist",
    reason: `host '${name}' is not in the allowlist`,
  };
}

async function readLine(
  reader: BufferedReader,
  max: number,
): Promise<string | null> {
  let text = "";
  while (text.length <= max) {
    const chunk = await reader.readSome(max + 1 - text.length);
    if (chunk === null) return null;
    const end = chunk.indexOf(0x0a);
    if (end !== -1) {
      text += latin1(chunk.subarray(0, end));
      reader.unread(chunk.subarray(end + 1));
      return text;
    }
    text += latin1(chunk);
  }
  return null;
}

async function readExactly(
  reader: BufferedReader,
  length: number,
): Promise<Uint8Array | null> {
  const out = new Uint8Array(length);
  let at = 0;
  while (at < length) {
    const chunk = await reader.readSome(length - at);
    if (chunk === null) return null;
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

function latin1(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}
