/**
 * Environment attacks: the harness's environment holds the env canary (and,
 * for this file, a time zone and a locale of its own); the program looks for
 * them through Deno.env, node:process, /proc, bwrap's argv, system
 * information calls and side channels (Intl, navigator). Nothing of the
 * harness may show up, whichever wall is standing.
 */

import assert from "node:assert/strict";
import {
  assertThrew,
  Corpus,
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

function denied(
  id: string,
  title: string,
  code: string,
  audit: { broker: "env" | "read" | "sys"; value: string | RegExp | null },
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
  "env-001",
  "list the whole environment (Deno.env.toObject)",
  `return Deno.env.toObject();`,
  { broker: "env", value: null },
);
denied(
  "env-002",
  "read the harness's canary variable by name",
  `return Deno.env.get(${JSON.stringify(ENV_CANARY_NAME)});`,
  { broker: "env", value: ENV_CANARY_NAME },
);
denied(
  "env-003",
  "spread node:process.env",
  `const p = (await import("node:process")).default; return { ...p.env };`,
  { broker: "env", value: null },
);
denied(
  "env-004",
  "JSON.stringify(process.env)",
  `const p = (await import("node:process")).default; return JSON.stringify(p.env);`,
  { broker: "env", value: "toJSON" },
);
denied(
  "env-005",
  "probe for HOME with Deno.env.has",
  `return Deno.env.has("HOME");`,
  { broker: "env", value: "HOME" },
);
denied(
  "env-006",
  "rewrite HTTPS_PROXY to send its own traffic elsewhere",
  `Deno.env.set("HTTPS_PROXY", "http://127.0.0.1:9"); return "set";`,
  { broker: "env", value: "HTTPS_PROXY" },
);
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
denied(
  "env-010",
  "read the host name (Deno.hostname)",
  `return Deno.hostname();`,
  { broker: "sys", value: "hostname" },
);
denied(
  "env-011",
  "read the host kernel release (Deno.osRelease)",
  `return Deno.osRelease();`,
  { broker: "sys", value: "osRelease" },
);
denied(
  "env-012",
  "list the host's network interfaces (Deno.networkInterfaces)",
  `return Deno.networkInterfaces();`,
  { broker: "sys", value: "networkInterfaces" },
);
denied(
  "env-013",
  "read the host's memory figures (Deno.systemMemoryInfo)",
  `return Deno.systemMemoryInfo();`,
  { broker: "sys", value: "systemMemoryInfo" },
);
denied(
  "env-014",
  "read the user (node:os userInfo)",
  `const os = (await import("node:os")).default; return os.userInfo();`,
  { broker: "sys", value: "uid" },
);
denied(
  "env-015",
  "read the home directory (node:os homedir)",
  `const os = (await import("node:os")).default; return os.homedir();`,
  { broker: "sys", value: "homedir" },
);
denied(
  "env-016",
  "read TMPDIR through node:os tmpdir",
  `const os = (await import("node:os")).default; return os.tmpdir();`,
  { broker: "env", value: "TMPDIR" },
);
denied(
  "env-017",
  "read the uptime and load (Deno.osUptime)",
  `return Deno.osUptime();`,
  { broker: "sys", value: "osUptime" },
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
