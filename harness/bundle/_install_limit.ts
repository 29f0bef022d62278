/**
 * How many new npm package installs one bundle may cause: a program cannot
 * make the harness install without end. Its own module so the bundler reads
 * it without loading the npm resolver (and semver) for programs without
 * packages.
 *
 * @module
 */

/**
 * New package installs one bundle may cause.
 *
 * @example Usage
 * ```ts
 * import { MAX_INSTALLS_PER_BUNDLE } from "./_install_limit.ts";
 * console.log(MAX_INSTALLS_PER_BUNDLE); // 16
 * ```
 */
export const MAX_INSTALLS_PER_BUNDLE = 16;
