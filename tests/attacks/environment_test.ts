/**
 * Environment attacks: the harness's environment holds the env canary (and,
 * for this file, a time zone and a locale of its own); the program looks for
 * them through Deno.env, node:process, /proc, bwrap's argv, system
 * information calls and side channels (Intl, navigator). Nothing of the
 * harness may show up, whichever wall is standing.
 *
 * Reading and listing the environment is allowed (a clean machine's
 * environment, holding only airlock's variables: an SDK probing for
 * OPENAI_BASE_URL reads undefined), and so is harmless system information
 * unless the policy's `system` refuses it: those cases assert what the
 * program gets holds nothing of the harness.
 */

import assert from "node:assert/strict";
import {
  assertThrew,
  basePolicy,
  Corpus,
  ENV_CANARY,
  ENV_CANARY_NAME,
  NOT_CAPABLE,
  PLACEHOLDER_NAME,
  valueOf,
} from "./_corpus.ts";

// Side-channel canaries: a harness time zone and locale that a leaked
// environment would carry into the sandbox.
const HARNESS_TZ = "Pacific/Chatham";
const HARNESS_LOCALE = "de_CH.UTF-8";
const saved = { TZ: Deno.env.get("TZ"), LC_ALL: Deno.env.get("LC_ALL") };
Deno.env.set("TZ", HARNESS_TZ);
Deno.env.set("LC_ALL", HARNESS_LOCALE);

const corpus = new Corpus("environment");

/**
 * Every variable a sandbox of the base policy may hold: the launcher's,
 * the run's (HOME, TMPDIR, the broker's socket), the egress settings, the
 * placeholder, and what Deno sets itself (PWD, PATH to its node shims,
 * DENO_NODE_SHIM_ACTIVE). A new one must be added here on purpose.
 */
const SANDBOX_ENV = new Set([
  "DENO_DIR",
  "DENO_NO_UPDATE_CHECK",
  "NO_COLOR",
  "DENO_PERMISSION_BROKER_PATH",
  "HOME",
  "TMPDIR",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "http_proxy",
  "https_proxy",
  "NO_PROXY",
  "no_proxy",
  "NODE_USE_ENV_PROXY",
  "DENO_TLS_CA_STORE",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  PLACEHOLDER_NAME,
  "PWD",
  "PATH",
  "DENO_NODE_SHIM_ACTIVE",
]);

/** Asserts a listing is the sandbox's own environment, nothing of the harness. */
function assertSandboxEnv(env: Record<string, string>): void {
  const harness = Deno.env.toObject();
  assert.ok(Object.keys(env).length >= 5, "positive control: really listed");
  for (const [name, value] of Object.entries(env)) {
    assert.ok(SANDBOX_ENV.has(name), `unexpected variable ${name}`);
    assert.ok(!value.includes(ENV_CANARY), `${name} holds the canary`);
    // The launcher's constants ("1") may equal a harness value by chance.
    if (value.length > 1 && name !== "PATH") {
      assert.notEqual(harness[name], value, `harness variable ${name} leaked`);
    }
  }
  assert.equal(env[ENV_CANARY_NAME], undefined);
  assert.equal(env.TZ, undefined);
  assert.equal(env.LC_ALL, undefined);
  assert.match(env[PLACEHOLDER_NAME] ?? "", /^airlock-placeholder-/);
}

/** The run's environment read by name: allowed, and audited as allowed. */
function envRead(value: string | null) {
  return { broker: "env" as const, value, decisions: ["allow" as const] };
}

/** System information answered: audited as allowed. */
function sysRead(value: string) {
  return { broker: "sys" as const, value, decisions: ["allow" as const] };
}

