/**
 * What a sandbox is made of before its first run, in the order it is made:
 * the policy (validated, limits checked), the host tools, a host uid, the
 * workspace (with its scratch), the seccomp filter, the inputs, and the
 * egress binding when the policy allows any network. Each step fails closed
 * with its own error; a failure undoes what was made before it.
 *
 * @module
 */

import type { Mount } from "../../runtime/bwrap_args.ts";
import { discoverHostTools, type HostTools } from "../../runtime/host_tools.ts";
import {
  type SandboxIdentity,
  SandboxIdentityPool,
} from "../../runtime/host_identity.ts";
import { assertValidLimits } from "../../runtime/limits.ts";
import { buildSeccompFilter } from "../../runtime/seccomp_filter.ts";
import { Workspace } from "../../runtime/workspace.ts";
import type { Injector } from "../../injector/injector.ts";
import { SandboxSetupError } from "../errors.ts";
import type { SandboxOptions } from "../options.ts";
import { parsePolicy, type Policy, PolicyError } from "../policy.ts";
import { needsEgress, type SandboxEgress, setupEgress } from "./egress.ts";
import { prepareInputs } from "./inputs.ts";

// uids are a host-wide resource, so their allocator is process-wide: two
// sandboxes must never share one (they would share RLIMIT_NPROC and files).
let defaultPool: SandboxIdentityPool | undefined;
let seccompFilter: Uint8Array | undefined;
// Sandboxes without their own injector share one (a CA costs ~70 ms); pass
// `injector` to keep sandboxes on separate CAs and pools.
let defaultInjector: Promise<Injector> | undefined;

/** A sandbox's parts, made and checked; the sandbox owns them from here. */
export interface SandboxParts {
  /** The validated policy. */
  policy: Policy;
  /** Host programs and libraries. */
  tools: HostTools;
  /** The sandbox's host uid (release it when the sandbox is gone). */
  identity: SandboxIdentity;
  /** The sandbox's workspace (close it when the sandbox is gone). */
  workspace: Workspace;
  /** Host path of the seccomp filter. */
  filterPath: string;
  /** Read-only input mounts, in policy order. */
  inputMounts: Mount[];
  /** Host path of the scratch directory, or null. */
  scratch: string | null;
  /** The egress binding, or null for no network at all. */
  egress: SandboxEgress | null;
}

/**
 * Makes a sandbox's parts from its options. Nothing runs yet.
 *
 * @param options The sandbox's options.
 * @returns The parts.
 * @throws {PolicyError} For an invalid policy or an unresolved secret.
 * @throws {MissingHostToolError} When bwrap or another tool is missing.
 * @throws {InputError} When an input is missing or unreadable.
 * @throws {SandboxSetupError} When the workspace path is too long.
 *
 * @example Usage
 * ```ts ignore
 * const parts = await setupSandbox({ policy: { scratch: true } });
 * ```
 */
export async function setupSandbox(
  options: SandboxOptions,
): Promise<SandboxParts> {
  const policy = parsePolicy(options.policy ?? {});
  if (options.allowNpm === false && policy.npm.allow.length > 0) {
    throw new PolicyError([{
      path: "npm.allow",
      message:
        "npm packages are turned off for this harness: remove npm.allow (the operator decides whether programs may use npm)",
    }]);
  }
  assertValidLimits(policy.limits);
  const tools = options.tools ??
    await discoverHostTools(
      options.denoPath ? { denoPath: options.denoPath } : {},
    );
  const identity =
    (options.identityPool ?? (defaultPool ??= new SandboxIdentityPool()))
      .acquire();
  let workspace: Workspace | undefined;
  try {
    workspace = await Workspace.create({
      identity,
      ...(options.tmpDir ? { tmpDir: options.tmpDir } : {}),
      // The scratch quota as a filesystem of its own (where possible).
      // Learn mode's writable copy of the user's directory lives there too.
      ...(policy.scratch || options.learn?.mirror !== undefined
        ? {
          scratch: {
            quotaBytes: policy.limits.scratchMb * 1024 * 1024,
            fs: options.scratchFs ?? "auto",
          },
        }
        : {}),
    });
    seccompFilter ??= buildSeccompFilter();
    const filterPath = await workspace.writeShared(
      "seccomp.bpf",
      seccompFilter,
    );
    const inputMounts = await prepareInputs(
      policy.inputs,
      workspace,
      identity.hostUid !== null,
    );
    // A unix socket path holds at most 107 bytes; the run sockets live in
    // the workspace, so a deep tmpDir would only fail at the first run.
    const longest = `${workspace.boxDir}/run-9999999/broker.sock`;
    if (new TextEncoder().encode(longest).length > 107) {
      throw new SandboxSetupError(
        `Cannot use '${
          options.tmpDir ?? workspace.root
        }' for sandbox workspaces: its path is too long for the run's unix sockets (at most 107 bytes); choose a shorter tmpDir`,
      );
    }
    const scratch = policy.scratch ? await workspace.scratchDir() : null;

    if (options.learn?.mirror !== undefined) {
      checkMirror(options.learn.mirror);
    }
    const egress = needsEgress(policy) || options.learn
      ? await setupEgress(
        policy,
        workspace,
        await injectorFor(options),
        options,
      )
      : null;
    return {
      policy,
      tools,
      identity,
      workspace,
      filterPath,
      inputMounts,
      scratch,
      egress,
    };
  } catch (error) {
    await workspace?.close();
    identity.release();
    throw error;
  }
}

/**
 * The injector a sandbox's egress goes through: its own, or the process's
 * shared one (created on first use).
 *
 * @param options The sandbox's options.
 * @returns The injector.
 *
 * @example Usage
 * ```ts ignore
 * const injector = await injectorFor({});
 * ```
 */
export function injectorFor(options: SandboxOptions): Promise<Injector> {
  if (options.injector) return Promise.resolve(options.injector);
  // Loaded on first use: a sandbox without network (the CLI's default)
  // never pays for the proxy, TLS and DNS modules.
  defaultInjector ??= import("../../injector/injector.ts")
    .then(({ Injector }) => Injector.create());
  // A failed creation (e.g. WebCrypto unavailable) is retried next time.
  defaultInjector.catch(() => (defaultInjector = undefined));
  return defaultInjector;
}

/** A learn-mode mirror must be a project directory, not the whole host. */
function checkMirror(path: string): void {
  let home: string | undefined;
  try {
    home = Deno.env.get("HOME");
  } catch { /* no env permission */ }
  const reserved = [
    "/",
    "/root",
    "/home",
    "/etc",
    "/proc",
    "/usr",
    "/var",
    "/tmp",
    home,
  ];
  if (
    !path.startsWith("/") || reserved.includes(path.replace(/\/+$/, "") || "/")
  ) {
    throw new TypeError(
      `Cannot mirror '${path}' into a learn-mode sandbox: run from a project directory (not /, $HOME or a system directory)`,
    );
  }
}
