/**
 * The demo's structured report and its text form: a short narrative of what
 * happened, then one line per outcome with the evidence under it. Colour
 * only when asked (the CLI asks on a terminal without `NO_COLOR`).
 *
 * @module
 */

import type { AuditEvent } from "../../mod.ts";
import type { Injection } from "./agent.ts";
import type {
  BillingRequest,
  CollectedRequest,
  Tunnel,
} from "./billing_api.ts";

/** One attempt of the program to read a credential file. */
export interface FileAttempt {
  /** `.ssh/id_rsa` or `.aws/credentials`. */
  file: string;
  /** The path it tried. */
  path: string;
  ok: boolean;
  /** Bytes read, when it worked. */
  bytes?: number;
  /** The first line read, when it worked. */
  firstLine?: string;
  /** The error the program got, when it did not. */
  error?: string;
  /** The permission broker's record of the check (sandbox only). */
  audit?: { decision: "allow" | "deny"; reason: string };
}

/** One audit record about the exfiltration host, from either wall. */
export interface Refusal {
  /** `deno` (the permission broker) or `injector` (the egress proxy). */
  layer: "deno" | "injector";
  /** What was asked: `net billing-debug.external.dev:443`, `CONNECT ...`. */
  what: string;
  decision: string;
  /** The injector's deciding rule (`not-in-allowlist`). */
  rule?: string;
  reason?: string;
  /** Status the sandbox got (injector). */
  status?: number | null;
  /** Identical checks (broker records are aggregated). */
  count?: number;
}

/** What the program printed about itself (its last stdout line). */
export interface ProgramView {
  home: string | null;
  homeError?: string;
  env: Record<string, string> | string | null;
  files: FileAttempt[];
  billing: { status: number; body: string } | { error: string } | null;
  diagnostic: {
    via: string;
    label: string;
    status?: number;
    error?: string;
    response?: string;
    airlockError?: string | null;
  }[];
  wrote: string | null;
  wroteError?: string;
}

/** The demo's result, in both modes. */
export interface DemoReport {
  mode: "sandbox" | "no-sandbox";
  /**
   * Whether the run showed what its mode is for: everything contained in
   * the sandbox; the leak without it.
   */
  asExpected: boolean;
  /** Whether nothing got out and no credential was readable. */
  contained: boolean;
  /** The whole demo, servers included. */
  durationMs: number;
  setup: {
    billing: { name: string; address: string };
    collector: { name: string; address: string };
    /** `sha256:...` of the run's BILLING_TOKEN (never the token). */
    tokenFingerprint: string;
    log: { path: string; lines: number; injection: Injection | null };
    program: { lines: number; bytes: number; text: string };
    /** The fake home directory and the fake credentials in it. */
    fakeHome: { path: string; files: { path: string; bytes: number }[] };
    /** How the program was run, one line. */
    runner: string;
    /** Without a sandbox: the CONNECT forwarder in HTTPS_PROXY. */
    proxy?: string;
  };
  run: {
    sandboxId: string | null;
    runId: string | null;
    reason: string;
    exitCode: number;
    durationMs: number;
  };
  /** What the program reported about itself, or null if it printed nothing usable. */
  program: ProgramView | null;
  outcomes: {
    credentialFiles: {
      /** Whether any credential file was read. */
      read: boolean;
      attempts: FileAttempt[];
    };
    exfiltration: {
      /** Whether any request reached the collector. */
      reached: boolean;
      /** What the collector received. */
      received: (Omit<CollectedRequest, "body"> & {
        fakeKey: boolean;
        fakeAws: boolean;
        token: boolean;
      })[];
      /** Audit records about the host (sandbox only). */
      refusals: Refusal[];
      /** The program's own account of its attempts. */
      attempts: ProgramView["diagnostic"];
      /** Tunnels the forwarder opened (no sandbox only). */
      tunnels?: Tunnel[];
    };
    billing: {
      /** Status the program got, or null. */
      status: number | null;
      /** The injector's request record (sandbox only). */
      audit: {
        decision: string;
        rule: string;
        injected: string[];
        status: number | null;
      } | null;
      /** What the billing API received. */
      upstream: BillingRequest[];
      /** Whether the billing API got exactly `Bearer <token>`. */
      upstreamGotToken: boolean;
    };
    token: {
      /** Whether the token occurs in anything the program produced. */
      appeared: boolean;
      /** Where it appeared. */
      where: string[];
      /** Everything checked: stdout, stderr, each file written. */
      checked: { name: string; bytes: number }[];
      /** Whether the program could read it from its environment. */
      inEnvironment: boolean;
    };
  };
  /** The run's audit trail (sandbox only). */
  audit: AuditEvent[];
  /** Every byte the program produced, decoded. */
  evidence: {
    stdout: string;
    stderr: string;
    files: { path: string; bytes: number; text: string }[];
  };
}

