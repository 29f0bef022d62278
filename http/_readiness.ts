/**
 * Whether this node can start a sandbox now (`GET /ready`): a real sandbox
 * starts and runs a program (bubblewrap, seccomp, the uid drop and Deno
 * all work), the injector is up, the node is below its sandbox ceiling and
 * not draining. The sandbox probe is cached: it runs once at first use,
 * then again in the background when its answer is older than `ttlMs`, so
 * a readiness check never waits on a probe but the first.
 *
 * @module
 */

import { Sandbox, type SandboxOptions } from "../harness/sandbox.ts";
import { injectorFor } from "../harness/_run/setup.ts";

/** One check's answer. */
export interface CheckResult {
  /** Whether it passed. */
  ok: boolean;
  /** What was found (no paths or secrets: `/ready` needs no token). */
  detail: string;
}

/** The answer of {@linkcode Readiness.check}. */
export interface ReadinessReport {
  /** Whether every check passed. */
  ready: boolean;
  /** Each check by name: sandbox, injector, capacity, draining. */
  checks: Record<string, CheckResult>;
}

/** Options for {@linkcode Readiness}. */
export interface ReadinessOptions {
  /** Sandbox options of the probe (tmpDir, node, tools...). */
  sandbox: Partial<Omit<SandboxOptions, "secrets" | "policy">>;
  /** Sandboxes alive and being created on this node. */
  sandboxes: () => number;
  /** This node's sandbox ceiling (Infinity for none). */
  maxSandboxes: number;
  /** Whether the node is draining. */
  draining: () => boolean;
  /** How long a passing probe is trusted; default 30 s. */
  ttlMs?: number;
  /** How long a failing probe is trusted; default 5 s. */
  retryMs?: number;
  /** Where a failing probe's details are logged. */
  log: (message: string) => void;
}

/** The probe's program: it must run and say so. */
const PROBE_CODE = 'console.log("airlock-ready")';

/**
 * The node's readiness, with the sandbox probe cached.
 *
 * @example Usage
 * ```ts ignore
 * import { Readiness } from "./_readiness.ts";
 * const readiness = new Readiness({ sandbox: {}, sandboxes: () => 0, maxSandboxes: 64, draining: () => false, log: console.error });
 * const { ready, checks } = await readiness.check();
 * ```
 */
export class Readiness {
  readonly #options: ReadinessOptions;
  #probe: { result: CheckResult; at: number } | null = null;
  #probing: Promise<CheckResult> | null = null;
  #closed = false;

  /** @param options What to check and how often. */
  constructor(options: ReadinessOptions) {
    this.#options = options;
  }

  /**
   * Runs the checks. Only the very first call waits for the sandbox probe;
   * later calls answer from its cache and refresh it in the background.
   *
   * @returns The report.
   */
  async check(): Promise<ReadinessReport> {
    const { sandboxes, maxSandboxes, draining } = this.#options;
    const sandbox = await this.#sandboxCheck();
    const injector = await injectorCheck(this.#options.sandbox);
    const alive = sandboxes();
    const checks: Record<string, CheckResult> = {
      sandbox,
      injector,
      // No counts: /ready needs no token, and how many sandboxes a node
      // holds is its tenants' business (GET /metrics has it, with a token).
      capacity: alive < maxSandboxes
        ? { ok: true, detail: "below the node's sandbox ceiling" }
        : { ok: false, detail: "at the node's sandbox ceiling" },
      draining: draining()
        ? { ok: false, detail: "draining: no new sandboxes" }
        : { ok: true, detail: "not draining" },
    };
    return {
      ready: Object.values(checks).every((c) => c.ok),
      checks,
    };
  }

  /** Starts the first probe and the injector now (the server does at start). */
  warm(): void {
    void this.#sandboxCheck();
    void injectorCheck(this.#options.sandbox);
  }

  async #sandboxCheck(): Promise<CheckResult> {
    const { ttlMs = 30_000, retryMs = 5_000 } = this.#options;
    const cached = this.#probe;
    if (cached) {
      const age = Date.now() - cached.at;
      if (age > (cached.result.ok ? ttlMs : retryMs)) void this.#refresh();
      return cached.result;
    }
    return await this.#refresh();
  }

  /**
   * Stops probing: a probe in flight finishes (its sandbox closed, its
   * files gone) before this resolves, and none starts after. The server
   * awaits it on shutdown, so it never exits with a probe sandbox live.
   *
   * @returns When no probe sandbox is left.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#probing;
  }

  #refresh(): Promise<CheckResult> {
    if (this.#closed) {
      return Promise.resolve({ ok: false, detail: "the server is closing" });
    }
    this.#probing ??= this.#runProbe().then((result) => {
      this.#probe = { result, at: Date.now() };
      this.#probing = null;
      return result;
    });
    return this.#probing;
  }

  async #runProbe(): Promise<CheckResult> {
    const started = performance.now();
    try {
      // Deny-all, no scratch, cold start: the same path as any sandbox's
      // first run, nothing left behind.
      await using sandbox = await Sandbox.create({
        ...this.#options.sandbox,
        policy: { limits: { timeoutMs: 15_000 } },
        warm: false,
      });
      const result = await sandbox.run({ code: PROBE_CODE });
      if (!result.success || !result.stdout.includes("airlock-ready")) {
        throw new Error(
          `the probe run ended with reason '${result.reason}', exit code ${result.exitCode}: ${
            result.stderr.slice(0, 500)
          }`,
        );
      }
      return {
        ok: true,
        detail: `a probe sandbox ran in ${
          Math.round(performance.now() - started)
        } ms`,
      };
    } catch (error) {
      this.#options.log(
        `airlock-api: readiness probe failed: ${(error as Error).message}`,
      );
      return {
        ok: false,
        detail: "a probe sandbox could not run (details in the server's log)",
      };
    }
  }
}

async function injectorCheck(
  options: Partial<SandboxOptions>,
): Promise<CheckResult> {
  try {
    await injectorFor(options);
    return { ok: true, detail: "up" };
  } catch {
    return { ok: false, detail: "the injector could not start" };
  }
}
