/**
 * The state behind `Sandbox` objects of the `@deno/sandbox`-compatible API:
 * one airlock sandbox per session, the clients attached to it, its
 * deadline; and the mapping of SDK options onto the airlock policy.
 *
 * @module
 */

import type { Sandbox as AirlockSandbox } from "../harness/sandbox.ts";
import type { NetworkPolicyInput } from "../injector/network_policy.ts";
import type { SecretConfig } from "./types.ts";

/** The longest wall clock airlock allows one run (24 h). */
export const MAX_RUN_MS = 86_400_000;
/** The SDK's default memory. */
export const DEFAULT_MEMORY_MB = 1280;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** One airlock sandbox and the clients attached to it. */
export interface Session {
  inner: AirlockSandbox;
  deadline: number | null;
  timer: ReturnType<typeof setTimeout> | undefined;
  capMs: number;
  plainEnv: Record<string, string>;
  secretNames: string[];
  clients: Set<() => void>;
  nextPid: number;
  destroying: Promise<void> | null;
}

/** Live sessions by sandbox id (for `Sandbox.connect`). */
export const sessions: Map<string, Session> = new Map();

/**
 * The network policy for `allowNet` and the secrets' hosts.
 *
 * @param allowNet The SDK option.
 * @param secrets The secrets.
 * @returns The airlock network policy.
 */
export function networkPolicy(
  allowNet: string[] | undefined,
  secrets: [string, SecretConfig][],
): NetworkPolicyInput {
  if (allowNet === undefined) return "allow-all";
  if (!Array.isArray(allowNet)) {
    throw new TypeError("Cannot create the sandbox: allowNet must be an array");
  }
  const hosts = [
    ...new Set([...allowNet, ...secrets.flatMap(([, s]) => s.hosts)]),
  ];
  if (hosts.length === 0) return "deny-all";
  const subnets = hosts.flatMap((pattern) => {
    const v6 = /^\[([0-9a-fA-F:.]+)\](?::\d+)?$/.exec(pattern);
    if (v6) return [`${v6[1]}/128`];
    const v4 = /^(\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?$/.exec(pattern);
    return v4 ? [`${v4[1]}/32`] : [];
  });
  return {
    allow: hosts,
    ...(subnets.length > 0 ? { subnets: { allow: subnets } } : {}),
  };
}

/** CA entries given as PEM text become temporary files (read once, at creation). */
export async function materialiseCaCerts(
  entries: readonly string[],
): Promise<{ paths: string[]; cleanup(): Promise<void> }> {
  const temporary: string[] = [];
  const paths: string[] = [];
  for (const entry of entries) {
    if (!entry.includes("-----BEGIN CERTIFICATE-----")) {
      paths.push(entry);
      continue;
    }
    const file = await Deno.makeTempFile({ prefix: "airlock-upstream-ca-" });
    temporary.push(file);
    await Deno.writeTextFile(file, entry);
    paths.push(file);
  }
  return {
    paths,
    cleanup: async () => {
      await Promise.all(temporary.map((f) => Deno.remove(f).catch(() => {})));
    },
  };
}

/**
 * Sets a session's deadline; the session is destroyed when it passes.
 *
 * @param session The session.
 * @param deadline Epoch milliseconds.
 */
export function schedule(session: Session, deadline: number): void {
  clearTimeout(session.timer);
  session.deadline = deadline;
  const tick = () => {
    const left = deadline - Date.now();
    if (left <= 0) {
      destroy(session).catch(() => {});
      return;
    }
    session.timer = setTimeout(tick, Math.min(left, MAX_TIMER_MS));
    // A local sandbox cannot outlive its process: the deadline must not
    // keep the process alive (airlock's watchdog deletes the files at exit).
    Deno.unrefTimer(session.timer as unknown as number);
  };
  tick();
}

/**
 * Destroys a session: closes every client, kills every run, deletes every file.
 *
 * @param session The session.
 * @returns Resolves once everything is gone.
 */
export function destroy(session: Session): Promise<void> {
  session.destroying ??= (async () => {
    clearTimeout(session.timer);
    sessions.delete(session.inner.id);
    for (const markClosed of [...session.clients]) markClosed();
    await session.inner.close();
  })();
  return session.destroying;
}

/**
 * The wall clock a run starting now gets.
 *
 * @param session The session.
 * @returns Milliseconds.
 */
export function runTimeout(session: Session): number {
  if (session.deadline === null) return session.capMs;
  return Math.max(1, Math.min(session.capMs, session.deadline - Date.now()));
}
