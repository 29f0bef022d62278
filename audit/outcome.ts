/**
 * How a run ended, as a permission audit tells it: one plain sentence,
 * and whether the report is complete or partial; the program's output,
 * bounded at both ends; what learn mode's copy of the user's directory
 * held.
 *
 * @module
 */

import type { OtherAuditEvent } from "../harness/run_result.ts";

/** How the run ended, in the report's words. */
export interface RunOutcome {
  /** The program's exit code (or 128 + signal). */
  exitCode: number;
  /** Why it ended: "exit", "timeout", "oom", ... */
  reason: string;
  /** Wall-clock duration. */
  durationMs: number;
  /** False when the program failed or was cut short: the report is partial. */
  completed: boolean;
  /** One plain sentence: how it ended, and what that means for the report. */
  summary: string;
}

/** One output stream, bounded: its start and its end when it is long. */
export interface BoundedOutput {
  /** The text kept (the middle of a long stream is left out). */
  text: string;
  /** The stream's length in characters. */
  length: number;
  /** Characters left out of the middle (0 when all is kept). */
  omitted: number;
}

/** What learn mode's copy of the user's directory held. */
export interface MirrorInfo {
  /** The directory (the program's working directory). */
  path: string;
  /** Entries copied. */
  files: number;
  /** Bytes copied. */
  bytes: number;
  /** Top-level directories shown read-only instead of copied. */
  readOnly: string[];
  /** Entries that could not be copied. */
  problems: string[];
}

/**
 * Characters kept of each output stream by default.
 *
 * @example Usage
 * ```ts
 * import { OUTPUT_CHARS } from "./outcome.ts";
 * console.log(OUTPUT_CHARS); // 8192
 * ```
 */
export const OUTPUT_CHARS = 8_192;

/**
 * A stream kept whole when short, else its first quarter and its last
 * three quarters of `chars` (a failure's message is at the end).
 *
 * @param text The whole stream.
 * @param chars Characters kept.
 * @returns The bounded stream.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { boundOutput } from "./outcome.ts";
 * const out = boundOutput("a".repeat(100) + "END", 40);
 * assert.equal(out.omitted, 63);
 * assert.ok(out.text.endsWith("END"));
 * ```
 */
export function boundOutput(text: string, chars: number): BoundedOutput {
  if (text.length <= chars) return { text, length: text.length, omitted: 0 };
  const head = Math.floor(chars / 4);
  const tail = chars - head;
  return {
    text: `${text.slice(0, head)}\n… ${
      text.length - chars
    } characters left out …\n${text.slice(text.length - tail)}`,
    length: text.length,
    omitted: text.length - chars,
  };
}

const ENDINGS: Record<string, string> = {
  timeout: "cut short: the time limit ended it",
  oom: "cut short: it ran out of memory",
  cpu: "cut short: the CPU-time limit ended it",
  "file-size": "cut short: it wrote a file past the file-size limit",
  "disk-limit": "cut short: it filled its scratch quota",
  "output-limit": "cut short: its output reached the cap",
  killed: "cut short: it was killed",
  crashed: "it crashed on a signal",
};

/**
 * How a run ended, in one plain sentence, and whether its report is
 * complete: a program that failed or was cut short tried only part of
 * what it would have.
 *
 * @param result The run's end.
 * @param context `learn`: a learning run; `spawned`: it tried to run a
 *   program (which learning never does, a likely cause of a failure).
 * @returns The outcome.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { runOutcome } from "./outcome.ts";
 * const run = runOutcome(
 *   { exitCode: 124, reason: "timeout", durationMs: 5000 },
 *   { learn: false, spawned: false },
 * );
 * assert.equal(run.completed, false);
 * assert.match(run.summary, /cut short: the time limit ended it/);
 * ```
 */
export function runOutcome(
  result: { exitCode: number; reason: string; durationMs: number },
  context: { learn: boolean; spawned: boolean },
): RunOutcome {
  const seconds = `${(result.durationMs / 1000).toFixed(2)} s`;
  const completed = result.reason === "exit" && result.exitCode === 0;
  let summary: string;
  if (completed) {
    summary =
      `The program ran to its end (exit code 0, ${seconds}): the report covers the whole run.`;
  } else {
    const how = result.reason === "exit"
      ? `The program failed: it exited with code ${result.exitCode} after ${seconds}`
      : `The program was ${
        ENDINGS[result.reason] ?? `ended (${result.reason})`
      } (exit code ${result.exitCode}) after ${seconds}`;
    summary =
      `${how}. The result is partial: it shows only what the program tried before it stopped.`;
    if (context.learn && context.spawned) {
      summary +=
        " Learning never runs other programs: if it stopped at a spawn, the proposed --allow-run lets that spawn run under plain deno run.";
    }
  }
  return {
    exitCode: result.exitCode,
    reason: result.reason,
    durationMs: result.durationMs,
    completed,
    summary,
  };
}

/**
 * Reads learn mode's `learn-mirror` audit event.
 *
 * @param event The event.
 * @returns What the copy held.
 *
 * @example Usage
 * ```ts
 * import { mirrorInfo } from "./outcome.ts";
 * const info = mirrorInfo({ time: "t", source: "harness", kind: "learn-mirror", path: "/p", files: 2, bytes: 9, readOnly: [".git"], problems: [] });
 * console.log(info.readOnly); // [".git"]
 * ```
 */
export function mirrorInfo(event: OtherAuditEvent): MirrorInfo {
  const strings = (value: unknown) =>
    Array.isArray(value) ? value.filter((v) => typeof v === "string") : [];
  return {
    path: String(event.path ?? ""),
    files: Number(event.files ?? 0),
    bytes: Number(event.bytes ?? 0),
    readOnly: strings(event.readOnly),
    problems: strings(event.problems),
  };
}
