/**
 * Turns the policy's read-only inputs into bind mounts, checking up front
 * that each exists and that the sandbox's uid can read it (a bind mount does
 * not change file permissions), or copying it when the policy asks.
 *
 * @module
 */

import type { Mount } from "../../runtime/bwrap_args.ts";
import type { Workspace } from "../../runtime/workspace.ts";
import type { PolicyInputMount } from "../policy.ts";
import { InputError } from "../errors.ts";
import { normalisePath } from "../paths.ts";

// Defined with the harness's other errors; re-exported for existing imports.
export { InputError };

/**
 * Prepares the mounts for `inputs`.
 *
 * @param inputs Normalised inputs from the policy.
 * @param workspace Where copies go.
 * @param privateUid Whether the sandbox runs as its own host uid.
 * @returns Read-only mounts, in policy order.
 * @throws {InputError} If a source is missing or unreadable by the sandbox.
 *
 * @example Usage
 * ```ts ignore
 * const mounts = await prepareInputs(policy.inputs, workspace, true);
 * ```
 */
export async function prepareInputs(
  inputs: readonly PolicyInputMount[],
  workspace: Workspace,
  privateUid: boolean,
): Promise<Mount[]> {
  const mounts: Mount[] = [];
  for (const [index, input] of inputs.entries()) {
    let real: string;
    try {
      // Resolve symlinks on the harness side: the mount shows what the
      // operator named, and a link swapped later cannot redirect it.
      real = await Deno.realPath(input.source);
    } catch {
      throw new InputError(
        `Cannot mount input '${input.source}' as it does not exist or cannot be resolved${
          targetHint(input.source)
        }`,
      );
    }
    // A link leading out of the input would let a program chdir through it
    // and have relative paths checked against the wrong directory.
    await assertLinksStayInside(real, input.target, input.source);
    if (input.copy) {
      const dest = `${workspace.boxDir}/input-${index}`;
      await copyTree(real, dest);
      await chownTree(workspace, dest);
      mounts.push({ kind: "ro-bind", source: dest, dest: input.target });
      continue;
    }
    if (privateUid) {
      const problem = await unreadableByOthers(real);
      if (problem) {
        throw new InputError(
          `Cannot mount input '${input.source}' as the sandbox's user cannot read it (${problem}): ` +
            `make it readable with 'chmod o+rX', or set "copy": true for this input`,
        );
      }
    }
    mounts.push({ kind: "ro-bind", source: real, dest: input.target });
  }
  return mounts;
}

/** Most entries of one input checked for symlinks. */
const MAX_CHECKED_ENTRIES = 200_000;

/**
 * Refuses an input holding a symlink that resolves, inside the sandbox,
 * outside the input's own mount: the link is read as the sandbox would read
 * it (absolute targets from the sandbox root, relative ones from the link's
 * own directory there).
 */
async function assertLinksStayInside(
  root: string,
  target: string,
  named: string,
): Promise<void> {
  const info = await Deno.lstat(root);
  if (!info.isDirectory) return;
  let checked = 0;
  const stack: [string, string][] = [[root, target]];
  while (stack.length > 0) {
    const [hostDir, sandboxDir] = stack.pop()!;
    for await (const entry of Deno.readDir(hostDir)) {
      if (++checked > MAX_CHECKED_ENTRIES) {
        throw new InputError(
          `Cannot mount input '${named}' as it holds more than ${MAX_CHECKED_ENTRIES} entries to check for symlinks: mount a smaller directory`,
        );
      }
      const hostPath = `${hostDir}/${entry.name}`;
      const sandboxPath = `${sandboxDir}/${entry.name}`;
      if (entry.isDirectory) {
        stack.push([hostPath, sandboxPath]);
      } else if (entry.isSymlink) {
        const link = await Deno.readLink(hostPath);
        // A link that climbs above "/" is refused too (null), never
        // clamped into the input.
        const resolved = normalisePath(link, { cwd: sandboxDir });
        if (
          resolved === null ||
          (resolved !== target && !resolved.startsWith(`${target}/`))
        ) {
          throw new InputError(
            `Cannot mount input '${named}' as '${hostPath}' is a symlink leading out of it (to '${link}'): remove it or mount its target as its own input`,
          );
        }
      }
    }
  }
}

/** Returns why `path` is not readable by "others", or null. */
async function unreadableByOthers(path: string): Promise<string | null> {
  const info = await Deno.stat(path);
  const mode = info.mode ?? 0;
  if (info.isDirectory && (mode & 0o005) !== 0o005) {
    return `directory mode ${octal(mode)} lacks o+rx`;
  }
  if (!info.isDirectory && (mode & 0o004) === 0) {
    return `file mode ${octal(mode)} lacks o+r`;
  }
  const parts = path.split("/").filter(Boolean);
  for (let i = parts.length - 1; i > 0; i--) {
    const dir = "/" + parts.slice(0, i).join("/");
    const dirMode = (await Deno.stat(dir)).mode ?? 0;
    if ((dirMode & 0o001) === 0) {
      return `parent directory '${dir}' (mode ${octal(dirMode)}) lacks o+x`;
    }
  }
  return null;
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

async function copyTree(source: string, dest: string): Promise<void> {
  // -R copies symlinks as symlinks (never their targets): a link inside an
  // input cannot pull a host file into the copy.
  const out = await new Deno.Command("cp", {
    args: ["-R", "-P", "--preserve=mode,timestamps", "--", source, dest],
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin", LC_ALL: "C" },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new InputError(
      `Cannot copy input '${source}': ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
}

async function chownTree(workspace: Workspace, root: string): Promise<void> {
  await workspace.giveToSandbox(root);
  const info = await Deno.lstat(root);
  if (!info.isDirectory) return;
  for await (const entry of Deno.readDir(root)) {
    const path = `${root}/${entry.name}`;
    if (entry.isSymlink) continue;
    if (entry.isDirectory) await chownTree(workspace, path);
    else await workspace.giveToSandbox(path);
  }
}

/**
 * "data.csv:/etc/x": a sandbox path outside /inputs/ is not split off, so
 * the whole text was taken as the host path. When the part before the last
 * colon exists, say the rule the writer missed.
 */
function targetHint(source: string): string {
  const colon = source.lastIndexOf(":");
  if (colon <= 0) return "";
  try {
    Deno.statSync(source.slice(0, colon));
  } catch {
    return "";
  }
  return `; if '${
    source.slice(colon + 1)
  }' is meant as the path inside the sandbox, it must be under /inputs/ (e.g. '${
    source.slice(0, colon)
  }:/inputs/data')`;
}