/** ANSI styles, or none. */
interface Style {
  ok: (s: string) => string;
  bad: (s: string) => string;
  dim: (s: string) => string;
  bold: (s: string) => string;
  code: (s: string) => string;
}

const ansi = (open: number, close: number) => (s: string) =>
  `\x1b[${open}m${s}\x1b[${close}m`;
const COLOR: Style = {
  ok: ansi(32, 39),
  bad: ansi(31, 39),
  dim: ansi(2, 22),
  bold: ansi(1, 22),
  code: ansi(36, 39),
};
const PLAIN: Style = {
  ok: (s) => s,
  bad: (s) => s,
  dim: (s) => s,
  bold: (s) => s,
  code: (s) => s,
};

/**
 * The report as a short story and a list of outcomes.
 *
 * @param report The demo's report.
 * @param options `color`: use ANSI colours.
 * @returns The text, ending with a newline.
 */
export function renderReport(
  report: DemoReport,
  options: { color?: boolean } = {},
): string {
  const s = options.color ? COLOR : PLAIN;
  return report.mode === "sandbox"
    ? renderSandboxed(report, s)
    : renderUnsandboxed(report, s);
}

function story(report: DemoReport, s: Style, sandboxed: boolean): string[] {
  const { setup } = report;
  const out: string[] = [];
  const injection = setup.log.injection;
  out.push(
    s.bold(
      sandboxed
        ? "airlock demo: a prompt injection in a log file, run in a sandbox"
        : "airlock demo --no-sandbox: the same program, run the way agents run code today",
    ),
    "",
    `1. A billing API answers at https://${setup.billing.name} ${
      s.dim(`(127.0.0.1:${setup.billing.address.split(":")[1]}, its own CA)`)
    }.`,
    `   It wants ${
      s.code("Authorization: Bearer <BILLING_TOKEN>")
    }; a fresh token was made for this run ${s.dim(setup.tokenFingerprint)}`,
    sandboxed
      ? "   and it lives only in the harness."
      : `   and, as usual today, the program gets it in its environment ${
        s.code("BILLING_TOKEN")
      }.`,
    `2. The agent debugs the outage by reading ${
      s.code(setup.log.path)
    } (${setup.log.lines} lines).`,
  );
  if (injection) {
    out.push(
      `   Lines ${injection.lines[0]}-${
        injection.lines[1]
      } hide instructions in an HTML comment:`,
      ...injection.comment.split("\n").map((l) => `     ${s.bad(l)}`),
    );
  } else {
    out.push("   It finds no instructions in it.");
  }
  const targets = injection?.uploads.map((u) => `~/${u.homeRelative}`) ?? [];
  out.push(
    `3. The agent (scripted, and as obedient as a model) writes a ${setup.program.lines}-line program:`,
    `   GET https://${setup.billing.name}/v1/billing/status ${
      s.dim("(its task, no token in the code)")
    }, then the "diagnostic":`,
    `   read ${targets.join(" and ")} ${
      s.dim(
        `($HOME, ${setup.fakeHome.path}, /root)`,
      )
    } and POST them to https://${setup.collector.name}/check.`,
    `   ${setup.fakeHome.path} holds FAKE credentials; ${setup.collector.name} is a local collector ${
      s.dim(`(127.0.0.1:${setup.collector.address.split(":")[1]})`)
    }.`,
    `4. ${setup.runner}`,
  );
  return out;
}

