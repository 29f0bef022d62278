/**
 * What a permission audit proposes: the `deno run` flags and the airlock
 * policy for a recorded run, safe before sufficient.
 *
 * - A target the run was refused (an enforcing run's deny) is never
 *   proposed; it is listed as "refused, not granted" with the reason.
 * - A sensitive target (keys, credentials, cron, shell profiles, the whole
 *   environment, cloud metadata: `sensitive.ts`) is never proposed either,
 *   even when a learning run needed it: it is listed with what makes it
 *   sensitive, and the report says the command may fail without it.
 * - Everything else the run used is proposed, and nothing more: values are
 *   listed, never widened to a bare flag; a grant that needs care (`run`,
 *   `ffi`, a credential-looking variable, a `.env` file) is proposed with a
 *   warning beside it.
 * - The policy snippet keeps the rules that were in force for each host it
 *   allows (injections included), with any literal header value redacted.
 *
 * @module
 */

import type { PermissionKind } from "../harness/run_result.ts";
import { type PolicyInForce, policySnippet } from "./policy_snippet.ts";
import {
  sensitiveEnv,
  sensitiveHost,
  sensitivePath,
  type Sensitivity,
} from "./sensitive.ts";

/** One distinct attempt, as the proposal reads it (a `ReportEntry`). */
export interface Attempt {
  /** Permission kind, or "egress" for a request through the injector. */
  kind: PermissionKind | "egress";
  /** Sandbox-side value, or "(any)". */
  value: string;
  /** Host-side path, when it maps. */
  hostValue: string | null;
  /** The run's decision. */
  decision: "allow" | "deny";
  /** The run's reason. */
  reason: string;
  /** How many times. */
  count: number;
}

/** A target the proposal leaves out. */
export interface RefusedTarget {
  /** The permission it would need. */
  kind: PermissionKind;
  /** As a flag would name it (host path, `host:port`, name), or "(any)". */
  value: string;
  /**
   * `refused`: the run's policy refused it; `sensitive`: the run may have
   * used it, but a proposal never grants it.
   */
  cause: "refused" | "sensitive";
  /** The run's reason for a refusal; what makes it sensitive otherwise. */
  reason: string;
  /** What makes it sensitive, when it is (also for refused targets). */
  sensitive?: string;
  /** Attempts. */
  count: number;
}

/** A proposed grant that needs a second look. */
export interface Callout {
  /** The permission. */
  kind: PermissionKind;
  /** The value in the proposed flag. */
  value: string;
  /** Why it needs care. */
  why: string;
}

/** What a proposal is built from besides the attempts. */
export interface ProposalOptions {
  /** Learn mode: the run allowed everything but running programs and FFI. */
  learn: boolean;
  /** The policy in force (its rules go into the snippet). */
  policy?: PolicyInForce;
}

/** The proposal. */
export interface Proposal {
  /** Minimal flags for plain `deno run`, in a fixed kind order. */
  minimalFlags: string[];
  /** Targets left out, refused first. */
  refused: RefusedTarget[];
  /** Proposed grants that need care. */
  callouts: Callout[];
  /** The airlock policy granting the same (JSON-compatible). */
  policySnippet: Record<string, unknown>;
  /** Notes about the snippet (redacted values). */
  notes: string[];
}

const FLAG_ORDER: readonly PermissionKind[] = [
  "read",
  "write",
  "net",
  "env",
  "run",
  "sys",
  "ffi",
  "import",
];

/** The sandbox's own proxy: an artefact of the sandbox, never a grant. */
const SANDBOX_PROXY = "127.0.0.1:3128";

/** Collapse this many files of one directory into the directory. */
const COLLAPSE_AT = 8;

/**
 * Builds the proposal for a run's attempts.
 *
 * @param attempts The run's distinct attempts.
 * @param options Mode and the policy in force.
 * @returns Flags, what was left out, warnings and the policy snippet.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { propose } from "./proposal.ts";
 * const proposal = propose([
 *   { kind: "read", value: "/root/.ssh/id_rsa", hostValue: null, decision: "deny", reason: "not granted", count: 1 },
 *   { kind: "write", value: "/p/out", hostValue: "./out", decision: "allow", reason: "granted", count: 1 },
 * ], { learn: false });
 * assert.deepEqual(proposal.minimalFlags, ["--allow-write=./out"]);
 * assert.equal(proposal.refused[0]?.value, "/root/.ssh/id_rsa");
 * ```
 */
