/**
 * Warm start's waiting process: while a sandbox is idle, the next run's
 * process is already launched and waits for its program (see
 * `runtime/warm_boot.ts`). This module holds the one slot and its rules:
 * `take` it for a run whose launch it fits, `keep` a process a run could
 * not use, `refill` the slot once the sandbox is idle, `drop` it when what
 * it was launched with changes. The sandbox supplies launching, killing and
 * the "is it idle" question.
 *
 * A waiting process never coexists with a live run of the same sandbox:
 * both would count against the sandbox uid's process cap (RLIMIT_NPROC), so
 * a run could fail to fork because of a process it never asked for.
 *
 * @module
 */

/** What the pool needs of a launched process. */
export interface WarmProcess {
  /** What its launch depended on: a run only takes a process of equal key. */
  readonly key: string;
  /** False once the process has exited (it can no longer take a program). */
  readonly alive: boolean;
}

/** What the pool needs of its sandbox. */
export interface WarmHost<T extends WarmProcess> {
  /** Whether warm start is on (`SandboxOptions.warm`, default true). */
  readonly enabled: boolean;
  /** Whether a process may not wait now: the sandbox is closing or a run is live. */
  busy(): boolean;
  /** The launch key of a run with `env`. */
  key(env: Readonly<Record<string, string>>): string;
  /** Launches a process for a run with `env` (close() waits for it). */
  launch(env: Record<string, string>): Promise<T>;
  /** Kills a launched process and deletes its files (once). */
  discard(process: T): void;
  /** Hands cleanup nobody else awaits to close(). */
  settle(work: Promise<unknown>): void;
}

/**
 * The slot for one sandbox's waiting process.
 *
 * @example Keeping a process and taking it back
 * ```ts
 * import { WarmPool, type WarmProcess } from "./warm_pool.ts";
 * const launched: WarmProcess[] = [];
 * const pool = new WarmPool<WarmProcess>({
 *   enabled: true,
 *   busy: () => false,
 *   key: (env) => JSON.stringify(env),
 *   launch: (env) => {
 *     const process = { key: JSON.stringify(env), alive: true };
 *     launched.push(process);
 *     return Promise.resolve(process);
 *   },
 *   discard: () => {},
 *   settle: () => {},
 * });
 * pool.refill({});
 * const taken = await pool.take({});
 * console.log(taken === launched[0]); // true
 * console.log(await pool.take({})); // null: the slot is empty again
 * ```
 */
export class WarmPool<T extends WarmProcess> {
  #host: WarmHost<T>;
  /** The waiting process (a launch may still be in progress), or null. */
  #slot: Promise<T | null> | null = null;

  /**
   * Builds an empty pool.
   *
   * @param host The sandbox's side: launching, killing, its state.
   */
  constructor(host: WarmHost<T>) {
    this.#host = host;
  }

  /**
   * Empties the slot; returns its process if it fits a run with `env`, and
   * discards it otherwise (a dead process, or one launched with another
   * environment or network policy).
   *
   * @param env The run's environment.
   * @returns The waiting process, or null: the run launches its own.
   */
  async take(env: Readonly<Record<string, string>>): Promise<T | null> {
    const pending = this.#slot;
    this.#slot = null;
    const warm = pending ? await pending : null;
    if (!warm) return null;
    if (warm.alive && warm.key === this.#host.key(env)) return warm;
    this.#host.discard(warm);
    return null;
  }

  /**
   * Keeps a process a run could not use (its program did not compile) as
   * the waiting one, when it may still serve and no run is live; discards
   * it otherwise.
   *
   * @param process A launched process that has no program yet.
   */
  keep(process: T): void {
    if (
      !this.#host.enabled || this.#host.busy() || this.#slot !== null ||
      !process.alive
    ) {
      this.#host.discard(process);
    } else {
      this.#slot = Promise.resolve(process);
    }
  }

  /**
   * Launches the next run's process while the sandbox is idle. Never beside
   * a live run: both would count against the sandbox uid's process cap.
   *
   * @param env The environment the next run is expected to have.
   */
  refill(env: Readonly<Record<string, string>>): void {
    if (!this.#host.enabled || this.#host.busy() || this.#slot !== null) {
      return;
    }
    // A failure here is not reported: the next run launches its own process
    // and reports it then.
    this.#slot = this.#host.launch({ ...env }).catch(() => null);
  }

  /** Discards the waiting process, if any (its launch may be in progress). */
  drop(): void {
    const pending = this.#slot;
    this.#slot = null;
    if (!pending) return;
    this.#host.settle(
      pending.then((warm) => warm && this.#host.discard(warm)),
    );
  }
}
