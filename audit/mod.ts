/**
 * airlock's audit product, beside the harness it reads from:
 * - the permission audit of one run (`report.ts`): what the program tried,
 *   what was refused and why, the minimal `deno run` flags and the airlock
 *   policy for the same run, built from a `RunResult`'s audit trail;
 * - its renderers: text for a terminal (`render_text.ts`, control and bidi
 *   characters shown as escapes) and a self-contained HTML timeline
 *   (`render_html.ts`, escaped under a CSP that forbids injected scripts);
 * - the static flag audit (`flags/`): every `deno run|serve|test|...`
 *   command of a project, its permission flags rated critical to info, with
 *   a narrower flag, or the exact flags of a recorded run, as the fix.
 *
 * `deno task audit` and `deno task audit:flags` (cli/) are their front
 * doors.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { auditText, buildAuditReport, renderAuditText } from "./mod.ts";
 *
 * // A finished run's report, as text.
 * const report = buildAuditReport(
 *   { audit: [], exitCode: 0, reason: "exit", durationMs: 5 },
 *   { program: "agent.ts", learn: false, paths: [] },
 * );
 * assert.match(renderAuditText(report), /^airlock permission audit: agent\.ts/);
 *
 * // A project's risky grants, without running anything.
 * const [finding] = auditText("deno run -A main.ts\n", "run.sh");
 * assert.equal(finding?.severity, "critical");
 * ```
 *
 * @module
 */

export * from "./report.ts";
export * from "./render_text.ts";
export * from "./render_html.ts";
export * from "./flags/mod.ts";
