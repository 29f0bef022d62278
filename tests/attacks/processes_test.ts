/**
 * Process attacks: spawning (Deno.Command, node:child_process), native code
 * (Deno.dlopen, process.dlopen), signals to the sandbox's parent, the
 * harness and a host process, memory of other processes through /proc,
 * uid changes, permission escalation at run time and through Workers.
 */

import assert from "node:assert/strict";
import {
  assertThrew,
  type AuditExpect,
  Corpus,
  type Fixtures,
  NOT_CAPABLE,
  valueOf,
} from "./_corpus.ts";

const corpus = new Corpus("processes");

function denied(
  id: string,
  title: string,
  code: string | ((fx: Fixtures) => string),
  audit: AuditExpect,
  pattern = NOT_CAPABLE,
) {
  corpus.add({
    id,
    title,
    code,
    expect: (v) => void assertThrew(v, pattern),
    audit,
  });
}

denied(
  "pr-001",
  "spawn /bin/sh with Deno.Command (the egress bridge's shell is mounted)",
  `return new Deno.Command("/bin/sh", { args: ["-c", "id"] }).outputSync();`,
  { broker: "run", value: "/bin/sh" },
);
// Deno resolves a bare name on PATH before it asks the broker: the
// sandbox's PATH resolves common names (runtime/command_path.ts), so the
// attempt is checked and recorded instead of failing NotFound unseen.
denied(
  "pr-002",
  "spawn a bare command name ('deno') with Deno.Command",
  `return new Deno.Command("deno", { args: ["--version"] }).outputSync();`,
  { broker: "run", value: "deno" },
);
denied(
  "pr-002b",
  "spawn a bare shell name ('sh') with Deno.Command",
  `return new Deno.Command("sh", { args: ["-c", "id"] }).outputSync();`,
  { broker: "run", value: "sh" },
);
denied(
  "pr-003",
  "spawn the Deno binary by absolute path to run unsandboxed code",
  `return new Deno.Command("/usr/bin/deno", { args: ["eval", "1"] }).outputSync();`,
  { broker: "run", value: "/usr/bin/deno" },
);
denied(
  "pr-004",
  "spawn socat (mounted for the bridge) to open a relay",
  `return await new Deno.Command("/usr/bin/socat", { args: ["-V"] }).output();`,
  { broker: "run", value: "/usr/bin/socat" },
);
denied(
  "pr-005",
  "node:child_process execSync('id')",
  `const cp = (await import("node:child_process")).default; return cp.execSync("id").toString();`,
  // The shell it starts is refused (execSync reports it as a failed command).
  { broker: "run", value: "/bin/sh" },
  /^(NotCapable|Error: Command failed)/,
);
denied(
  "pr-006",
  "node:child_process spawn with an explicit empty environment",
  `const cp = (await import("node:child_process")).default;
    return await new Promise((resolve, reject) => {
      const c = cp.spawn("/usr/bin/deno", ["--version"], { env: {} });
      c.on("error", reject);
      c.on("exit", (code) => resolve("exit " + code));
    });`,
  { broker: "run", value: "/usr/bin/deno" },
);
denied(
  "pr-007",
  "node:child_process fork of the program itself",
  `const cp = (await import("node:child_process")).default;
    const c = cp.fork("/airlock/main.js");
    return await new Promise((resolve, reject) => {
      c.on("error", reject);
      c.on("exit", (code) => resolve("exit " + code));
    });`,
  { broker: "run", value: /deno$/ },
);
denied(
  "pr-008",
  "load libc with Deno.dlopen to reach syscall()",
  `const lib = Deno.dlopen("libc.so.6", { syscall: { parameters: ["i64"], result: "i64" } }); return lib.symbols.syscall(39n);`,
  { broker: "ffi", value: "libc.so.6" },
);
denied(
  "pr-009",
  "load a native addon with process.dlopen",
  `const p = (await import("node:process")).default; const m = { exports: {} }; p.dlopen(m, "/usr/lib/x86_64-linux-gnu/libc.so.6"); return "loaded";`,
  { broker: "ffi", value: /libc\.so\.6$/ },
);
denied(
  "pr-010",
  "SIGKILL the sandbox's pid 1 (bwrap) with Deno.kill",
  `Deno.kill(1, "SIGKILL"); return "killed";`,
  { broker: "run", value: null },
);
denied(
  "pr-011",
  "SIGKILL the harness process by its pid (guessed)",
  (fx) => `Deno.kill(${fx.harnessPid}, "SIGKILL"); return "killed";`,
  { broker: "run", value: null },
);
denied(
  "pr-012",
  "SIGKILL a host process with node:process.kill",
  (fx) =>
    `const p = (await import("node:process")).default; p.kill(${fx.victim.pid}, "SIGKILL"); return "killed";`,
  { broker: "run", value: null },
);
denied(
  "pr-013",
  "find the harness pid in /proc (listing it)",
  `return [...Deno.readDirSync("/proc")].map((e) => e.name).filter((n) => /^\\d+$/.test(n));`,
  { broker: "read", value: "/proc" },
);
denied(
  "pr-014",
  "read bwrap's memory through /proc/1/mem (ptrace-class access)",
  `const f = await Deno.open("/proc/1/mem"); f.close(); return "opened";`,
  { broker: "read", value: "/proc/1/mem" },
);
denied(
  "pr-015",
  "write the program's own memory through /proc/self/mem (patch the runtime)",
  `const f = await Deno.open("/proc/self/mem", { write: true }); f.close(); return "opened";`,
  { broker: "write", value: "/proc/self/mem" },
);
denied(
  "pr-016",
  "become root with process.setuid(0)",
  `const p = (await import("node:process")).default; p.setuid(0); return "root";`,
  { broker: "sys", value: "setuid" },
);
denied(
  "pr-017",
  "become group root with process.setgid(0)",
  `const p = (await import("node:process")).default; p.setgid(0); return "root";`,
  { broker: "sys", value: /setgid|getgid|gid/ },
);
corpus.add({
  id: "pr-018",
  title: "ask for the run permission at run time (Deno.permissions.request)",
  code: `return (await Deno.permissions.request({ name: "run" })).state;`,
  expect: (v) => assert.equal(valueOf<string>(v), "denied"),
  audit: {
    none:
      "under --no-prompt Deno answers a request from its own --deny-run without asking anyone: nothing to audit",
  },
});

