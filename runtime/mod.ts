/**
 * The untrusted side's cage: bubblewrap command lines, the seccomp filter,
 * resource limits, Deno permission flags, host tool discovery and the
 * launcher that starts one sandboxed Deno process.
 *
 * @example Usage
 * ```ts
 * import { buildSeccompFilter, DEFAULT_LIMITS } from "./mod.ts";
 * console.log(buildSeccompFilter().length > 0, DEFAULT_LIMITS.timeoutMs);
 * ```
 *
 * @module
 */

export * from "./bwrap_args.ts";
export * from "./deno_permissions.ts";
export * from "./exit_reason.ts";
export * from "./host_identity.ts";
export * from "./host_tools.ts";
export * from "./launcher.ts";
export * from "./limits.ts";
export * from "./scratch_volume.ts";
export * from "./seccomp_filter.ts";
export * from "./workspace.ts";
export * from "./warm_boot.ts";
