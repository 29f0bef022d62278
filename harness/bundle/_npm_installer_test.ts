import assert from "node:assert/strict";
import { installInSandbox } from "./_npm_installer.ts";

/** Host processes of helper sandboxes (bwrap names them airlock-helper) mounting `path`. */
function helperProcesses(path: string): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      if (
        cmdline.includes("\0airlock-helper\0") && cmdline.includes(path)
      ) found.push(+entry.name);
    } catch {
      // exited while we looked
    }
  }
  return found;
}

Deno.test({
  name:
    "installInSandbox() cut off by its time limit at any moment of the installer's start returns a clear failure and leaves no process",
  // Only a root harness gives helpers a uid of their own to sweep.
  ignore: Deno.uid() !== 0,
  async fn() {
    // Limits from 1 ms (bwrap's monitor killed mid-setup, before its child
    // armed --die-with-parent) to past Deno's start.
    for (const timeoutMs of [1, 2, 3, 5, 8, 13, 21, 34, 55, 89]) {
      const staging = await Deno.makeTempDir({ prefix: "airlock-install-" });
      try {
        await Deno.writeTextFile(
          `${staging}/package.json`,
          JSON.stringify({ dependencies: { ms: "2.1.3" } }),
        );
        const outcome = await installInSandbox(staging, { timeoutMs });
        // Nothing installs from the registry within 89 ms.
        assert.equal(outcome.success, false);
        assert.match(
          outcome.why,
          new RegExp(`^deno install took longer than ${timeoutMs / 1000} s`),
        );
        assert.deepEqual(helperProcesses(staging), [], `limit ${timeoutMs} ms`);
      } finally {
        await Deno.remove(staging, { recursive: true });
      }
    }
  },
});