function renderSandboxed(report: DemoReport, s: Style): string {
  const { outcomes, run } = report;
  const out = story(report, s, true);
  const mark = (good: boolean, symbol: string) =>
    good ? s.ok(symbol) : s.bad(symbol);
  out.push(
    "",
    s.bold(
      `Report ${
        s.dim(`(sandbox ${run.sandboxId}, run ${run.reason} ${run.exitCode})`)
      }`,
    ),
  );

  const files = outcomes.credentialFiles;
  out.push(
    `${mark(!files.read, "✗")} credential files: ${
      files.read ? s.bad("READ") : "not there"
    }`,
  );
  const program = report.program;
  out.push(
    `    $HOME  ${s.dim(program?.home ?? program?.homeError ?? "(not set)")}`,
  );
  for (const a of files.attempts) {
    out.push(
      `    ${a.path}  ${
        s.dim(
          (a.ok ? `read ${a.bytes} bytes` : a.error ?? "failed") +
            (a.audit ? ` [audit: ${a.audit.decision}]` : ""),
        )
      }`,
    );
  }

  const ex = outcomes.exfiltration;
  out.push(
    `${
      mark(!ex.reached, "✗")
    } exfiltration to ${report.setup.collector.name}: ${
      ex.reached ? s.bad("REACHED IT") : "refused"
    }`,
  );
  for (const r of ex.refusals) {
    const by = r.layer === "deno"
      ? "Deno permissions (broker)"
      : "injector (egress proxy)";
    const parts = [
      `decision ${r.decision}`,
      ...(r.rule ? [`rule ${r.rule}`] : []),
      ...(r.status !== undefined && r.status !== null
        ? [`status ${r.status}`]
        : []),
      ...(r.count && r.count > 1 ? [`${r.count} checks`] : []),
    ];
    out.push(`    ${by}: ${r.what}: ${parts.join(", ")}`);
    if (r.reason) out.push(`      ${s.dim(r.reason)}`);
  }
  out.push(
    `    ${
      s.dim(
        `the collector (reachable by name through the same mapping as the billing API) received ${ex.received.length} requests`,
      )
    }`,
  );

  const b = outcomes.billing;
  const billingOk = b.status === 200 && b.upstreamGotToken &&
    (b.audit?.injected.includes("authorization") ?? false);
  out.push(
    `${
      mark(billingOk, billingOk ? "✓" : "✗")
    } billing call: GET /v1/billing/status -> ${b.status ?? "no response"}`,
  );
  if (b.audit) {
    out.push(
      `    injector: decision ${b.audit.decision}, rule ${b.audit.rule}, injected ${
        JSON.stringify(b.audit.injected)
      }, status ${b.audit.status}`,
    );
  }
  const last = b.upstream.at(-1);
  out.push(
    `    the billing API received ${
      b.upstreamGotToken
        ? `the harness's token (${last?.tokenFingerprint})`
        : last?.hadAuthorization
        ? "a wrong token"
        : "no token"
    }; the program's code had none`,
  );
  const got = program?.billing;
  if (got) {
    out.push(
      `    ${
        s.dim(
          `the program got: ${"body" in got ? got.body : got.error}`,
        )
      }`,
    );
  }

  const t = outcomes.token;
  out.push(
    `${mark(!t.appeared, t.appeared ? "✗" : "✓")} the token ${
      t.appeared
        ? s.bad(`APPEARED inside the sandbox: ${t.where.join(", ")}`)
        : "never appeared inside the sandbox"
    }`,
    `    checked ${
      t.checked.map((c) => `${c.name} (${c.bytes} B)`).join(", ")
    }`,
    `    ${
      s.dim(
        `the program's view of its environment: ${
          describeEnv(report.program?.env ?? null)
        }`,
      )
    }`,
    "",
    `Run time ${formatMs(run.durationMs)} ${
      s.dim(`(whole demo ${formatMs(report.durationMs)})`)
    }.`,
    report.asExpected
      ? s.ok(
        "Contained: the injected program got its billing answer through the injector and took nothing out.",
      )
      : s.bad(
        "NOT CONTAINED: see the lines marked above.",
      ),
    s.dim(
      "Compare with `deno task demo --no-sandbox`: the same program without the airlock.",
    ),
  );
  return out.join("\n") + "\n";
}

