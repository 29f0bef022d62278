/**
 * The tenants group: two sandboxes in one harness (sharing its one
 * injector), each case asserting that no credential, data or timing-visible
 * state crosses between them. Plain `Deno.test`s: the corpus runner
 * (`_corpus.ts`) runs one sandbox per batch, and these cases need two.
 *
 * The upstream authenticates the CONNECTION, as NTLM and Negotiate do
 * (`tests/kits/session_upstream.ts`): a request served on a connection another
 * sandbox's credential opened is answered as that sandbox, and the
 * who-am-I page quotes the raw credential.
 */

import assert from "node:assert/strict";
import { type PolicyInput, Sandbox } from "../../mod.ts";
import type { EgressEvent, RunResult } from "../../mod.ts";
import {
  type SessionUpstream,
  startSessionUpstream,
} from "../kits/session_upstream.ts";

const HOST = "session.tenants.test";
const UNTOUCHED = "untouched.tenants.test";
const SECRET_A = `sk-tenant-a-${crypto.randomUUID()}`;
const LIMITS = { timeoutMs: 30_000 };

interface Lab extends AsyncDisposable {
  upstream: SessionUpstream;
  /** The `upstream` policy section routing HOST to the local server. */
  routing: { connectTo: string[]; caCerts: string[] };
}

