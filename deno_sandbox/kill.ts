/**
 * `KillController` and `KillSignal` of the `@deno/sandbox`-compatible API:
 * like `AbortController`/`AbortSignal`, for process signals. The SDK uses
 * them for `sh` (unsupported here); they are exported, and work, so that code
 * written against the SDK keeps its imports.
 *
 * @module
 */

/**
 * A listener of a {@linkcode KillSignal}: called with each signal's name.
 *
 * @example Usage
 * ```ts
 * import { KillController, type KillSignalListener } from "./mod.ts";
 * const log: KillSignalListener = (signal) => console.log("got", signal);
 * const controller = new KillController();
 * controller.signal.addListener(log);
 * controller.kill("SIGINT"); // got SIGINT
 * ```
 */
export type KillSignalListener = (signal: string) => void;

const ABORTING = new Set([
  "SIGTERM",
  "SIGKILL",
  "SIGABRT",
  "SIGQUIT",
  "SIGINT",
]);
const EXIT_CODES: Record<string, number> = {
  SIGINT: 130,
  SIGQUIT: 131,
  SIGABRT: 134,
  SIGKILL: 137,
  SIGTERM: 143,
};

/**
 * Like an `AbortSignal`, for process signals (used by the SDK's `sh`, which
 * is unsupported here). Made by a {@linkcode KillController}.
 *
 * @example Usage
 * ```ts
 * import { KillController } from "./mod.ts";
 * import assert from "node:assert/strict";
 * const controller = new KillController();
 * controller.kill("SIGTERM");
 * assert.equal(controller.signal.aborted, true);
 * assert.equal(controller.signal.abortedExitCode, 143);
 * ```
 */
export class KillSignal {
  #state: { code: number | undefined; listeners: KillSignalListener[] };
  /**
   * Not for callers: use `new KillController().signal`.
   *
   * @param state Shared with its controller.
   */
  constructor(state: {
    code: number | undefined;
    listeners: KillSignalListener[];
  }) {
    this.#state = state;
  }
  /** Whether an aborting signal (SIGTERM, SIGKILL, SIGABRT, SIGQUIT, SIGINT) was sent. */
  get aborted(): boolean {
    return this.#state.code !== undefined;
  }
  /** The exit code to use when aborted. */
  get abortedExitCode(): number | undefined {
    return this.#state.code;
  }
  /**
   * Forwards every signal to `child`.
   *
   * @param child The linked signal.
   * @returns How to stop forwarding.
   */
  linkChild(child: KillSignal): { unsubscribe(): void } {
    const listener = (signal: string) => child.#fire(signal);
    this.addListener(listener);
    return { unsubscribe: () => this.removeListener(listener) };
  }
  /**
   * Calls `listener` with each signal sent from now on.
   *
   * @param listener Called with each signal's name.
   */
  addListener(listener: KillSignalListener): void {
    this.#state.listeners.push(listener);
  }
  /**
   * Stops calling a listener.
   *
   * @param listener A listener added before.
   */
  removeListener(listener: KillSignalListener): void {
    const at = this.#state.listeners.indexOf(listener);
    if (at !== -1) this.#state.listeners.splice(at, 1);
  }
  #fire(signal: string): void {
    if (ABORTING.has(signal)) this.#state.code ??= EXIT_CODES[signal];
    for (const listener of [...this.#state.listeners]) listener(signal);
  }
  /**
   * Sends a signal to `target` (how its controller does it).
   *
   * @internal
   * @param target The signal.
   * @param signal Its name ("SIGTERM"...).
   */
  static fire(target: KillSignal, signal: string): void {
    target.#fire(signal);
  }
}

/**
 * Sends signals to a {@linkcode KillSignal}, as `AbortController` does to an
 * `AbortSignal`.
 *
 * @example Usage
 * ```ts
 * import { KillController } from "./mod.ts";
 * const controller = new KillController();
 * controller.signal.addListener((signal) => console.log(signal)); // SIGKILL
 * controller.kill("SIGKILL");
 * console.log(controller.signal.abortedExitCode); // 137
 * ```
 */
export class KillController {
  #signal = new KillSignal({ code: undefined, listeners: [] });
  /** The signal of this controller. */
  get signal(): KillSignal {
    return this.#signal;
  }
  /**
   * Sends a signal: listeners get it; an ending signal (SIGTERM, SIGKILL,
   * SIGABRT, SIGQUIT, SIGINT) marks the signal aborted.
   *
   * @param signal Default SIGTERM.
   */
  kill(signal = "SIGTERM"): void {
    KillSignal.fire(this.#signal, signal);
  }
}