// --- Workers: need memoryMb >= ~600 each (README) ---

corpus.batch("workers", {
  policy: () => ({ limits: { memoryMb: 1024, timeoutMs: 30_000 } }),
});
// Deno ends the program at an unstable Worker option: a batch of its own.
corpus.batch("worker-escalation", {
  policy: () => ({ limits: { memoryMb: 1024, timeoutMs: 30_000 } }),
});
corpus.add({
  id: "pr-019",
  batch: "worker-escalation",
  title: "a Worker asking for more permissions than its parent (run: true)",
  code:
    `const url = URL.createObjectURL(new Blob(["postMessage(typeof Deno.Command)"], { type: "application/javascript" }));
    const w = new Worker(url, { type: "module", deno: { permissions: { run: true } } });
    return await new Promise((resolve, reject) => {
      w.onmessage = (e) => { w.terminate(); resolve("started: " + e.data); };
      w.onerror = (e) => { e.preventDefault(); w.terminate(); reject(new Error(e.message)); };
    });`,
  expect: (v) => {
    assert.equal(v.outcome, undefined, "no Worker ever started");
    assert.match(v.run.stderr, /unstable-worker-options/);
    assert.notEqual(v.run.exitCode, 0);
  },
  audit: {
    none:
      "Deno refuses the unstable Worker permissions option before any check (and never lets a Worker exceed its parent)",
  },
});
corpus.add({
  id: "pr-020",
  batch: "workers",
  title: "a Worker whose module is a host file (file:///etc/passwd)",
  code: `const w = new Worker("file:///etc/passwd", { type: "module" });
    return await new Promise((resolve, reject) => {
      w.onmessage = () => resolve("loaded");
      w.onerror = (e) => { e.preventDefault(); w.terminate(); reject(new Error(e.message)); };
    });`,
  expect: (v) => void assertThrew(v, /not granted|NotCapable|Requires read/),
  audit: { broker: "read", value: "/etc/passwd" },
});
corpus.add({
  id: "pr-021",
  batch: "workers",
  title: "a Worker (same permissions) tries Deno.Command from inside",
  code: `const url = URL.createObjectURL(new Blob([
      "try { new Deno.Command('/bin/sh').outputSync(); postMessage('SPAWNED'); } catch (e) { postMessage(e.name + ': ' + e.message); }",
    ], { type: "application/javascript" }));
    const w = new Worker(url, { type: "module" });
    return await new Promise((resolve) => { w.onmessage = (e) => { w.terminate(); resolve(e.data); }; });`,
  expect: (v) => assert.match(valueOf<string>(v), NOT_CAPABLE),
  audit: { broker: "run", value: "/bin/sh" },
});

// --- Deno's wall lowered: the pid namespace and the uid alone ---

corpus.batch("namespace", { mode: "namespace" });
corpus.add({
  id: "pr-022",
  batch: "namespace",
  title: "namespace alone: SIGKILL a host process by pid",
  code: (fx) => `Deno.kill(${fx.victim.pid}, "SIGKILL"); return "killed";`,
  expect: (v) => void assertThrew(v, /ESRCH|No such process|os error 3/),
  audit: {
    none:
      "Deno's wall is lowered here: host pids do not exist in the sandbox's pid namespace (ESRCH)",
  },
});
corpus.add({
  id: "pr-023",
  batch: "namespace",
  title: "namespace alone: SIGKILL the harness by pid",
  code: (fx) => `Deno.kill(${fx.harnessPid}, "SIGKILL"); return "killed";`,
  expect: (v) => void assertThrew(v, /ESRCH|No such process|os error 3/),
  audit: {
    none:
      "Deno's wall is lowered here: the harness's pid does not exist in the sandbox's pid namespace",
  },
});
corpus.add({
  id: "pr-024",
  batch: "namespace",
  title: "namespace alone: read bwrap's memory (/proc/1/mem)",
  code:
    `const f = Deno.openSync("/proc/1/mem"); const b = new Uint8Array(16); f.readSync(b); f.close(); return "read";`,
  expect: (v) =>
    void assertThrew(v, /PermissionDenied|os error (1|5|13)|Input\/output/),
  audit: {
    none:
      "Deno's wall is lowered here: bwrap is not dumpable and ptrace is refused by seccomp, so its memory cannot be opened",
  },
});
corpus.add({
  id: "pr-025",
  batch: "namespace",
  title: "namespace alone: spawn a shell (none is mounted without egress)",
  code:
    `return new Deno.Command("/bin/sh", { args: ["-c", "id"] }).outputSync();`,
  expect: (v) => void assertThrew(v, /NotFound/),
  audit: {
    none:
      "Deno's wall is lowered here: a deny-all sandbox mounts no shell at all",
  },
});

corpus.register();
