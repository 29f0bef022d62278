/**
 * What sandboxes share in one injector, and what they must not: pooled
 * upstream connections never cross sandboxes or credentials, a policy
 * update drops a sandbox's pooled connections, leaf certificates are per
 * sandbox, and a run's end leaves a record of every request it sent.
 *
 * The upstream authenticates the CONNECTION (tests/kits/session_upstream.ts):
 * served on a connection someone else's credential opened, a request gets
 * their identity, and the who-am-I answer quotes their raw secret.
 */

import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import type { EgressEvent } from "./audit.ts";
import {
  compileEgressPolicy,
  PlaceholderSecretsSchema,
} from "./egress_policy.ts";
import { type EgressScope, Injector } from "./injector.ts";
import {
  type NetworkPolicyInput,
  NetworkPolicySchema,
} from "./network_policy.ts";
import type { ActivePolicy } from "./proxy_session.ts";
import type { Resolver } from "./resolver.ts";
import {
  fixedResolver,
  HttpConn,
  nodeStream,
  openTlsTunnel,
  openTunnel,
  waitFor,
} from "../tests/kits/injector.ts";
import {
  type SessionUpstream,
  startSessionUpstream,
} from "../tests/kits/session_upstream.ts";

const HOST = "session.example.test";
const SECRET_A = "sk-tenant-a-7f3a9c2e51d04b86aa";

/** One sandbox's binding on the shared injector. */
interface Tenant {
  path: string;
  events: EgressEvent[];
  scope: EgressScope;
  /** The policy in force (assign to change it live). */
  active: ActivePolicy;
  close(): Promise<void>;
}

interface Lab extends AsyncDisposable {
  injector: Injector;
  upstream: SessionUpstream;
  /** Binds a new sandbox (its own scope unless `scope` is given). */
  tenant(
    name: string,
    network: NetworkPolicyInput,
    options?: { scope?: EgressScope },
  ): Promise<Tenant>;
  /** The policy `network` compiled against this lab's upstream. */
  compile(network: NetworkPolicyInput): Promise<ActivePolicy>;
}

