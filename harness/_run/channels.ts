/**
 * The per-run sockets a sandbox talks to the harness through: the injector
 * (egress) and the permission broker. Each run gets its own, bind-mounted at
 * fixed sandbox paths; their host paths are the run's identity. Opening
 * either fails the run before it starts (fail closed).
 *
 * @module
 */

import type { Mount } from "../../runtime/bwrap_args.ts";
import {
  type DenoGrants,
  SYSTEM_INFO_KINDS,
  type SystemInfoKind,
} from "../../runtime/deno_permissions.ts";
import { EGRESS_PORT, SANDBOX_PATHS } from "../../runtime/launcher.ts";
import type { EgressEvent } from "../../injector/audit.ts";
import { bindRun, type SandboxEgress } from "./egress.ts";
import {
  type BrokerMode,
  type PermissionBroker,
  sandboxProcessCwd,
  startPermissionBroker,
} from "../permission_broker.ts";
import type { AuditEvent } from "../run_result.ts";
import type { SystemPolicy } from "../policy_schema.ts";
import { RunAuditLog } from "../_audit_bounds.ts";
import { SandboxSetupError } from "../errors.ts";

/** What the program is allowed, before channels are added. */
export interface BaseGrants {
  /** Readable sandbox paths. */
  read: string[];
  /** Writable sandbox paths. */
  write: string[];
}

/** The open channels of one run. */
export interface RunChannels {
  /** Mounts for the sockets (and the CA file). */
  mounts: Mount[];
  /** Environment for the program. */
  env: Record<string, string>;
  /** Deno grants (also what the broker enforces). */
  grants: DenoGrants;
  /** The egress socket's host path, when the run has network. */
  egressSocket: string | null;
  /** The transparent egress bridge to start, when the run has network. */
  egressBridge: { script: string; ports: number[] } | null;
  /**
   * Settles when the program may be handed over: the transparent bridge
   * has bound its listeners (or the run has no network).
   */
  ready: Promise<void>;
  /** Stops both servers. */
  close(): Promise<void>;
}

const netGrantCache = new WeakMap<object, readonly string[] | "all">();

/** Deno net grants of the policy in force (cached per compiled policy). */
function liveNetGrants(egress: SandboxEgress): readonly string[] | "all" {
  const network = egress.active.network;
  let grants = netGrantCache.get(network);
  if (grants === undefined) {
    const hosts = network.denoNetGrants;
    // The proxy's own address: node:http checks it besides the target.
    grants = hosts === null ? "all" : [...hosts, `127.0.0.1:${EGRESS_PORT}`];
    netGrantCache.set(network, grants);
  }
  return grants;
}

/** The kinds of system information a `system` setting grants. */
function systemKinds(system: SystemPolicy): SystemInfoKind[] {
  if (system === "allow") return [...SYSTEM_INFO_KINDS];
  if (system === "deny") return [];
  return [...new Set(system)];
}

/** How long a run waits for its transparent bridge before going on. */
const BRIDGE_START_MS = 10_000;

/**
 * Settles when the bridge has bound its listeners, or after
 * {@link BRIDGE_START_MS} (then the run goes on without names resolving,
 * and the audit says why: the proxy still works).
 */
function bridgeStarted(
  opened: Promise<void>,
  late: (reason: string) => void,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      late(
        `the transparent egress bridge did not start within ${BRIDGE_START_MS} ms: names do not resolve in this run (the proxy still works)`,
      );
      resolve();
    }, BRIDGE_START_MS);
    Deno.unrefTimer(timer);
  });
  return Promise.race([opened, deadline]).finally(() => clearTimeout(timer));
}

/** Deno prints this on stderr when a broker is configured (before any program output). */
export const BROKER_WARNING = new TextEncoder().encode(
  "Warning Permission broker is an experimental feature\n",
);

/**
 * Opens the run's injector socket (if the sandbox has egress) and its
 * permission broker (if auditing is on).
 *
 * @param options Where, for whom, and what is granted.
 * @returns The channels; close them when the run ends.
 * @throws {Error} If a socket cannot be created (the run must not start).
 *
 * @example Usage
 * ```ts ignore
 * const channels = await openRunChannels({ runDir, sandboxId, runId, ownerUid, base, egress, broker: "enforce", audit });
 * ```
 */
