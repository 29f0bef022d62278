/**
 * Descriptor isolation: nothing the harness has open beyond stdin, stdout
 * and stderr reaches bwrap or the sandbox. A harness often inherits
 * descriptors without close-on-exec from whoever started it (a shell's
 * `exec 200>lock`, a service manager's sockets); neither `Deno.Command` nor
 * bwrap closes them, so the launcher does. Proven with Deno's wall lowered
 * (`tests/kits/namespace_only.ts`): only the launcher stands in the way.
 */

import assert from "node:assert/strict";
import { buildLaunchCommand, LAUNCHER_NAME } from "../runtime/launcher.ts";
import { DEFAULT_LIMITS } from "../runtime/limits.ts";
import type { HostTools } from "../runtime/host_tools.ts";

const isRoot = Deno.uid() === 0;
const decoder = new TextDecoder();

/** Lists `dev:ino` of every open descriptor's file (run inside and outside). */
const PROBE = `
const seen = [];
for (const entry of Deno.readDirSync("/proc/self/fd")) {
  try {
    const info = Deno.statSync("/proc/self/fd/" + entry.name);
    seen.push(info.dev + ":" + info.ino);
  } catch { /* the directory's own descriptor, closed meanwhile */ }
}
console.log(JSON.stringify(seen));
`;

/** A harness process that starts with descriptors 7 and 200 open on files. */
async function harnessWithInheritedDescriptors(): Promise<{
  markers: string[];
  host: string[];
  sandbox: string[];
}> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-fds-" });
  try {
    const low = `${dir}/low.txt`;
    const high = `${dir}/high.txt`;
    await Deno.writeTextFile(low, "low");
    await Deno.writeTextFile(high, "high");
    const markers = [low, high].map((p) => {
      const info = Deno.statSync(p);
      return `${info.dev}:${info.ino}`;
    });
    const script = `${dir}/harness.ts`;
    const namespaceOnly =
      new URL("./kits/namespace_only.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { runNamespaceOnly } from ${JSON.stringify(namespaceOnly)};
       const probe = ${JSON.stringify(PROBE)};
       // Control: a plain child of this process inherits both descriptors.
       const plain = await new Deno.Command(Deno.execPath(), {
         args: ["eval", probe], env: { DENO_NO_UPDATE_CHECK: "1" },
         stdout: "piped", stderr: "inherit",
       }).output();
       const host = JSON.parse(new TextDecoder().decode(plain.stdout));
       const inside = await runNamespaceOnly(probe);
       if (inside.code !== 0) throw new Error(inside.stderr);
       console.log(JSON.stringify({ host, sandbox: JSON.parse(inside.stdout) }));`,
    );
    const config = new URL("../deno.json", import.meta.url).pathname;
    // bash opens the files on 7 and 200 without close-on-exec, then becomes
    // the harness: exactly how an inherited descriptor arrives.
    const out = await new Deno.Command("bash", {
      args: [
        "-c",
        'exec 7<"$1" 200<"$2"; exec "$3" run -A --config "$4" "$5"',
        "harness",
        low,
        high,
        Deno.execPath(),
        config,
        script,
      ],
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, decoder.decode(out.stderr));
    const result = JSON.parse(decoder.decode(out.stdout));
    return { markers, ...result };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name:
    "a descriptor the harness inherited never reaches the sandbox (Deno's wall lowered)",
  ignore: !isRoot,
  async fn() {
    const { markers, host, sandbox } = await harnessWithInheritedDescriptors();
    // Control: the probe sees inherited descriptors where nothing closes them.
    for (const marker of markers) {
      assert.ok(host.includes(marker), `control: ${marker} in ${host}`);
    }
    for (const marker of markers) {
      assert.ok(
        !sandbox.includes(marker),
        `inherited descriptor ${marker} is open inside the sandbox`,
      );
    }
  },
});

/** The launcher's script and fixed arguments, from a real command line. */
function launcherScript(): string {
  const tools: HostTools = {
    bwrap: "/usr/bin/bwrap",
    prlimit: "/usr/bin/prlimit",
    sh: "/bin/sh",
    socat: null,
    deno: "/usr/bin/deno",
    denoVersion: "2.9.6",
    libraries: { deno: [], sh: [], socat: [] },
  };
  const { args } = buildLaunchCommand({
    tools,
    identity: {
      hostUid: null,
      hostGid: null,
      enforceProcesses: false,
      release() {},
    },
    seccompFilterPath: "/dev/null",
    statusPath: "/dev/null",
    program: "/nonexistent",
    limits: DEFAULT_LIMITS,
    grants: { read: [], write: [], net: [] },
  });
  assert.equal(args[0], "-c");
  assert.equal(args[2], LAUNCHER_NAME);
  return args[1]!;
}

/** Runs the launcher script under `shell` with descriptors 7 and 12 open. */
async function runScript(shell: string) {
  const out = await new Deno.Command("bash", {
    args: [
      "-c",
      'exec 7</dev/null 12</dev/null; exec "$0" -c "$1" "$2" /dev/null /dev/null /bin/sh -c "$3"',
      shell,
      launcherScript(),
      LAUNCHER_NAME,
      'for n in 3 4 7 12; do [ -e /proc/self/fd/$n ] && echo "open $n"; done; echo done',
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

Deno.test("launcher script under bash closes every inherited descriptor but the filter and status", async () => {
  const out = await runScript("bash");
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, "open 3\nopen 4\ndone\n");
});

Deno.test("launcher script under dash refuses to start with a descriptor it cannot close", async () => {
  const out = await runScript("dash");
  assert.equal(out.code, 125);
  assert.equal(out.stdout, "");
  assert.match(
    out.stderr,
    new RegExp(
      `^${LAUNCHER_NAME}: Cannot close the inherited file descriptor \\d+ with /bin/sh`,
    ),
  );
});