corpus.add({
  id: "env-001",
  title: "list the whole environment (Deno.env.toObject)",
  code: `return Deno.env.toObject();`,
  expect: (v) => assertSandboxEnv(valueOf<Record<string, string>>(v)),
  audit: envRead(null),
});
corpus.add({
  id: "env-002",
  title: "read the harness's canary variable by name",
  code: `return [Deno.env.get(${
    JSON.stringify(ENV_CANARY_NAME)
  }) ?? "unset", Deno.env.has(${JSON.stringify(ENV_CANARY_NAME)})];`,
  expect: (v) => assert.deepEqual(valueOf<unknown[]>(v), ["unset", false]),
  audit: envRead(ENV_CANARY_NAME),
});
corpus.add({
  id: "env-003",
  title: "spread node:process.env",
  code:
    `const p = (await import("node:process")).default; return { ...p.env };`,
  expect: (v) => assertSandboxEnv(valueOf<Record<string, string>>(v)),
  audit: envRead(null),
});
corpus.add({
  id: "env-004",
  title: "JSON.stringify(process.env) and Object.keys(process.env)",
  code: `const p = (await import("node:process")).default;
    return { json: JSON.parse(JSON.stringify(p.env)), keys: Object.keys(p.env), canary: p.env.${ENV_CANARY_NAME} ?? "unset" };`,
  expect: (v) => {
    const { json, keys, canary } = valueOf<
      { json: Record<string, string>; keys: string[]; canary: string }
    >(v);
    assertSandboxEnv(json);
    assert.deepEqual([...keys].sort(), Object.keys(json).sort());
    assert.equal(canary, "unset");
  },
  audit: envRead(null),
});
corpus.add({
  id: "env-005",
  title: "read HOME hoping for the harness's home directory",
  code: `return Deno.env.get("HOME");`,
  // The sandbox's own home (its scratch), never the harness's.
  expect: (v) => assert.equal(valueOf<string>(v), "/scratch"),
  audit: envRead("HOME"),
});
corpus.add({
  id: "env-006",
  title:
    "rewrite HTTPS_PROXY to send its own traffic elsewhere, then reach a host the policy does not allow",
  code: `const before = Deno.env.get("HTTPS_PROXY");
    Deno.env.set("HTTPS_PROXY", "http://127.0.0.1:9");
    Deno.env.set("NO_PROXY", "*");
    try { return await fetchText("https://evil.attack.test/"); }
    finally { Deno.env.set("HTTPS_PROXY", before); Deno.env.set("NO_PROXY", ""); }`,
  // Its own process's variables are the program's to change; the walls
  // are not in them: Deno still checks the target, and the empty network
  // namespace has no other way out.
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: [
    { broker: "net", value: "evil.attack.test:443" },
    { broker: "env", value: "HTTPS_PROXY", decisions: ["allow"] },
  ],
});
function denied(
  id: string,
  title: string,
  code: string,
  audit: {
    broker: "env" | "read" | "write" | "sys";
    value: string | RegExp | null;
  },
) {
  corpus.add({
    id,
    title,
    code,
    expect: (v) => void assertThrew(v, NOT_CAPABLE),
    audit,
  });
}
denied(
  "env-007",
  "read /proc/self/environ",
  `return await Deno.readTextFile("/proc/self/environ");`,
  { broker: "read", value: "/proc/self/environ" },
);
denied(
  "env-008",
  "read bwrap's environment at /proc/1/environ",
  `return await Deno.readTextFile("/proc/1/environ");`,
  { broker: "read", value: "/proc/1/environ" },
);
denied(
  "env-009",
  "read bwrap's argv at /proc/1/cmdline (mount sources, flags)",
  `return await Deno.readTextFile("/proc/1/cmdline");`,
  { broker: "read", value: "/proc/1/cmdline" },
);
corpus.add({
  id: "env-010",
  title: "read the host name (Deno.hostname, node:os hostname)",
  code: `const os = (await import("node:os")).default;
    return [Deno.hostname(), os.hostname()];`,
  // The UTS namespace's own name, never the host's.
  expect: (v) => assert.deepEqual(valueOf<string[]>(v), ["sandbox", "sandbox"]),
  audit: sysRead("hostname"),
});
corpus.add({
  id: "env-011",
  title: "read the kernel release (Deno.osRelease, node:os release)",
  code: `const os = (await import("node:os")).default;
    return [Deno.osRelease(), os.release()];`,
  // What every process on the machine reads from uname(2): no harness data.
  expect: (v) =>
    assert.deepEqual(valueOf<string[]>(v), [
      Deno.osRelease(),
      Deno.osRelease(),
    ]),
  audit: sysRead("osRelease"),
});
corpus.add({
  id: "env-012",
  title: "list the host's network interfaces (Deno.networkInterfaces)",
  code: `return Deno.networkInterfaces();`,
  // The sandbox's empty network namespace: loopback only.
  expect: (v) => {
    const nics = valueOf<{ name: string; address: string }[]>(v);
    assert.ok(nics.length >= 1, "positive control: really listed");
    for (const nic of nics) {
      assert.equal(nic.name, "lo", JSON.stringify(nic));
      assert.ok(["127.0.0.1", "::1"].includes(nic.address), nic.address);
    }
  },
  audit: sysRead("networkInterfaces"),
});
corpus.add({
  id: "env-013",
  title: "read the memory figures (Deno.systemMemoryInfo, os.totalmem)",
  code: `const os = (await import("node:os")).default;
    return [Deno.systemMemoryInfo().total, os.totalmem(), os.cpus().length];`,
  expect: (v) => {
    const [total, totalmem, cpus] = valueOf<number[]>(v);
    assert.ok(total! > 0 && total === totalmem, `${total} ${totalmem}`);
    assert.ok(cpus! >= 1);
  },
  audit: [sysRead("systemMemoryInfo"), sysRead("cpus")],
});
corpus.add({
  id: "env-014",
  title: "read the user (node:os userInfo, uid, gid)",
  code: `const os = (await import("node:os")).default;
    let info; try { info = os.userInfo(); } catch (e) { info = errText(e); }
    return { info, uid: Deno.uid(), gid: Deno.gid() };`,
  // The namespace's ids; the sandbox has no passwd file, so no name.
  expect: (v) => {
    const { info, uid, gid } = valueOf<
      { info: unknown; uid: number; gid: number }
    >(v);
    assert.equal(uid, 65534);
    assert.equal(gid, 65534);
    assert.doesNotMatch(JSON.stringify(info), /root|\/home\//);
  },
  audit: [sysRead("uid"), sysRead("gid")],
});
corpus.add({
  id: "env-015",
  title: "read the home directory (node:os homedir)",
  code: `const os = (await import("node:os")).default; return os.homedir();`,
  expect: (v) => assert.equal(valueOf<string>(v), "/scratch"),
  audit: sysRead("homedir"),
});
corpus.add({
  id: "env-016",
  title: "read TMPDIR through node:os tmpdir, and write there",
  code: `const os = (await import("node:os")).default;
    await Deno.writeTextFile(os.tmpdir() + "/probe.txt", "x");
    return os.tmpdir();`,
  // The run's own temp directory, under the scratch quota.
  expect: (v) => assert.equal(valueOf<string>(v), "/var/tmp"),
  audit: envRead("TMPDIR"),
});
corpus.add({
  id: "env-017",
  title: "read the uptime and load (Deno.osUptime, Deno.loadavg)",
  code: `return [Deno.osUptime(), Deno.loadavg().length];`,
  expect: (v) => {
    const [uptime, load] = valueOf<number[]>(v);
    assert.ok(uptime! > 0);
    assert.equal(load, 3);
  },
  audit: [sysRead("osUptime"), sysRead("loadavg")],
});
denied(
  "env-027",
  "change the scheduling priority (node:os setPriority)",
  `const os = (await import("node:os")).default; os.setPriority(19); return "set";`,
  { broker: "sys", value: "setPriority" },
);
corpus.add({
  id: "env-018",
  title: "Deno.execPath (needs no permission): learn where Deno lives",
  code: `return Deno.execPath();`,
  expect: (v) => assert.equal(valueOf<string>(v), "/usr/bin/deno"),
  audit: {
    none:
      "Deno answers execPath without a permission check; it names the sandbox's own read-only /usr/bin/deno",
  },
});
corpus.add({
  id: "env-019",
  title: "read the placeholder variable hoping for the real secret",
  code: `return Deno.env.get(${JSON.stringify(PLACEHOLDER_NAME)});`,
  expect: (v) =>
    assert.match(
      valueOf<string>(v),
      /^airlock-placeholder-PH_TOKEN-[0-9a-f]{32}$/,
    ),
  // Granted on purpose: the value is an opaque stand-in (the runner scans
  // the output for the real one).
  audit: { broker: "env", value: PLACEHOLDER_NAME, decisions: ["allow"] },
});
corpus.add({
  id: "env-020",
  title: "learn the harness's time zone through Intl (no permission needed)",
  code: `return Intl.DateTimeFormat().resolvedOptions().timeZone;`,
  expect: (v) => assert.notEqual(valueOf<string>(v), HARNESS_TZ),
  audit: {
    none:
      "Intl needs no permission: only an environment that never reaches the sandbox keeps the harness's TZ out",
  },
});
corpus.add({
  id: "env-021",
  title: "learn the harness's locale through navigator.language",
  code: `return navigator.language;`,
  expect: (v) => assert.doesNotMatch(valueOf<string>(v), /^de/),
  audit: {
    none:
      "navigator.language needs no permission: only an environment that never reaches the sandbox keeps LC_ALL out",
  },
});

// --- The policy refuses system information ---

corpus.batch("system-deny", {
  policy: (fx) => ({ ...basePolicy(fx), system: "deny" }),
});
for (
  const [id, kind, code] of [
    ["env-028", "hostname", "Deno.hostname()"],
    ["env-029", "osRelease", "Deno.osRelease()"],
    ["env-030", "networkInterfaces", "Deno.networkInterfaces()"],
    ["env-031", "systemMemoryInfo", "Deno.systemMemoryInfo()"],
    ["env-032", "homedir", '(await import("node:os")).default.homedir()'],
    ["env-033", "cpus", '(await import("node:os")).default.cpus()'],
  ] as const
) {
  corpus.add({
    id,
    batch: "system-deny",
    title: `system: "deny" refuses ${kind}`,
    code: `return ${code};`,
    expect: (v) => {
      const error = assertThrew(v, NOT_CAPABLE);
      assert.match(error, /refused by the policy's 'system' setting/);
    },
    audit: { broker: "sys", value: kind },
  });
}
corpus.add({
  id: "env-034",
  batch: "system-deny",
  title: `system: "deny" still lets the environment be read`,
  code: `return Deno.env.toObject();`,
  expect: (v) => assertSandboxEnv(valueOf<Record<string, string>>(v)),
  audit: envRead(null),
});

corpus.batch("system-list", {
  policy: (fx) => ({ ...basePolicy(fx), system: ["cpus"] }),
});
corpus.add({
  id: "env-035",
  batch: "system-list",
  title: `system: ["cpus"] answers the CPU count and refuses the host name`,
  code: `const os = (await import("node:os")).default;
    const cpus = os.cpus().length;
    try { return { cpus, hostname: Deno.hostname() }; } catch (e) { return { cpus, hostname: errText(e) }; }`,
  expect: (v) => {
    const { cpus, hostname } = valueOf<{ cpus: number; hostname: string }>(v);
    assert.ok(cpus >= 1);
    assert.match(hostname, /^NotCapable: .*refused by the policy's 'system'/);
  },
  audit: [sysRead("cpus"), { broker: "sys", value: "hostname" }],
});

// --- Without a scratch: TMPDIR and HOME in the run's own /tmp ---

corpus.batch("no-scratch", {
  policy: (fx) => ({ ...basePolicy(fx), scratch: false }),
});
corpus.add({
  id: "env-038",
  batch: "no-scratch",
  title: "without a scratch, os.tmpdir() is writable (and so is HOME)",
  code: `const os = (await import("node:os")).default;
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(os.tmpdir() + "/probe.txt", "x");
    return { tmpdir: os.tmpdir(), home: os.homedir(), dir };`,
  expect: (v) => {
    const { tmpdir, home, dir } = valueOf<
      { tmpdir: string; home: string; dir: string }
    >(v);
    assert.equal(tmpdir, "/tmp/run");
    assert.equal(home, "/tmp/run");
    assert.match(dir, /^\/tmp\/run\/\w+$/);
  },
  audit: { broker: "write", value: /^\/tmp\/run\//, decisions: ["allow"] },
});
denied(
  "env-039",
  "without a scratch, write into Deno's own cache beside TMPDIR (/tmp/.deno)",
  `await Deno.writeTextFile("/tmp/.deno/planted.js", "globalThis.pwned = 1"); return "written";`,
  { broker: "write", value: "/tmp/.deno/planted.js" },
);

// --- Deno's flags decide (no broker): the same environment ---

const FLAGS_NONE =
  "Deno's flags decide here (audit.permissions: false): no broker records the check";
corpus.batch("flags", {
  policy: (fx) => ({ ...basePolicy(fx), audit: { permissions: false } }),
});
corpus.add({
  id: "env-036",
  batch: "flags",
  title: "without the broker: list the environment and read the host name",
  code:
    `return { env: Deno.env.toObject(), hostname: Deno.hostname(), unset: Deno.env.get(${
      JSON.stringify(ENV_CANARY_NAME)
    }) ?? "unset" };`,
  expect: (v) => {
    const { env, hostname, unset } = valueOf<
      { env: Record<string, string>; hostname: string; unset: string }
    >(v);
    const { DENO_PERMISSION_BROKER_PATH: _none, ...rest } = env;
    assert.equal(_none, undefined, "no broker in this batch");
    assertSandboxEnv(rest);
    assert.equal(hostname, "sandbox");
    assert.equal(unset, "unset");
  },
  audit: { none: FLAGS_NONE },
});
corpus.add({
  id: "env-037",
  batch: "flags",
  title: "without the broker: change the scheduling priority",
  code:
    `const os = (await import("node:os")).default; os.setPriority(19); return "set";`,
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { none: FLAGS_NONE },
});

// --- Deno's wall lowered: what the launcher leaves visible ---

corpus.batch("namespace", { mode: "namespace" });
const LAUNCHER_VARS = ["DENO_DIR", "DENO_NO_UPDATE_CHECK", "NO_COLOR"];

corpus.add({
  id: "env-022",
  batch: "namespace",
  title: "namespace alone: bwrap's argv at /proc/1/cmdline",
  code: `return Deno.readTextFileSync("/proc/1/cmdline").split("\\0");`,
  expect: (v) => {
    const argv = valueOf<string[]>(v);
    assert.equal(argv[0], "/usr/bin/bwrap", "positive control: really read");
    assert.ok(!argv.some((a) => a.includes(ENV_CANARY_NAME)));
    assert.ok(!argv.includes(Deno.cwd()), "no harness working directory");
  },
  audit: {
    none:
      "Deno's wall is lowered here: the argv is readable, and holds no harness variable or secret",
  },
});
corpus.add({
  id: "env-023",
  batch: "namespace",
  title: "namespace alone: bwrap's environment at /proc/1/environ",
  code:
    `return Deno.readTextFileSync("/proc/1/environ").split("\\0").filter(Boolean);`,
  expect: (v) => {
    const names = valueOf<string[]>(v).map((e) => e.split("=")[0]);
    for (const name of names) {
      assert.ok(
        !["TZ", "LC_ALL", "PWD", "HOME", "PATH", ENV_CANARY_NAME].includes(
          name!,
        ),
        name,
      );
    }
  },
  audit: {
    none:
      "Deno's wall is lowered here: the launcher starts bwrap with an empty environment",
  },
});
corpus.add({
  id: "env-024",
  batch: "namespace",
  title: "namespace alone: the program's own environment",
  code: `return Deno.env.toObject();`,
  expect: (v) => {
    const env = valueOf<Record<string, string>>(v);
    const harness = Deno.env.toObject();
    assert.equal(env[ENV_CANARY_NAME], undefined);
    for (const [name, value] of Object.entries(env)) {
      if (LAUNCHER_VARS.includes(name)) continue;
      // Deno sets PATH (its node shim dir), PWD and DENO_NODE_SHIM_ACTIVE
      // itself; none may carry the harness's value.
      assert.notEqual(harness[name], value, `harness variable ${name} leaked`);
    }
    assert.equal(env.TZ, undefined);
    assert.equal(env.LC_ALL, undefined);
  },
  audit: {
    none:
      "Deno's wall is lowered here: bwrap --clearenv leaves only the launcher's own variables",
  },
});
corpus.add({
  id: "env-025",
  batch: "namespace",
  title: "namespace alone: the host name (UTS namespace)",
  code: `return Deno.hostname();`,
  expect: (v) => {
    assert.equal(valueOf<string>(v), "sandbox");
  },
  audit: {
    none:
      "Deno's wall is lowered here: the UTS namespace answers 'sandbox', never the host's name",
  },
});
corpus.add({
  id: "env-026",
  batch: "namespace",
  title: "namespace alone: every visible /proc/*/environ",
  code: `const out = {};
    for (const e of Deno.readDirSync("/proc")) {
      if (!/^\\d+$/.test(e.name)) continue;
      try { out[e.name] = Deno.readTextFileSync("/proc/" + e.name + "/environ").split("\\0").filter(Boolean).map((x) => x.split("=")[0]); }
      catch (err) { out[e.name] = errText(err); }
    }
    return out;`,
  expect: (v) => {
    const all = valueOf<Record<string, string[] | string>>(v);
    assert.ok(Object.keys(all).length >= 2, "bwrap and deno are visible");
    for (const [pid, names] of Object.entries(all)) {
      if (typeof names === "string") continue;
      assert.ok(
        !names.includes(ENV_CANARY_NAME) && !names.includes("TZ"),
        `pid ${pid}: ${names}`,
      );
    }
  },
  audit: {
    none:
      "Deno's wall is lowered here: no process in the sandbox holds a harness variable",
  },
});

corpus.register();

Deno.test({
  name: "environment: restore the harness's TZ and LC_ALL",
  fn() {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) Deno.env.delete(name);
      else Deno.env.set(name, value);
    }
  },
});
