/**
 * The state behind `Sandbox` objects of the `@deno/sandbox`-compatible API:
 * one airlock sandbox per session, the clients attached to it, its
 * deadline, and the wall clock each run gets.
 *
 * @module
 */

import type { Sandbox as AirlockSandbox } from "../harness/sandbox.ts";

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
