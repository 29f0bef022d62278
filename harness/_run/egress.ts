/**
 * Connects a sandbox to the injector: compiles the policy's egress parts,
 * writes the CA certificate the sandbox will trust (and nothing else), opens
 * one injector socket per run, and says which environment and Deno grants
 * the program gets for it.
 *
 * @module
 */

import type { Mount } from "../../runtime/bwrap_args.ts";
import type { DenoGrants } from "../../runtime/deno_permissions.ts";
import { EGRESS_PORT, SANDBOX_PATHS } from "../../runtime/launcher.ts";
import type { Workspace } from "../../runtime/workspace.ts";
import type { EgressEvent } from "../../injector/audit.ts";
import { bridgeSource, SANDBOX_RESOLVER } from "../../injector/bridge.ts";
import {
  compileEgressPolicy,
  withNetworkPolicy,
} from "../../injector/egress_policy.ts";
import type {
  EgressBinding,
  EgressScope,
  Injector,
} from "../../injector/injector.ts";
import {
  learnNetworkPolicy,
  type NetworkPolicy,
  NetworkPolicyError,
} from "../../injector/network_policy.ts";
import type { ActivePolicy } from "../../injector/proxy_session.ts";
import type { ConnectTo } from "../../injector/resolver.ts";
import type { SecretSources } from "../../injector/secret_refs.ts";
import { type Policy, PolicyError } from "../policy.ts";

/** Where the CA certificate appears inside the sandbox. */
export const SANDBOX_CA_PATH = "/etc/airlock/ca.pem";
/** The proxy URL the program is given. */
export const PROXY_URL = `http://127.0.0.1:${EGRESS_PORT}`;

/**
 * The name-resolution files of a sandbox with egress (mounted read-only
 * over `/etc`): names are looked up in the sandbox's hosts file, then
 * asked of the transparent bridge's resolver, which answers from the
 * policy alone. No search domain: a name is asked as written.
 */
const NAME_FILES = {
  "/etc/resolv.conf":
    `# airlock: names are answered inside the sandbox, from the policy alone
nameserver ${SANDBOX_RESOLVER}
options ndots:1 timeout:2 attempts:2
`,
  "/etc/hosts": `127.0.0.1 localhost
::1 localhost ip6-localhost ip6-loopback
`,
  "/etc/nsswitch.conf": `hosts: files dns
`,
} as const;

/** A sandbox's egress state. */
export interface SandboxEgress {
  /** The injector serving it. */
  readonly injector: Injector;
  /**
   * The sandbox's own pooled connections and leaf certificates in the
   * injector (shared by its runs, by no other sandbox).
   */
  readonly scope: EgressScope;
  /** The policy in force (swapped on live updates). */
  active: ActivePolicy;
  /** Host path of the CA certificate file. */
  readonly caFile: string;
  /** Host paths of the transparent bridge's script and name files. */
  readonly bridgeFiles: {
    readonly script: string;
    readonly mounts: readonly Mount[];
  };
  /** Placeholder environment (name -> opaque token). */
  readonly placeholderEnv: Readonly<Record<string, string>>;
  /** Where secret references resolve (kept for live updates). */
  readonly sources: SecretSources;
}

/** Harness-side inputs for {@linkcode setupEgress}. */
export interface EgressOptions {
  /** Values for `${secret:NAME}`. */
  secrets?: Readonly<Record<string, string>>;
  /** `${env:NAME}` lookup. */
  env?: (name: string) => string | undefined;
  /** Extra connect-to mappings from the harness (CLI flags). */
  connectTo?: readonly ConnectTo[];
  /** Learn mode: record and answer every request locally, no secrets. */
  learn?: unknown;
}

/**
 * Whether a policy needs the injector at all. A deny-all sandbox without
 * placeholder secrets gets no socket and no bridge: no network path exists.
 *
 * @param policy The sandbox policy.
 * @returns True when egress must be set up.
 *
 * @example Usage
 * ```ts ignore
 * console.log(needsEgress(parsePolicy({}))); // false
 * ```
 */
export function needsEgress(policy: Policy): boolean {
  return policy.network !== "deny-all" ||
    Object.keys(policy.secrets).length > 0;
}

/**
 * Compiles the egress policy and writes the CA file into the workspace.
 *
 * @param policy The sandbox policy.
 * @param workspace Where the CA file goes.
 * @param injector The injector to use.
 * @param options Secret sources and connect-to mappings.
 * @returns The egress state.
 * @throws {PolicyError} For unresolved references or unreadable CA files,
 *   listed by path (fail closed: never a sandbox with a weaker policy).
 *
 * @example Usage
 * ```ts ignore
 * const egress = await setupEgress(policy, workspace, injector, {});
 * ```
 */