export function propose(
  attempts: readonly Attempt[],
  options: ProposalOptions,
): Proposal {
  // One target per (kind, flag value): granted when any attempt of it was
  // allowed, or in learn mode (whose only denials are "never runs
  // programs or native code", not refusals).
  const targets = new Map<string, Target>();
  const namedRuns = attempts.some((a) =>
    a.kind === "run" && a.value !== "(any)"
  );
  for (const attempt of attempts) {
    const kind: PermissionKind = attempt.kind === "egress"
      ? "net"
      : attempt.kind;
    const value = flagValue(kind, attempt);
    if (kind === "net" && value === SANDBOX_PROXY) continue;
    // Deno asks `run` for "any" before spawning a named program and goes
    // on when refused (it only decides which variables it checks): with a
    // named command, the named grant is what is needed.
    if (kind === "run" && value === "(any)" && namedRuns) continue;
    const key = `${kind}\0${value}`;
    const target = targets.get(key) ??
      {
        kind,
        value,
        sandboxValue: attempt.value,
        allowed: false,
        count: 0,
        reasons: [],
      };
    targets.set(key, target);
    target.count += attempt.count;
    if (attempt.decision === "allow" || options.learn) target.allowed = true;
    else target.reasons.push(attempt.reason);
  }
  const granted: Target[] = [];
  const refused: RefusedTarget[] = [];
  const withheld: RefusedTarget[] = [];
  const callouts: Callout[] = [];
  for (const target of targets.values()) {
    const sensitivity = sensitivityOf(target.kind, target.value);
    if (!target.allowed) {
      refused.push({
        kind: target.kind,
        value: target.value,
        cause: "refused",
        reason: target.reasons[0] ?? "refused",
        ...(sensitivity ? { sensitive: sensitivity.why } : {}),
        count: target.count,
      });
    } else if (sensitivity?.action === "withhold") {
      withheld.push({
        kind: target.kind,
        value: target.value,
        cause: "sensitive",
        reason:
          `${sensitivity.why}: never proposed; grant it by hand only if the program must have it`,
        sensitive: sensitivity.why,
        count: target.count,
      });
    } else {
      granted.push(target);
      if (sensitivity) {
        callouts.push({
          kind: target.kind,
          value: target.value,
          why: sensitivity.why,
        });
      }
    }
  }
  const minimalFlags: string[] = [];
  for (const kind of FLAG_ORDER) {
    let values = granted.filter((t) => t.kind === kind).map((t) => t.value);
    if (values.length === 0) continue;
    if (kind === "read" || kind === "write") {
      values = collapse(dedupeCovered(values), [...refused, ...withheld]);
    }
    // "(any)" here is only sys (every other kind's any is withheld or
    // dropped above): a bare --allow-sys.
    minimalFlags.push(
      values.includes("(any)")
        ? `--allow-${kind}`
        : `--allow-${kind}=${values.join(",")}`,
    );
  }
  const { snippet, notes } = policySnippet(granted, options.policy);
  return {
    minimalFlags,
    refused: [...refused, ...withheld],
    callouts,
    policySnippet: snippet,
    notes,
  };
}

interface Target {
  kind: PermissionKind;
  value: string;
  /** The sandbox-side value of its first attempt. */
  sandboxValue: string;
  allowed: boolean;
  count: number;
  reasons: string[];
}

/** The value a flag names: host paths for path kinds, else as recorded. */
function flagValue(kind: PermissionKind, attempt: Attempt): string {
  if (kind === "read" || kind === "write" || kind === "ffi") {
    return attempt.hostValue ?? attempt.value;
  }
  return attempt.value;
}

function sensitivityOf(
  kind: PermissionKind,
  value: string,
): Sensitivity | null {
  const any = value === "(any)";
  switch (kind) {
    case "read":
    case "write":
      return any
        ? { action: "withhold", why: "the whole filesystem" }
        : sensitivePath(value);
    case "net":
      return any
        ? { action: "withhold", why: "every host" }
        : sensitiveHost(value);
    case "env":
      return sensitiveEnv(any ? null : value);
    case "run":
      return any
        ? {
          action: "withhold",
          why:
            "every program, or signals to any process (Deno.kill): as good as -A",
        }
        : {
          action: "warn",
          why:
            "a subprocess runs outside Deno's permission checks (a shell or interpreter is as good as -A)",
        };
    case "ffi":
      return {
        action: "warn",
        why: "native code runs outside Deno's permission checks",
      };
    case "import":
      return any ? { action: "withhold", why: "code from every host" } : null;
    case "sys":
      return null;
  }
}

/** Drops paths under another path of the list (granting a directory
 * grants what is under it, so nothing is widened). */
function dedupeCovered(paths: string[]): string[] {
  const unique = [...new Set(paths)];
  return unique.filter((path) =>
    !unique.some((other) =>
      other !== path &&
      (path.startsWith(`${other}/`) ||
        (other === "." && path.startsWith("./")))
    )
  );
}

/** Many files of one directory become the directory, unless it is the
 * project itself, sensitive, or holds something left out. */
function collapse(paths: string[], left: readonly RefusedTarget[]): string[] {
  const byDir = new Map<string, string[]>();
  for (const path of paths) {
    const dir = path.includes("/")
      ? path.slice(0, path.lastIndexOf("/")) || "/"
      : ".";
    byDir.set(dir, [...(byDir.get(dir) ?? []), path]);
  }
  return [...byDir.entries()].flatMap(([dir, list]) => {
    const keep = list.length < COLLAPSE_AT || dir === "." || dir === "/" ||
      sensitivePath(dir) !== null ||
      left.some((t) => t.value.startsWith(`${dir}/`));
    return keep ? list : [dir];
  });
}
