/**
 * Sandbox paths in the `@deno/sandbox`-compatible API: path arguments
 * (strings or `file:` URLs) to strings, and relative paths to /scratch, the
 * sandbox's working directory (the programs' cwd, where the SDK's relative
 * paths start). airlock's own `SandboxFs` decides what a path may reach;
 * these helpers only spell paths.
 *
 * @module
 */

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
 *
 * @example Usage
 * ```ts
 * import { toAbsolute } from "./paths.ts";
 * import assert from "node:assert/strict";
 * assert.equal(toAbsolute("src/../main.ts"), "/scratch/main.ts");
 * assert.equal(toAbsolute("../../etc"), "/etc"); // outside /scratch: the fs refuses it
 * ```
 */
export function toAbsolute(path: string): string {
  return normalise(path.startsWith("/") ? path : `${WORKDIR}/${path}`);
}

/**
 * The path relative to /scratch, or null when it is outside.
 *
 * @param path A sandbox path.
 * @returns `"dir/main.ts"`, or null.
 *
 * @example Usage
 * ```ts
 * import { relativeToWorkdir } from "./paths.ts";
 * import assert from "node:assert/strict";
 * assert.equal(relativeToWorkdir("/scratch/dir/main.ts"), "dir/main.ts");
 * assert.equal(relativeToWorkdir("."), "");
 * assert.equal(relativeToWorkdir("../main.ts"), null);
 * ```
 */
export function relativeToWorkdir(path: string): string | null {
  const absolute = toAbsolute(path);
  if (absolute === WORKDIR) return "";
  return absolute.startsWith(`${WORKDIR}/`)
    ? absolute.slice(WORKDIR.length + 1)
    : null;
}

/**
 * Joins a name to a directory path.
 *
 * @param dir A sandbox path.
 * @param name A name in it.
 * @returns The normalised path.
 *
 * @example Usage
 * ```ts
 * import { join } from "./paths.ts";
 * console.log(join("/scratch/a", "../b")); // "/scratch/b"
 * ```
 */
export function join(dir: string, name: string): string {
  return normalise(`${dir}/${name}`);
}

/**
 * Removes `.`, `..` and repeated slashes (an absolute path never climbs
 * above `/`; a relative one keeps its leading `..`).
 *
 * @param path A sandbox path.
 * @returns The normalised path (`.` for an empty relative one).
 *
 * @example Usage
 * ```ts
 * import { normalise } from "./paths.ts";
 * import assert from "node:assert/strict";
 * assert.equal(normalise("/a/../../b//./c"), "/b/c");
 * assert.equal(normalise("../a/./b"), "../a/b");
 * assert.equal(normalise("a/.."), ".");
 * ```
 */
export function normalise(path: string): string {
  const absolute = path.startsWith("/");
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === ".." && parts.length > 0 && parts.at(-1) !== "..") parts.pop();
    else if (part !== ".." || !absolute) parts.push(part);
  }
  const joined = parts.join("/");
  return absolute ? `/${joined}` : joined || ".";
}
