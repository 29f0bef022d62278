/**
 * The one way the harness normalises a path: `.` and empty segments go,
 * `..` takes back one segment, and a path that would climb above its root
 * is refused (`null`), never clamped. Clamping would silently bind `../x`
 * to the root's own `x`: an import, a symlink target or a permission
 * request would then name a file its writer never meant (the bundler, the
 * input checks, the permission broker, the policy and `sandbox.fs` all use
 * this function; see `paths_test.ts` for every case in one table).
 *
 * The root is `/` of whatever namespace the path lives in: the sandbox's
 * filesystem, a program's directory (its files are named from `/`), or the
 * host. Callers that need more than a normal form say so with an option
 * here rather than with a normaliser of their own.
 *
 * @example Normalise, refusing to climb
 * ```ts
 * import { normalisePath } from "./paths.ts";
 * console.log(normalisePath("/scratch/./a//b/../c")); // "/scratch/a/c"
 * console.log(normalisePath("/scratch/../../etc/passwd")); // null
 * console.log(normalisePath("out.txt", { cwd: "/scratch" })); // "/scratch/out.txt"
 * console.log(normalisePath("src/../main.ts", { relative: "keep" })); // "main.ts"
 * ```
 *
 * @module
 */

/** Options for {@linkcode normalisePath}. */
export interface NormalisePathOptions {
  /**
   * The directory a relative path is resolved against (itself taken from
   * the root); default `/`, so `a/b` is `/a/b`. Ignored for an absolute
   * path and with `relative: "keep"`.
   */
  cwd?: string;
  /**
   * `"resolve"` (default): a relative path is resolved against `cwd`.
   * `"keep"`: a relative path stays relative, for APIs that resolve it
   * later against a directory not known here; its leading `..` segments
   * are kept (they climb above no root yet) and an empty result is `"."`.
   * An absolute path is refused above `/` either way.
   */
  relative?: "resolve" | "keep";
}

/**
 * Normalises a path, refusing one that climbs above its root.
 *
 * @param path A `/`-separated path (absolute, or relative: see `options`).
 * @param options How a relative path is treated.
 * @returns The normal form (absolute unless `relative: "keep"` kept it
 *   relative), or null when the path climbs above `/`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalisePath } from "./paths.ts";
 * assert.equal(normalisePath("/a/b/../c"), "/a/c");
 * // Refused, never clamped to "/x".
 * assert.equal(normalisePath("/../x"), null);
 * assert.equal(normalisePath("../etc", { cwd: "/scratch" }), "/etc");
 * assert.equal(normalisePath("../../etc", { cwd: "/scratch" }), null);
 * assert.equal(normalisePath("../a/./b", { relative: "keep" }), "../a/b");
 * ```
 */
export function normalisePath(
  path: string,
  options: NormalisePathOptions = {},
): string | null {
  const keep = options.relative === "keep" && !path.startsWith("/");
  const full = keep || path.startsWith("/")
    ? path
    : `${options.cwd ?? "/"}/${path}`;
  const parts: string[] = [];
  for (const part of full.split("/")) {
    if (part === "" || part === ".") continue;
    if (part !== "..") {
      parts.push(part);
    } else if (parts.length > 0 && parts.at(-1) !== "..") {
      parts.pop();
    } else if (keep) {
      // Relative to a directory chosen later: not above any root yet.
      parts.push(part);
    } else {
      // Above the root there is nothing; clamping would bind "../x" to the
      // root's own x (an import, a link target, a permission request).
      return null;
    }
  }
  return keep ? parts.join("/") || "." : `/${parts.join("/")}`;
}