export async function setupEgress(
  policy: Policy,
  workspace: Workspace,
  injector: Injector,
  options: EgressOptions,
): Promise<SandboxEgress> {
  const sources: SecretSources = {
    ...(options.secrets ? { secrets: options.secrets } : {}),
    ...(options.env ? { env: options.env } : {}),
  };
  let compiled;
  const learn = options.learn !== undefined && options.learn !== false;
  try {
    compiled = await compileEgressPolicy(
      {
        // Learning never sees secrets: no rules, no placeholders.
        network: learn ? "deny-all" : policy.network,
        secrets: learn ? {} : policy.secrets,
        upstream: policy.upstream,
      },
      {
        sources,
        resolver: injector.resolver,
        connectTo: options.connectTo ?? [],
      },
    );
  } catch (error) {
    if (error instanceof NetworkPolicyError) {
      throw new PolicyError(error.issues);
    }
    throw error;
  }
  if (learn) compiled.active.network = learnNetworkPolicy();
  const caFile = `${workspace.boxDir}/ca.pem`;
  await Deno.writeTextFile(caFile, injector.caCertificatePem, { mode: 0o644 });
  // The transparent bridge's program and the files that point the
  // sandbox's resolver at it: the same for every run of the sandbox.
  const script = `${workspace.boxDir}/bridge.js`;
  await Deno.writeTextFile(script, bridgeSource(SANDBOX_PATHS.egressSocket), {
    mode: 0o644,
  });
  const mounts: Mount[] = [];
  for (const [dest, text] of Object.entries(NAME_FILES)) {
    const source = `${workspace.boxDir}/name-${dest.slice(5)}`;
    await Deno.writeTextFile(source, text, { mode: 0o644 });
    mounts.push({ kind: "ro-bind", source, dest });
  }
  return {
    injector,
    scope: injector.createScope(),
    active: compiled.active,
    caFile,
    bridgeFiles: { script, mounts },
    placeholderEnv: compiled.placeholderEnv,
    sources,
  };
}

/**
 * Applies a new network policy to a sandbox's next requests.
 *
 * @param egress The sandbox's egress state.
 * @param network A validated network policy.
 * @throws {PolicyError} If it cannot be compiled.
 *
 * @example Usage
 * ```ts ignore
 * updateEgress(egress, "deny-all");
 * ```
 */
export function updateEgress(
  egress: SandboxEgress,
  network: NetworkPolicy,
): void {
  try {
    egress.active = withNetworkPolicy(egress.active, network, egress.sources);
  } catch (error) {
    if (error instanceof NetworkPolicyError) {
      throw new PolicyError(error.issues);
    }
    throw error;
  }
  // "Inject during setup, remove before untrusted code": an upstream that
  // authenticated a pooled connection under the old credentials would
  // otherwise keep serving the next run as their owner.
  egress.scope.dropConnections();
}

/**
 * Releases what the sandbox holds in the injector (pooled upstream
 * connections, leaf certificates). Call once its runs are over.
 *
 * @param egress The sandbox's egress state.
 *
 * @example Usage
 * ```ts ignore
 * closeEgress(egress);
 * ```
 */
export function closeEgress(egress: SandboxEgress): void {
  egress.scope.close();
}

/** What one run gets for egress. */
export interface RunEgress {
  /** The run's injector socket. */
  binding: EgressBinding;
  /** Environment for the program. */
  env: Record<string, string>;
  /** Deno grants. */
  grants: Pick<DenoGrants, "net" | "env">;
  /** Read-only mounts (the CA file, the name files). */
  mounts: Mount[];
  /**
   * The transparent bridge: its script and the ports it listens on (those
   * of the policy in force at the run's start).
   */
  bridge: { script: string; ports: number[] };
}

/**
 * Opens the run's injector socket and describes the program's side.
 *
 * @param egress The sandbox's egress state.
 * @param run Socket path, ids, owner and audit sink.
 * @returns The binding, environment, grants and mounts.
 *
 * @example Usage
 * ```ts ignore
 * const run = await bindRun(egress, { socketPath, sandboxId, runId, ownerUid, audit });
 * ```
 */
export async function bindRun(
  egress: SandboxEgress,
  run: {
    socketPath: string;
    sandboxId: string;
    runId: string;
    ownerUid: number | null;
    audit: (event: EgressEvent) => void;
  },
): Promise<RunEgress> {
  const binding = await egress.injector.bind({
    socketPath: run.socketPath,
    sandboxId: run.sandboxId,
    runId: run.runId,
    // Read at every request: live updates apply to the next one.
    policy: () => egress.active,
    audit: run.audit,
    ownerUid: run.ownerUid,
    scope: egress.scope,
  });
  const grants = egress.active.network.denoNetGrants;
  return {
    binding,
    env: {
      HTTP_PROXY: PROXY_URL,
      HTTPS_PROXY: PROXY_URL,
      http_proxy: PROXY_URL,
      https_proxy: PROXY_URL,
      // Loopback goes through the proxy too (it refuses it): nothing bypasses.
      NO_PROXY: "",
      no_proxy: "",
      // node:http / node:https and npm clients built on them follow the proxy.
      NODE_USE_ENV_PROXY: "1",
      // Trust the injector's CA and nothing else: no host /etc/ssl exists
      // inside, and the cert dir points nowhere.
      DENO_TLS_CA_STORE: "system",
      SSL_CERT_FILE: SANDBOX_CA_PATH,
      SSL_CERT_DIR: "/nonexistent",
      ...egress.placeholderEnv,
    },
    grants: {
      // node:http checks the proxy's address as well as the target.
      net: grants === null ? "all" : [...grants, `127.0.0.1:${EGRESS_PORT}`],
      env: Object.keys(egress.placeholderEnv),
    },
    mounts: [
      { kind: "ro-bind", source: egress.caFile, dest: SANDBOX_CA_PATH },
      ...egress.bridgeFiles.mounts,
    ],
    bridge: {
      script: egress.bridgeFiles.script,
      ports: [
        ...new Set([
          ...egress.active.network.ports.http,
          ...egress.active.network.ports.tcp,
        ]),
      ],
    },
  };
}
