/**
 * Run slots shared by every tenant of one server. A run holds a slot from
 * before its program is bundled until its answer has been delivered. Each
 * tenant (token) has its own queue and cap; free slots go to the tenants'
 * queues in turn (round-robin), so one tenant's burst waits in its own
 * queue while another tenant's run takes the next free slot.
 *
 * Why: runs share the machine's cores. Unscheduled, one token's 32 busy
 * runs made another token's trivial run 70x slower on 2 cores; with the
 * per-token cap the other tenant competes with a bounded number of them.
 *
 * @module
 */

/** The caps of one tenant. */
export interface TenantCaps {
  /** Runs of the tenant live at once. */
  runsPerToken: number;
  /** Runs of one sandbox live at once. */
  runsPerSandbox: number;
  /** Runs that may wait for a slot; past it a run is refused. */
  queuedRunsPerToken: number;
}

/** A run was refused: its tenant's queue is full. */
export class TooManyRunsError extends Error {
  /** @param message What is full and what to do. */
  constructor(message: string) {
    super(message);
    this.name = "TooManyRunsError";
  }
}

/** Gives back a slot; later calls do nothing. */
export type Release = () => void;

interface Waiter {
  sandbox: string;
  grant: (release: Release) => void;
  fail: (error: unknown) => void;
}

interface Tenant {
  name: string;
  caps: TenantCaps;
  running: number;
  queue: Waiter[];
}

/**
 * Run slots with per-tenant queues served round-robin.
 *
 * @example Usage
 * ```ts
 * import { RunScheduler } from "./_scheduler.ts";
 * const scheduler = new RunScheduler(4);
 * const caps = { runsPerToken: 2, runsPerSandbox: 1, queuedRunsPerToken: 8 };
 * const release = await scheduler.acquire("alice", caps, "sbx-1");
 * release();
 * ```
 */
export class RunScheduler {
  #slots: number;
  #running = 0;
  #bySandbox = new Map<string, number>();
  /** Tenants with state, in round-robin order. */
  #tenants = new Map<string, Tenant>();
  /** Name of the tenant served last (the turn passes to the one after). */
  #last: string | null = null;

  /** @param slots Runs live at once across every tenant. */
  constructor(slots: number) {
    if (!Number.isSafeInteger(slots) || slots < 1) {
      throw new RangeError(
        `Cannot schedule runs as 'slots' must be a positive integer: current value is ${slots}`,
      );
    }
    this.#slots = slots;
  }

  /** Runs live now, across every tenant. */
  get running(): number {
    return this.#running;
  }