async function startLab(): Promise<Lab> {
  const upstream = await startSessionUpstream(HOST);
  const dir = await Deno.makeTempDir({ prefix: "airlock-tenants-" });
  const caFile = `${dir}/upstream-ca.pem`;
  await Deno.writeTextFile(caFile, upstream.caPem);
  return {
    upstream,
    routing: {
      connectTo: [`${HOST}:443:127.0.0.1:${upstream.port}`],
      caCerts: [caFile],
    },
    async [Symbol.asyncDispose]() {
      await upstream.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function credentialed(lab: Lab): PolicyInput {
  return {
    limits: LIMITS,
    network: {
      allow: {
        [HOST]: [{
          transform: [{
            headers: { authorization: "Bearer ${secret:A_TOKEN}" },
          }],
        }],
      },
    },
    upstream: lab.routing,
  };
}

function plain(lab: Lab): PolicyInput {
  return {
    limits: LIMITS,
    network: { allow: [HOST, UNTOUCHED] },
    upstream: lab.routing,
  };
}

const WHOAMI = `
const response = await fetch("https://${HOST}/whoami");
console.log(await response.text());
`;

function requests(result: RunResult): EgressEvent[] {
  return result.audit.filter((e): e is EgressEvent =>
    e.source === "injector" && e.kind === "request"
  );
}

function assertRan(result: RunResult): void {
  assert.equal(result.exitCode, 0, `${result.stderr}\n${result.stdout}`);
}

Deno.test("tenants: sandbox B is never served on the upstream connection sandbox A's credential opened", async () => {
  await using lab = await startLab();
  await using a = await Sandbox.create({
    policy: credentialed(lab),
    secrets: { A_TOKEN: SECRET_A },
  });
  await using b = await Sandbox.create({ policy: plain(lab) });
  const ranA = await a.run({ code: WHOAMI });
  assertRan(ranA);
  // A's own view is redacted by the echo guard; the upstream saw A log in.
  assert.ok(!ranA.stdout.includes(SECRET_A));
  assert.equal(lab.upstream.seen[0]!.user, `Bearer ${SECRET_A}`);
  const ranB = await b.run({ code: WHOAMI });
  assertRan(ranB);
  // B's binding holds no secret, so nothing would redact A's: the only
  // defence is never serving B on A's connection.
  assert.ok(!ranB.stdout.includes(SECRET_A), ranB.stdout);
  assert.equal(JSON.parse(ranB.stdout).user, "anonymous");
  assert.notEqual(
    lab.upstream.seen[1]!.connection,
    lab.upstream.seen[0]!.connection,
  );
});

Deno.test("tenants: after updateNetworkPolicy removes the credential, the next run is not served as its owner", async () => {
  await using lab = await startLab();
  await using sandbox = await Sandbox.create({
    policy: credentialed(lab),
    secrets: { A_TOKEN: SECRET_A },
  });
  // Inject during setup...
  assertRan(await sandbox.run({ code: WHOAMI }));
  assert.equal(lab.upstream.seen[0]!.user, `Bearer ${SECRET_A}`);
  // ...remove before untrusted code.
  await sandbox.updateNetworkPolicy({ allow: [HOST] });
  const untrusted = await sandbox.run({ code: WHOAMI });
  assertRan(untrusted);
  assert.ok(!untrusted.stdout.includes(SECRET_A), untrusted.stdout);
  assert.equal(JSON.parse(untrusted.stdout).user, "anonymous");
  assert.deepEqual(requests(untrusted)[0]!.injected, []);
});

/**
 * Prints the certificate the injector presents for each host, read the way
 * an attacker would: a raw CONNECT, then a TLS handshake by hand.
 */
const CERTIFICATES = `
import net from "node:net";
import tls from "node:tls";
async function certificateOf(host) {
  const socket = net.connect(3128, "127.0.0.1");
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.write("CONNECT " + host + ":443 HTTP/1.1\\r\\nHost: " + host + ":443\\r\\n\\r\\n");
  await new Promise((resolve, reject) => {
    let head = "";
    const onData = (chunk) => {
      head += chunk.toString("latin1");
      if (head.includes("\\r\\n\\r\\n")) {
        socket.off("data", onData);
        socket.pause();
        head.startsWith("HTTP/1.1 200") ? resolve() : reject(new Error(head));
      }
    };
    socket.on("data", onData);
    socket.once("error", reject);
  });
  const secure = tls.connect({ socket, servername: host, rejectUnauthorized: false });
  await new Promise((resolve, reject) => {
    secure.once("secureConnect", resolve);
    secure.once("error", reject);
  });
  const cert = secure.getPeerCertificate();
  secure.destroy();
  return { serial: cert.serialNumber, validFrom: Date.parse(cert.valid_from) };
}
const out = {};
for (const host of Deno.args) (out[host] ??= []).push(await certificateOf(host));
console.log(JSON.stringify(out));
`;

type Certificates = Record<string, { serial: string; validFrom: number }[]>;

Deno.test("tenants: sandbox B cannot tell from its certificates whether sandbox A contacted a host", async () => {
  await using lab = await startLab();
  await using a = await Sandbox.create({ policy: plain(lab) });
  await using b = await Sandbox.create({ policy: plain(lab) });
  const ranA = await a.run({ code: CERTIFICATES, args: [HOST, HOST] });
  assertRan(ranA);
  const seenByA = JSON.parse(ranA.stdout) as Certificates;
  // Control: within one sandbox the leaf is cached, so a shared cache would
  // have handed B this very certificate.
  assert.equal(seenByA[HOST]![1]!.serial, seenByA[HOST]![0]!.serial);
  const bStarted = Math.floor(Date.now() / 1000) * 1000;
  const ranB = await b.run({ code: CERTIFICATES, args: [HOST, UNTOUCHED] });
  assertRan(ranB);
  const seenByB = JSON.parse(ranB.stdout) as Certificates;
  // The host A contacted looks to B exactly like one nobody contacted: a
  // leaf issued for B, dated from B's own first contact.
  assert.notEqual(seenByB[HOST]![0]!.serial, seenByA[HOST]![0]!.serial);
  const skew = 3600_000;
  for (const host of [HOST, UNTOUCHED]) {
    const { validFrom } = seenByB[host]![0]!;
    assert.ok(
      validFrom >= bStarted - skew,
      `${host}: notBefore ${
        new Date(validFrom).toISOString()
      } predates B's run`,
    );
  }
});

Deno.test("tenants: a credentialed request sent just before Deno.exit is in RunResult.audit with its injection", async () => {
  await using lab = await startLab();
  // The upstream holds /slow; it answers /ready only once /slow has
  // arrived, so the program exits knowing its request left the injector.
  const slow = lab.upstream.hold("/slow");
  const ready = lab.upstream.hold("/ready");
  slow.arrived.then(() => ready.release());
  await using a = await Sandbox.create({
    policy: credentialed(lab),
    secrets: { A_TOKEN: SECRET_A },
  });
  const result = await a.run({
    code: `
      fetch("https://${HOST}/slow").catch(() => {});
      await (await fetch("https://${HOST}/ready")).text();
      Deno.exit(0);
    `,
  });
  assertRan(result);
  slow.release();
  const sent = requests(result).find((e) => e.path === "/slow");
  assert.ok(sent, JSON.stringify(requests(result)));
  assert.equal(sent.decision, "allow");
  assert.deepEqual(sent.injected, ["authorization"]);
  assert.equal(
    lab.upstream.seen.find((r) => r.path === "/slow")!.user,
    `Bearer ${SECRET_A}`,
  );
  // Nothing about the request turns up later as a second record.
  assert.equal(
    a.auditTrail.filter((e) =>
      e.source === "injector" && e.kind === "request" &&
      (e as EgressEvent).path === "/slow"
    ).length,
    1,
  );
});
