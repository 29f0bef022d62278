/**
 * Sandbox paths in the `@deno/sandbox`-compatible API: path arguments
 * (strings or `file:` URLs) to strings, and relative paths to /scratch, the
 * sandbox's working directory (the programs' cwd, where the SDK's relative
 * paths start). Normal forms come from the harness's one normaliser
 * (`harness/paths.ts`): a path that climbs above `/` is refused, never
 * clamped back into /scratch. airlock's own `SandboxFs` decides what a
 * path may reach; these helpers only spell paths.
 *
 * @module
 */

import { SandboxFsError } from "../harness/errors.ts";
import { normalisePath } from "../harness/paths.ts";

/**
 * The sandbox path relative paths start from.
 *
 * @example Usage
 * ```ts
 * import { WORKDIR } from "./paths.ts";
 * console.log(WORKDIR); // "/scratch"
 * ```
 */
export const WORKDIR = "/scratch";

/**
 * A path argument as a string (file URLs to their path).
 *
 * @param path A string or a `file:` URL.
 * @returns The path.
 *
 * @example Usage
 * ```ts
 * import { toPath } from "./paths.ts";
 * import assert from "node:assert/strict";
 * assert.equal(toPath(new URL("file:///scratch/my%20file.ts")), "/scratch/my file.ts");
 * assert.throws(() => toPath(new URL("https://example.com/x")), TypeError);
 * ```
 */
export function toPath(path: string | URL): string {
  if (path instanceof URL) {
    if (path.protocol !== "file:") {
      throw new TypeError(
        `Cannot use '${path.href}' as a path: not a file URL`,
      );
    }
    return decodeURIComponent(path.pathname);
  }
  return String(path);
}

/**
 * The absolute sandbox path (relative paths are under /scratch).
 *
 * @param path A sandbox path.
 * @returns Normalised and absolute.
 * @throws {SandboxFsError} When the path climbs above `/`.
 *
 * @example Usage
 * ```ts
 * import { toAbsolute } from "./paths.ts";
 * import assert from "node:assert/strict";
 * assert.equal(toAbsolute("src/../main.ts"), "/scratch/main.ts");
 * assert.equal(toAbsolute("../etc"), "/etc"); // outside /scratch: the fs refuses it
 * assert.throws(() => toAbsolute("../../etc"), /climbs above/);
 * ```
 */
export function toAbsolute(path: string): string {
  return refuseClimbing(path, normalisePath(path, { cwd: WORKDIR }));
}

/**
 * The path relative to /scratch, or null when it is outside (or climbs
 * above `/`).
 *
 * @param path A sandbox path.
 * @returns `"dir/main.ts"`, `""` for /scratch itself, or null.
 *
 * @example Usage
 * ```ts
 * import { relativeToWorkdir } from "./paths.ts";
 * import assert from "node:assert/strict";
 * assert.equal(relativeToWorkdir("/scratch/dir/main.ts"), "dir/main.ts");
 * assert.equal(relativeToWorkdir("."), "");
 * assert.equal(relativeToWorkdir("../main.ts"), null);
 * assert.equal(relativeToWorkdir("/../scratch/main.ts"), null); // never clamped
 * ```
 */
export function relativeToWorkdir(path: string): string | null {
  const absolute = normalisePath(path, { cwd: WORKDIR });
  if (absolute === null) return null;
  if (absolute === WORKDIR) return "";
  return absolute.startsWith(`${WORKDIR}/`)
    ? absolute.slice(WORKDIR.length + 1)
    : null;
}

/**
 * Joins a name to a directory path, in normal form (a relative directory
 * stays relative).
 *
 * @param dir A sandbox path.
 * @param name A name in it.
 * @returns The normalised path.
 * @throws {SandboxFsError} When the result climbs above `/`.
 *
 * @example Usage
 * ```ts
 * import { join } from "./paths.ts";
 * import assert from "node:assert/strict";
 * assert.equal(join("/scratch/a", "../b"), "/scratch/b");
 * assert.equal(join(".", "main.ts"), "main.ts");
 * ```
 */
export function join(dir: string, name: string): string {
  return normalise(`${dir}/${name}`);
}

/**
 * Removes `.`, `..` and repeated slashes; a relative path stays relative
 * (its leading `..` kept: /scratch resolves it later).
 *
 * @param path A sandbox path.
 * @returns The normalised path (`.` for an empty relative one).
 * @throws {SandboxFsError} When an absolute path climbs above `/`.
 *
 * @example Usage
 * ```ts
 * import { normalise } from "./paths.ts";
 * import assert from "node:assert/strict";
 * assert.equal(normalise("/a/../b//./c"), "/b/c");
 * assert.equal(normalise("../a/./b"), "../a/b");
 * assert.equal(normalise("a/.."), ".");
 * assert.throws(() => normalise("/../scratch"), /climbs above/);
 * ```
 */
export function normalise(path: string): string {
  return refuseClimbing(path, normalisePath(path, { relative: "keep" }));
}

function refuseClimbing(path: string, normal: string | null): string {
  // Clamping '/../scratch/x' back to /scratch/x would reach a file its
  // writer never named; airlock's SandboxFs refuses such paths too.
  if (normal === null) {
    throw new SandboxFsError(
      `Cannot use '${path}': it climbs above the sandbox's root (only paths under ${WORKDIR} are reachable)`,
    );
  }
  return normal;
}