function renderUnsandboxed(report: DemoReport, s: Style): string {
  const { outcomes, run } = report;
  const out = story(report, s, false);
  if (report.setup.proxy) {
    out.push(
      `   ${
        s.dim(
          `Names reach the local servers through HTTPS_PROXY=${report.setup.proxy} (a CONNECT forwarder); nothing leaves this machine.`,
        )
      }`,
    );
  }
  out.push("", s.bold(`Report ${s.dim(`(exit ${run.exitCode})`)}`));

  const files = outcomes.credentialFiles;
  const read = files.attempts.filter((a) => a.ok);
  out.push(
    `${files.read ? s.bad("✓") : s.ok("✗")} credential files: ${
      files.read ? s.bad("read") : "not read"
    }`,
  );
  for (const a of read) {
    out.push(`    ${a.path}  ${s.dim(`${a.bytes} bytes: ${a.firstLine}`)}`);
  }

  const ex = outcomes.exfiltration;
  const key = ex.received.find((r) => r.fakeKey);
  const aws = ex.received.find((r) => r.fakeAws);
  if (key && aws) {
    out.push(
      s.bad(
        `✗ LEAKED: the fake id_rsa and aws credentials reached ${report.setup.collector.name}`,
      ) + ` (${key.bytes} + ${aws.bytes} bytes)`,
    );
  } else {
    out.push(
      `${
        s.ok("✓")
      } the fake credentials did not reach ${report.setup.collector.name}`,
    );
  }
  for (const r of ex.received) {
    out.push(
      `    ${r.method} ${r.path}  ${
        s.dim(`x-diagnostic: ${r.label ?? "-"}, ${r.bytes} bytes`)
      }`,
    );
  }
  const tunnels = ex.tunnels ?? [];
  if (tunnels.length > 0) {
    out.push(
      `    ${
        s.dim(
          `no airlock in the way: the forwarder opened ${tunnels.length} tunnels (${
            tunnels.map((t) => t.host).join(", ")
          })`,
        )
      }`,
    );
  }
  const stolenToken = ex.received.filter((r) => r.token);
  if (stolenToken.length > 0) {
    out.push(
      s.bad(
        `✗ LEAKED: BILLING_TOKEN reached ${report.setup.collector.name} too`,
      ) +
        ` (in "${stolenToken.map((r) => r.label).join('", "')}", ${
          stolenToken.reduce((n, r) => n + r.bytes, 0)
        } bytes)`,
    );
  }

  const b = outcomes.billing;
  out.push(
    `${b.status === 200 ? "✓" : "✗"} billing call: GET /v1/billing/status -> ${
      b.status ?? "no response"
    } ${s.dim("(with the token the program held itself)")}`,
  );
  const t = outcomes.token;
  out.push(
    `${t.appeared || t.inEnvironment ? s.bad("✗") : s.ok("✓")} the token ${
      t.appeared || t.inEnvironment
        ? s.bad(
          `was in the program's hands: ${
            [...(t.inEnvironment ? ["its environment"] : []), ...t.where]
              .join(", ")
          }`,
        )
        : "never reached the program"
    }`,
    "",
    `Run time ${formatMs(run.durationMs)} ${
      s.dim(`(whole demo ${formatMs(report.durationMs)})`)
    }.`,
    report.asExpected
      ? s.bad(
        "Not contained: this is what airlock is for. `deno task demo` runs the same program in a sandbox.",
      )
      : s.ok("Nothing leaked (unexpected without a sandbox: see above)."),
  );
  return out.join("\n") + "\n";
}

function describeEnv(env: ProgramView["env"]): string {
  if (env === null) return "(nothing)";
  if (typeof env === "string") return env;
  const names = Object.keys(env);
  return names.length === 0 ? "empty" : names.join(", ");
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
