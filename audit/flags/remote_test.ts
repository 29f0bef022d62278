import assert from "node:assert/strict";
import { remoteScript } from "./remote.ts";

Deno.test("remoteScript() tells pinned scripts (an immutable version or a commit) from ones that can change", () => {
  const pinned = [
    "https://deno.land/x/lume@v2.3.3/cli.ts",
    "https://deno.land/std@0.224.0/http/file_server.ts",
    "jsr:@deno/bump-workspaces@0.1.22/cli",
    "jsr:@std/http@1.0.9/file-server",
    "npm:create-vite@5.5.2",
    "https://jsr.io/@std/http/1.0.9/file_server.ts",
    "https://esm.sh/preact@10.19.6",
    "https://cdn.jsdelivr.net/npm/lodash@4.17.21/lodash.js",
    "https://raw.githubusercontent.com/oakserver/oak/0123456789abcdef0123456789abcdef01234567/mod.ts",
  ];
  for (const spec of pinned) {
    assert.equal(remoteScript(spec)?.pinned, true, spec);
  }
  const unpinned: [string, string][] = [
    ["https://deno.land/x/lume/cli.ts", "no version"],
    ["https://deno.land/std/examples/welcome.ts", "no version"],
    ["https://fresh.deno.dev", "no version"],
    ["https://lume.land/init.ts", "no version"],
    ["jsr:@std/http/file-server", "no version"],
    ["npm:create-vite@latest", "version range 'latest'"],
    ["jsr:@fresh/init@^2", "version range '^2'"],
    [
      "https://raw.githubusercontent.com/oakserver/oak/main/examples/static_server.ts",
      "branch or tag 'main' (it can move)",
    ],
    ["https://esm.sh/preact", "no version"],
  ];
  for (const [spec, why] of unpinned) {
    const remote = remoteScript(spec);
    assert.equal(remote?.pinned, false, spec);
    assert.equal(remote?.why, why, spec);
  }
});

Deno.test("remoteScript() names the host and shows where a version goes; a local path is not remote", () => {
  assert.deepEqual(remoteScript("https://deno.land/x/lume/cli.ts"), {
    host: "deno.land",
    pinned: false,
    why: "no version",
    pinnedForm: "https://deno.land/x/lume@<version>/cli.ts",
  });
  assert.equal(
    remoteScript("jsr:@std/http/file-server")?.pinnedForm,
    "jsr:@std/http@<version>/file-server",
  );
  assert.equal(
    remoteScript(
      "https://raw.githubusercontent.com/o/r/main/x.ts",
    )?.pinnedForm,
    "https://raw.githubusercontent.com/o/r/<commit>/x.ts",
  );
  for (
    const local of ["main.ts", "./x.ts", "/app/main.ts", "file:///a.ts", "-"]
  ) {
    assert.equal(remoteScript(local), null, local);
  }
});
