/**
 * One lock per sandbox, held by each harness file operation (`sandbox.fs`,
 * and through it the HTTP files API) and by each run's start. A file
 * operation checks "no run is live" and acts while holding it; a run
 * becomes live while holding it. So no run can start in the middle of a
 * harness file operation (a program could otherwise swap a checked
 * directory for a symlink under the harness, or see a half-written file),
 * however long the operation takes.
 *
 * Waiters are served in arrival order.
 *
 * @module
 */

/**
 * A first-come, first-served async mutex.
 *
 * @example Usage
 * ```ts
 * import { SandboxLock } from "./_sandbox_lock.ts";
 * const lock = new SandboxLock();
 * const value = await lock.hold(() => 42);
 * console.log(value, lock.held); // 42 false
 * ```
 */
export class SandboxLock {
  #tail: Promise<void> = Promise.resolve();
  #held = false;
  #waiting = 0;

  /** Whether someone holds it. */
  get held(): boolean {
    return this.#held;
  }

  /** How many callers wait for it. */
  get waiting(): number {
    return this.#waiting;
  }

  /**
   * Waits for the lock.
   *
   * @returns The function that releases it (call it exactly once).
   */
  async acquire(): Promise<() => void> {
    const previous = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((resolve) => (release = resolve));
    this.#waiting++;
    try {
      await previous;
    } finally {
      this.#waiting--;
    }
    this.#held = true;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#held = false;
      release();
    };
  }

  /**
   * Runs `fn` with the lock held.
   *
   * @param fn The critical section.
   * @returns What `fn` returns.
   */
  async hold<T>(fn: () => T | Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

const locks = new WeakMap<object, SandboxLock>();

/**
 * The lock of `owner` (a sandbox), created on first use. Tests use it to
 * hold a sandbox's lock and watch who waits.
 *
 * @param owner The sandbox.
 * @returns Its lock.
 *
 * @example Usage
 * ```ts
 * import { lockOf } from "./_sandbox_lock.ts";
 * const owner = {};
 * console.log(lockOf(owner) === lockOf(owner)); // true
 * ```
 */
export function lockOf(owner: object): SandboxLock {
  let lock = locks.get(owner);
  if (!lock) {
    lock = new SandboxLock();
    locks.set(owner, lock);
  }
  return lock;
}