  /** Runs waiting for a slot, across every tenant. */
  get queued(): number {
    let waiting = 0;
    for (const state of this.#tenants.values()) waiting += state.queue.length;
    return waiting;
  }

  /**
   * Resolves once no run is live or waiting (a draining server waits for
   * this before it closes its sandboxes).
   *
   * @returns A promise of the first moment nothing is live or waiting.
   */
  idle(): Promise<void> {
    if (this.#running === 0 && this.queued === 0) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#idleWaiters.push(resolve);
    return promise;
  }

  #idleWaiters: (() => void)[] = [];

  #wakeIdle(): void {
    if (this.#running !== 0 || this.queued !== 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /**
   * Runs live and waiting for one tenant.
   *
   * @param tenant The tenant's name.
   * @returns Its counts.
   */
  usage(tenant: string): { running: number; queued: number } {
    const state = this.#tenants.get(tenant);
    return { running: state?.running ?? 0, queued: state?.queue.length ?? 0 };
  }

  /**
   * Waits for a slot for a run of `sandbox` owned by `tenant`.
   *
   * @param tenant Who runs (the token's name).
   * @param caps The tenant's caps.
   * @param sandbox The run's sandbox.
   * @param signal Aborting gives up the place in the queue.
   * @returns The slot's release; call it once the run's answer is out.
   * @throws {TooManyRunsError} When the tenant's queue is full.
   */
  async acquire(
    tenant: string,
    caps: TenantCaps,
    sandbox: string,
    signal?: AbortSignal,
  ): Promise<Release> {
    signal?.throwIfAborted();
    let state = this.#tenants.get(tenant);
    if (!state) {
      state = { name: tenant, caps, running: 0, queue: [] };
      this.#tenants.set(tenant, state);
    }
    state.caps = caps;
    // First come, first served within a tenant: a run never overtakes an
    // earlier one of the same tenant that could start (one whose sandbox is
    // at its own cap can be overtaken).
    if (
      this.#fits(state, sandbox) &&
      !state.queue.some((w) => this.#fits(state!, w.sandbox))
    ) {
      return this.#start(state, sandbox);
    }
    if (state.queue.length >= caps.queuedRunsPerToken) {
      this.#forget(state);
      throw new TooManyRunsError(
        `Cannot start a run for '${tenant}': it has ${state.running} run${
          state.running === 1 ? "" : "s"
        } live (its limit is ${caps.runsPerToken} at once, ${caps.runsPerSandbox} per sandbox) and ${state.queue.length} waiting (the queue holds ${caps.queuedRunsPerToken}); wait for a run to end and retry`,
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<Release>();
    const waiter: Waiter = {
      sandbox,
      grant: resolve,
      fail: reject,
    };
    state.queue.push(waiter);
    if (signal) {
      const onAbort = () => {
        const at = state.queue.indexOf(waiter);
        if (at === -1) return; // already granted
        state.queue.splice(at, 1);
        this.#forget(state);
        reject(signal.reason);
        // Its place may have blocked a later run of the same tenant.
        this.#dispatch();
        this.#wakeIdle();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      promise.then(
        () => signal.removeEventListener("abort", onAbort),
        () => signal.removeEventListener("abort", onAbort),
      );
    }
    return await promise;
  }

  /**
   * Refuses every waiting run of a sandbox (it is being deleted).
   *
   * @param sandbox The sandbox.
   * @param error What the waiting runs get.
   */
  cancelSandbox(sandbox: string, error: Error): void {
    for (const state of this.#tenants.values()) {
      const kept = state.queue.filter((w) => w.sandbox !== sandbox);
      for (const waiter of state.queue) {
        if (waiter.sandbox === sandbox) waiter.fail(error);
      }
      state.queue = kept;
      this.#forget(state);
    }
    this.#dispatch();
    this.#wakeIdle();
  }

  #fits(state: Tenant, sandbox: string): boolean {
    return this.#running < this.#slots &&
      state.running < state.caps.runsPerToken &&
      (this.#bySandbox.get(sandbox) ?? 0) < state.caps.runsPerSandbox;
  }

  #start(state: Tenant, sandbox: string): Release {
    this.#running++;
    state.running++;
    this.#bySandbox.set(sandbox, (this.#bySandbox.get(sandbox) ?? 0) + 1);
    this.#last = state.name;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#running--;
      state.running--;
      const left = (this.#bySandbox.get(sandbox) ?? 1) - 1;
      if (left > 0) this.#bySandbox.set(sandbox, left);
      else this.#bySandbox.delete(sandbox);
      this.#forget(state);
      this.#dispatch();
      this.#wakeIdle();
    };
  }

  /** Hands free slots to waiting runs, one tenant's turn after another. */
  #dispatch(): void {
    while (this.#running < this.#slots) {
      const order = [...this.#tenants.values()];
      const after = order.findIndex((t) => t.name === this.#last) + 1;
      const turns = [...order.slice(after), ...order.slice(0, after)];
      let granted = false;
      for (const state of turns) {
        // The tenant's earliest run that fits (a run of a sandbox at its
        // own cap lets a later run of another sandbox go first).
        const at = state.queue.findIndex((w) => this.#fits(state, w.sandbox));
        if (at === -1) continue;
        const [waiter] = state.queue.splice(at, 1);
        waiter!.grant(this.#start(state, waiter!.sandbox));
        granted = true;
        break;
      }
      if (!granted) return;
    }
  }

  /** Drops a tenant's state once it has nothing live or waiting. */
  #forget(state: Tenant): void {
    if (state.running === 0 && state.queue.length === 0) {
      // Keeps the round-robin position meaningful: a forgotten tenant that
      // comes back joins at the end of the order.
      this.#tenants.delete(state.name);
    }
  }
}
