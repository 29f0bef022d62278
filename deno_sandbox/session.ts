/**
 * The state behind `Sandbox` objects of the `@deno/sandbox`-compatible API:
 * one airlock sandbox per session, the clients attached to it, its
 * deadline, and the wall clock each run gets.
 *
 * @module
 */

import type { Sandbox as AirlockSandbox } from "../harness/sandbox.ts";

const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * One airlock sandbox and the clients attached to it.
 *
 * @example Usage
 * ```ts ignore
 * const session: Session = sessions.get(sandbox.id)!;
 * console.log(session.deadline, session.secretNames);
 * ```
 */
export interface Session {
  /** The airlock sandbox. */
  inner: AirlockSandbox;
  /** When the sandbox is destroyed (epoch ms), or null for "session". */
  deadline: number | null;
  /** The deadline's timer. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Each run's longest wall clock. */
  capMs: number;
  /** The SDK's `env` (what `sandbox.env` answers without asking a program). */
  plainEnv: Record<string, string>;
  /** The secrets' variable names (their placeholders are read from a program). */
  secretNames: string[];
  /** Each attached client's way to mark itself closed. */
  clients: Set<() => void>;
  /** The next process number. */
  nextPid: number;
  /** Set once the session is being destroyed; resolves when it is gone. */
  destroying: Promise<void> | null;
}

/**
 * Live sessions by sandbox id (for `Sandbox.connect`).
 *
 * @example Usage
 * ```ts
 * import { sessions } from "./session.ts";
 * console.log(sessions.size); // 0 until a Sandbox is created
 * ```
 */
export const sessions: Map<string, Session> = new Map();

/**
 * Sets a session's deadline; the session is destroyed when it passes.
 *
 * @param session The session.
 * @param deadline Epoch milliseconds.
 *
 * @example Usage
 * ```ts ignore
 * schedule(session, Date.now() + 60_000); // destroyed a minute from now
 * ```
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
 *
 * @example Usage
 * ```ts ignore
 * await destroy(session); // every client closed, every run killed, every file deleted
 * ```
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
 *
 * @example Usage
 * ```ts ignore
 * const run = await session.inner.spawn({ code, timeoutMs: runTimeout(session) });
 * ```
 */
export function runTimeout(session: Session): number {
  if (session.deadline === null) return session.capMs;
  return Math.max(1, Math.min(session.capMs, session.deadline - Date.now()));
}