async function startLab(options: { resolver?: Resolver } = {}): Promise<Lab> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-pool-test-" });
  const upstream = await startSessionUpstream(HOST);
  const injector = await Injector.create({
    resolver: options.resolver ?? fixedResolver({}),
  });
  const compile = async (network: NetworkPolicyInput) =>
    (await compileEgressPolicy({
      network: NetworkPolicySchema.parse(network),
      secrets: PlaceholderSecretsSchema.parse({}),
      upstream: {
        connectTo: [`${HOST}:443:127.0.0.1:${upstream.port}`],
        caCerts: [],
      },
    }, {
      sources: { secrets: { A_TOKEN: SECRET_A }, env: () => undefined },
      resolver: injector.resolver,
      caCerts: [upstream.caPem],
    })).active;
  let count = 0;
  return {
    injector,
    upstream,
    compile,
    async tenant(name, network, tenantOptions = {}) {
      const scope = tenantOptions.scope ?? injector.createScope();
      const events: EgressEvent[] = [];
      const path = `${dir}/${name}-${++count}.sock`;
      const tenant: Tenant = {
        path,
        events,
        scope,
        active: await compile(network),
        close: () => binding.close(),
      };
      const binding = await injector.bind({
        socketPath: path,
        sandboxId: name,
        policy: () => tenant.active,
        audit: (event) => events.push(structuredClone(event)),
        scope,
      });
      return tenant;
    },
    async [Symbol.asyncDispose]() {
      await injector.close();
      await upstream.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

const WITH_CREDENTIAL: NetworkPolicyInput = {
  allow: {
    [HOST]: [{
      transform: [{
        headers: { authorization: "Bearer ${secret:A_TOKEN}" },
      }],
    }],
  },
};
const WITHOUT_CREDENTIAL: NetworkPolicyInput = { allow: [HOST] };

async function tunnel(tenant: Tenant, lab: Lab): Promise<HttpConn> {
  return await openTlsTunnel(tenant.path, HOST, 443, {
    ca: lab.injector.caCertificatePem,
  });
}

/** GET `path` on a fresh tunnel; the upstream's JSON answer, raw text. */
async function whoami(
  tenant: Tenant,
  lab: Lab,
  path = "/whoami",
): Promise<{ status: number; text: string }> {
  const conn = await tunnel(tenant, lab);
  try {
    const response = await conn.request({
      target: path,
      headers: [["Host", HOST]],
    });
    return { status: response.status, text: response.text };
  } finally {
    conn.close();
  }
}

Deno.test("control: the test upstream serves a later request on a logged-in connection as its owner", async () => {
  // Without this, the isolation tests below could pass against a server
  // that authenticates every request on its own.
  await using upstream = await startSessionUpstream(HOST);
  const socket = tls.connect({
    host: "127.0.0.1",
    port: upstream.port,
    servername: HOST,
    ca: upstream.caPem,
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", reject);
  });
  const conn = new HttpConn(nodeStream(socket));
  try {
    const ask = async (headers: [string, string][]) => {
      const response = await conn.request({
        target: "/whoami",
        headers: [["Host", HOST], ...headers],
      });
      return JSON.parse(response.text) as { user: string; connection: number };
    };
    const first = await ask([["Authorization", `Bearer ${SECRET_A}`]]);
    assert.equal(first.user, `Bearer ${SECRET_A}`);
    const later = await ask([]);
    assert.equal(later.user, `Bearer ${SECRET_A}`);
    assert.equal(later.connection, first.connection);
  } finally {
    conn.close();
  }
});

Deno.test("upstream pool: sandbox B is never served on a connection sandbox A's credential opened", async () => {
  await using lab = await startLab();
  const a = await lab.tenant("sandbox-a", WITH_CREDENTIAL);
  const b = await lab.tenant("sandbox-b", WITHOUT_CREDENTIAL);
  const first = await whoami(a, lab);
  assert.equal(first.status, 200);
  // A's own copy of its secret is redacted by the echo guard...
  assert.doesNotMatch(first.text, new RegExp(SECRET_A));
  assert.equal(lab.upstream.seen[0]!.user, `Bearer ${SECRET_A}`);
  // ...and B, whose binding has no secret to guard, must not be served as A.
  const second = await whoami(b, lab);
  assert.equal(second.status, 200);
  assert.doesNotMatch(second.text, new RegExp(SECRET_A));
  assert.equal(JSON.parse(second.text).user, "anonymous");
  assert.notEqual(
    lab.upstream.seen[1]!.connection,
    lab.upstream.seen[0]!.connection,
  );
});

Deno.test("upstream pool: within one sandbox keep-alive still reuses one connection per injection", async () => {
  await using lab = await startLab();
  const a = await lab.tenant("sandbox-a", WITH_CREDENTIAL);
  for (let i = 0; i < 3; i++) assert.equal((await whoami(a, lab)).status, 200);
  // Another run of the same sandbox (same scope, another binding) too.
  const again = await lab.tenant("sandbox-a", WITH_CREDENTIAL, {
    scope: a.scope,
  });
  assert.equal((await whoami(again, lab)).status, 200);
  assert.equal(lab.upstream.accepted, 1);
  assert.deepEqual(lab.upstream.seen.map((r) => r.connection), [1, 1, 1, 1]);
});

Deno.test("upstream pool: within one sandbox an uncredentialed request never rides a credentialed connection", async () => {
  await using lab = await startLab();
  // One policy: the credential only for /private (the rest goes plain).
  const a = await lab.tenant("sandbox-a", {
    allow: {
      [HOST]: [{
        match: { path: { startsWith: "/private" } },
        transform: [{
          headers: { authorization: "Bearer ${secret:A_TOKEN}" },
        }],
      }],
    },
  });
  assert.equal((await whoami(a, lab, "/private")).status, 200);
  const open = await whoami(a, lab, "/public");
  assert.equal(JSON.parse(open.text).user, "anonymous");
  const [credentialed, plain] = lab.upstream.seen;
  assert.equal(credentialed!.user, `Bearer ${SECRET_A}`);
  assert.notEqual(plain!.connection, credentialed!.connection);
});

Deno.test("upstream pool: a policy update that removes the credential drops the sandbox's pooled connections", async () => {
  await using lab = await startLab();
  const setup = await lab.tenant("sandbox-a", WITH_CREDENTIAL);
  assert.equal((await whoami(setup, lab)).status, 200);
  await waitFor(() => lab.upstream.open === 1, "one pooled connection");
  // "Inject during setup, remove before untrusted code."
  setup.active = await lab.compile(WITHOUT_CREDENTIAL);
  setup.scope.dropConnections();
  // The authenticated connection is closed, not just skipped.
  await waitFor(() => lab.upstream.open === 0, "the pooled connection closed");
  const untrusted = await lab.tenant("sandbox-a", WITHOUT_CREDENTIAL, {
    scope: setup.scope,
  });
  const answer = await whoami(untrusted, lab);
  assert.equal(JSON.parse(answer.text).user, "anonymous");
  assert.doesNotMatch(answer.text, new RegExp(SECRET_A));
  assert.equal(lab.upstream.accepted, 2);
});

Deno.test("upstream pool: closing a sandbox's scope closes its pooled connections", async () => {
  await using lab = await startLab();
  const a = await lab.tenant("sandbox-a", WITH_CREDENTIAL);
  assert.equal((await whoami(a, lab)).status, 200);
  await waitFor(() => lab.upstream.open === 1, "one pooled connection");
  await a.close();
  a.scope.close();
  await waitFor(() => lab.upstream.open === 0, "the pooled connection closed");
  await assert.rejects(
    () => lab.tenant("sandbox-a", WITH_CREDENTIAL, { scope: a.scope }),
    /closed scope/,
  );
});

Deno.test("Injector.bind() refuses a scope another injector created", async () => {
  await using lab = await startLab();
  await using other = await Injector.create();
  await assert.rejects(
    () =>
      lab.tenant("sandbox-a", WITHOUT_CREDENTIAL, {
        scope: other.createScope(),
      }),
    TypeError,
  );
});

/** The certificate a client sees for `host` through `tenant`'s socket. */
async function peerCertificate(
  tenant: Tenant,
  lab: Lab,
  host: string,
): Promise<{ serial: string; validFrom: number }> {
  const opened = await openTunnel(tenant.path, `${host}:443`);
  assert.equal(opened.status, 200);
  const secure = tls.connect({
    socket: opened.socket as net.Socket,
    servername: host,
    ca: lab.injector.caCertificatePem,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", () => resolve());
      secure.once("error", reject);
    });
    const cert = secure.getPeerCertificate();
    return {
      serial: cert.serialNumber,
      validFrom: Date.parse(cert.valid_from),
    };
  } finally {
    secure.destroy();
  }
}

Deno.test("leaf certificates: sandbox B cannot tell whether sandbox A contacted a host", async () => {
  await using lab = await startLab();
  const network = { allow: [HOST, "untouched.example.test"] };
  const a = await lab.tenant("sandbox-a", network);
  const b = await lab.tenant("sandbox-b", network);
  const seenByA = await peerCertificate(a, lab, HOST);
  // Control: within one sandbox the leaf is cached (what a shared cache
  // would have handed B as well).
  assert.equal((await peerCertificate(a, lab, HOST)).serial, seenByA.serial);
  const bStarted = Date.now();
  const contacted = await peerCertificate(b, lab, HOST);
  const untouched = await peerCertificate(b, lab, "untouched.example.test");
  // B's certificate for the host A contacted is issued for B, now, exactly
  // like the one for a host nobody contacted: same issuance work, and a
  // validity start that dates B's own first contact.
  assert.notEqual(contacted.serial, seenByA.serial);
  const skew = 3600_000;
  for (const cert of [contacted, untouched]) {
    assert.ok(
      cert.validFrom >= Math.floor(bStarted / 1000) * 1000 - skew,
      `notBefore ${
        new Date(cert.validFrom).toISOString()
      } predates B's contact`,
    );
  }
});

Deno.test("run end: a request forwarded before the run ended is in the audit trail with its injection", async () => {
  await using lab = await startLab();
  const held = lab.upstream.hold("/slow");
  const a = await lab.tenant("sandbox-a", WITH_CREDENTIAL);
  const conn = await tunnel(a, lab);
  await conn.send(`GET /slow HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
  await held.arrived;
  // The program exits: its binding closes while the upstream still holds
  // the answer. close() resolves with the record written.
  conn.close();
  await a.close();
  const request = a.events.find((e) => e.kind === "request");
  assert.ok(request, JSON.stringify(a.events));
  assert.equal(request.decision, "allow");
  assert.equal(request.status, null);
  assert.deepEqual(request.injected, ["authorization"]);
  assert.equal(request.path, "/slow");
  assert.match(request.reason ?? "", /ended before the upstream answered/);
  held.release();
  // The exchange's own late outcome is not recorded a second time.
  await waitFor(() => lab.upstream.open === 0, "the held connection closed");
  assert.equal(a.events.filter((e) => e.kind === "request").length, 1);
});

Deno.test("run end: an answer that arrives after the program left is recorded with the upstream's status, not 502", async () => {
  await using lab = await startLab();
  const held = lab.upstream.hold("/slow");
  const a = await lab.tenant("sandbox-a", WITH_CREDENTIAL);
  const conn = await tunnel(a, lab);
  await conn.send(`GET /slow HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
  await held.arrived;
  conn.close();
  held.release();
  const request = await waitFor(
    () => a.events.find((e) => e.kind === "request"),
    "the request's record",
  );
  assert.equal(request.decision, "allow");
  assert.equal(request.status, 200);
  assert.deepEqual(request.injected, ["authorization"]);
});

Deno.test("run end: a request still waiting for its connection is recorded and never sent", async () => {
  let resolving!: () => void;
  const asked = new Promise<void>((r) => (resolving = r));
  let answer!: () => void;
  const gate = new Promise<void>((r) => (answer = r));
  let armed = false;
  // Once armed, the mapped address's lookup hangs until the binding closed.
  const resolver: Resolver = async (host) => {
    if (armed) {
      resolving();
      await gate;
    }
    return [host];
  };
  await using lab = await startLab({ resolver });
  const a = await lab.tenant("sandbox-a", WITH_CREDENTIAL);
  const conn = await tunnel(a, lab);
  armed = true;
  await conn.send(`GET /late HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
  await asked;
  conn.close();
  await a.close();
  const request = a.events.find((e) => e.kind === "request");
  assert.ok(request, JSON.stringify(a.events));
  assert.equal(request.decision, "error");
  assert.match(request.reason ?? "", /before the request was forwarded/);
  answer();
  // Give the exchange every chance to (wrongly) send it: it resolves, dials
  // and must then stop. The upstream accepting the dial is the signal.
  await waitFor(() => lab.upstream.accepted === 1, "the late dial");
  await waitFor(() => lab.upstream.open === 0, "the late connection closed");
  assert.equal(lab.upstream.seen.length, 0);
});
