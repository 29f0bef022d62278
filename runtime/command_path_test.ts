import assert from "node:assert/strict";
import {
  COMMAND_LINK_DIR,
  commandLinkMounts,
  COMMON_COMMANDS,
  hostCommandNames,
} from "./command_path.ts";

Deno.test("commandLinkMounts() links each plain name into the PATH directory, once", () => {
  const mounts = commandLinkMounts(["sh", "git", "sh"], "/usr/bin/deno");
  assert.deepEqual(mounts, [
    {
      kind: "symlink",
      target: "/usr/bin/deno",
      dest: `${COMMAND_LINK_DIR}/sh`,
    },
    {
      kind: "symlink",
      target: "/usr/bin/deno",
      dest: `${COMMAND_LINK_DIR}/git`,
    },
  ]);
});

Deno.test("commandLinkMounts() never places a link outside its directory", () => {
  // A host file name such as "../x" would put a link elsewhere in the
  // sandbox's root (bwrap creates the parents it needs).
  const names = ["..", ".", "../etc/passwd", "a/b", "", ".hidden", "x\ny"];
  assert.deepEqual(commandLinkMounts(names, "/usr/bin/deno"), []);
});

Deno.test("COMMON_COMMANDS holds the shells and network clients, each a plain name", () => {
  for (const name of ["sh", "bash", "curl", "wget", "git", "node", "python3"]) {
    assert.ok(COMMON_COMMANDS.includes(name), name);
  }
  assert.equal(
    commandLinkMounts(COMMON_COMMANDS, "/d").length,
    new Set(COMMON_COMMANDS).size,
  );
});

Deno.test("hostCommandNames() lists executables of absolute PATH entries only", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/tool-a`, "");
    await Deno.mkdir(`${dir}/subdir`);
    const names = hostCommandNames(`${dir}:relative/dir:/nonexistent`);
    assert.deepEqual(names, ["tool-a"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