export async function openRunChannels(options: {
  runDir: string;
  sandboxId: string;
  runId: string;
  ownerUid: number | null;
  base: BaseGrants;
  /** The program's working directory inside the sandbox (at start). */
  cwd: string;
  /**
   * The run's bwrap status file: the broker reads the program's current
   * directory through it (relative paths after `Deno.chdir`).
   */
  statusPath?: string;
  /** Plain environment variables from the policy (never secrets). */
  env: Readonly<Record<string, string>>;
  /** The temp directory inside the sandbox (`<TMP>` to Deno), if writable. */
  tmp?: string;
  /**
   * The program's home directory (`HOME`, `os.homedir()`): a readable and
   * writable directory of the sandbox, as on any machine.
   */
  home?: string;
  /** System information the program may read; default "allow". */
  system?: SystemPolicy;
  egress: SandboxEgress | null;
  /** Broker mode, or null for no broker (Deno's flags decide). */
  broker: BrokerMode | null;
  audit: (event: AuditEvent) => void;
}): Promise<RunChannels> {
  // One bound for everything the run records (permission checks and
  // requests): past it, attempts are counted per kind and decision.
  const log = new RunAuditLog(options.audit, {
    sandboxId: options.sandboxId,
    runId: options.runId,
  });
  const mounts: Mount[] = [];
  let env: Record<string, string> = {
    // The policy's own HOME (a plain variable) wins over the default.
    ...(options.home ? { HOME: options.home } : {}),
    ...options.env,
    // Deno.makeTempDir() and friends create under TMPDIR: the scratch's .tmp.
    ...(options.tmp ? { TMPDIR: options.tmp } : {}),
  };
  let grants: DenoGrants = {
    ...options.base,
    net: [],
    // The whole environment: it is built here and in the launcher from
    // airlock's own settings, placeholders and the policy's plain
    // variables, never from the harness's (bwrap starts it empty). An SDK
    // probing for OPENAI_BASE_URL reads undefined, as on a clean machine.
    env: "all",
    sys: systemKinds(options.system ?? "allow"),
  };
  let egressClose: (() => Promise<void>) | null = null;
  let egressSocket: string | null = null;
  let egressBridge: RunChannels["egressBridge"] = null;
  let ready: Promise<void> = Promise.resolve();
  let broker: PermissionBroker | null = null;
  const live = options.egress;
  try {
    if (options.egress) {
      const egress = await bindRun(options.egress, {
        socketPath: `${options.runDir}/egress.sock`,
        sandboxId: options.sandboxId,
        runId: options.runId,
        ownerUid: options.ownerUid,
        audit: (event: EgressEvent) => log.record(event),
      });
      egressClose = () => egress.binding.close();
      egressSocket = egress.binding.socketPath;
      egressBridge = egress.bridge;
      ready = bridgeStarted(egress.binding.bridgeReady, (reason) =>
        log.record({
          time: new Date().toISOString(),
          source: "injector",
          kind: "dns",
          sandboxId: options.sandboxId,
          runId: options.runId,
          method: "-",
          scheme: "dns",
          host: "-",
          port: 53,
          path: "",
          decision: "error",
          rule: "bridge",
          reason,
          injected: [],
          placeholders: [],
          status: null,
          bytesOut: 0,
          bytesIn: 0,
          durationMs: 0,
        }));
      mounts.push(...egress.mounts);
      env = { ...env, ...egress.env };
      grants = { ...grants, net: egress.grants.net };
    }
    if (options.broker) {
      broker = await startPermissionBroker({
        socketPath: `${options.runDir}/broker.sock`,
        grants: {
          read: grants.read,
          write: grants.write,
          // Read at every check: a live network policy update reaches the
          // Deno side of running programs too, not only the injector.
          get net() {
            return live ? liveNetGrants(live) : [];
          },
          env: grants.env ?? [],
          sys: grants.sys ?? [],
          // Names are answered inside the sandbox (transparent egress).
          ...(live ? { lookups: true } : {}),
          cwd: options.cwd,
          ...(options.tmp ? { tmp: options.tmp } : {}),
        },
        mode: options.broker,
        sandboxId: options.sandboxId,
        runId: options.runId,
        ownerUid: options.ownerUid,
        log,
        ...(options.statusPath
          ? { processCwd: sandboxProcessCwd(options.statusPath) }
          : {}),
      });
      mounts.push({
        kind: "bind",
        source: broker.socketPath,
        dest: SANDBOX_PATHS.brokerSocket,
      });
      // Deno asks the broker about every check; the flags no longer decide.
      env.DENO_PERMISSION_BROKER_PATH = SANDBOX_PATHS.brokerSocket;
    }
  } catch (error) {
    await egressClose?.();
    await broker?.close();
    // Fail closed, with the cause named: no socket, no run.
    throw new SandboxSetupError(
      `Cannot open the run's ${
        broker || !options.egress ? "permission broker" : "egress"
      } socket in '${options.runDir}': ${(error as Error).message}`,
    );
  }
  return {
    mounts,
    env,
    grants,
    egressSocket,
    egressBridge,
    ready,
    async close() {
      await Promise.all([egressClose?.(), broker?.close()]);
      log.close();
    },
  };
}
