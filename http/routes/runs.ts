/**
 * `POST /sandboxes/:id/runs` and `POST /sandboxes/:id/runs/stream` (output
 * as text, or as base64 of the exact bytes with `?binary=1`). A run
 * first takes a slot of the scheduler shared by every token (_scheduler.ts);
 * its answer is a RunResult written from a bounded spool (_spool.ts), or
 * server-sent events with a bounded queue (a slow reader makes the program
 * wait on its output). A client that hangs up kills its run.
 *
 * @module
 */

import { Hono } from "hono";
import type { z } from "zod";
import type { AuditEvent } from "../../harness/run_result.ts";
import type { RunOptions, Sandbox } from "../../harness/sandbox.ts";
import { ceilingIssues } from "../ceilings.ts";
import { type Release, TooManyRunsError } from "../_scheduler.ts";
import { resultBody, spool, type Spooled } from "../_spool.ts";
import {
  type AppEnv,
  type AppState,
  type Entry,
  lookup,
  readBody,
  whileOpen,
} from "../_context.ts";
import {
  ApiError,
  deleted,
  errorBody,
  overCeiling,
  toApiError,
} from "../_errors.ts";
import { RunRequestSchema } from "../schemas.ts";

const encoder = new TextEncoder();
/** Bytes of server-sent events queued for a slow client before output waits. */
const STREAM_HIGH_WATER = 256 * 1024;

/**
 * The routes that run programs, for `app.route("/", runRoutes(state))`.
 *
 * @param state The server's state (app.ts).
 * @returns A hono app with the two routes.
 *
 * @example Usage
 * ```ts ignore
 * import { runRoutes } from "./runs.ts";
 * app.route("/", runRoutes(state));
 * ```
 */
export function runRoutes(state: AppState): Hono<AppEnv> {
  const { log } = state;
  const app = new Hono<AppEnv>();

  app.post("/sandboxes/:id/runs", async (c) => {
    const entry = lookup(state, c);
    const body = await readBody(c, RunRequestSchema, null);
    // The client hung up: nobody will read the result, so stop the run
    // (or give up its place in the queue).
    const signal = c.req.raw.signal;
    // The slot is held until the answer is out: its spool files count
    // against the caller's runs, not against nobody.
    const release = await runSlot(state, entry, body, signal);
    let outputs: Spooled[] = [];
    try {
      const dir = await state.spoolDirectory();
      const child = await whileOpen(
        entry,
        () => entry.sandbox.spawn({ ...runOptions(body), signal }),
      );
      const collected = await Promise.allSettled([
        spool(child.stdout, dir),
        spool(child.stderr, dir),
      ]);
      outputs = collected.flatMap((o) =>
        o.status === "fulfilled" ? [o.value] : []
      );
      const status = await whileOpen(entry, () => child.status);
      for (const o of collected) if (o.status === "rejected") throw o.reason;
      const [stdout, stderr] = outputs as [Spooled, Spooled];
      outputs = [];
      const answer = resultBody(
        status as unknown as Record<string, unknown>,
        stdout,
        stderr,
        release,
      );
      // A client gone before the body was read may never pull it to its
      // end: once the server is done with the response, whatever happened,
      // the spool files and the slot go (both are idempotent).
      c.env?.completed?.catch(() => {}).finally(() => {
        void stdout.dispose();
        void stderr.dispose();
        release();
      });
      return new Response(answer, {
        headers: { "content-type": "application/json" },
      });
    } catch (error) {
      await Promise.all(outputs.map((o) => o.dispose()));
      release();
      throw error;
    }
  });

  app.post("/sandboxes/:id/runs/stream", async (c) => {
    const entry = lookup(state, c);
    const body = await readBody(c, RunRequestSchema, null);
    const release = await runSlot(state, entry, body, c.req.raw.signal);
    let child;
    try {
      child = await whileOpen(
        entry,
        () => entry.sandbox.spawn(runOptions(body)),
      );
    } catch (error) {
      release();
      throw error;
    }
    // The stream's own queue is bounded (a slow reader makes the program
    // wait on its output), so the slot goes when the run has ended.
    child.status.catch(() => {}).finally(release);
    // Output is text unless the client asks for the exact bytes.
    const binary = c.req.query("binary") === "1";
    return new Response(eventStream(entry, child, log, binary), {
      headers: {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
      },
    });
  });

  return app;
}

/**
 * Waits for a run slot (see _scheduler.ts): the caller's cap, the
 * sandbox's cap and the server's slots, its queue served in turn with
 * every other caller's.
 */
async function runSlot(
  { scheduler }: AppState,
  entry: Entry,
  body: z.output<typeof RunRequestSchema>,
  signal: AbortSignal,
): Promise<Release> {
  const { ceilings, name } = entry.caller;
  if (body.timeoutMs !== undefined) {
    const over = ceilingIssues({ timeoutMs: body.timeoutMs }, ceilings, "");
    if (over.length > 0) throw overCeiling(over);
  }
  const gone = () =>
    new ApiError(
      400,
      "invalid_request",
      "The client closed the connection before the run started",
    );
  let release: Release;
  try {
    release = await scheduler.acquire(
      name,
      ceilings,
      entry.sandbox.id,
      signal,
    );
  } catch (error) {
    if (error instanceof TooManyRunsError) {
      throw new ApiError(429, "too_many_runs", error.message);
    }
    // Gave up its place in the queue: not a server error.
    if (signal.aborted) throw gone();
    throw error;
  }
  if (signal.aborted || entry.sandbox.closed) {
    release();
    throw signal.aborted ? gone() : deleted(entry.sandbox.id);
  }
  return release;
}

function runOptions(body: z.output<typeof RunRequestSchema>): RunOptions {
  const source = body.code !== undefined
    ? { code: body.code }
    : { files: body.files ?? {}, entry: body.entry ?? "" };
  return {
    ...source,
    ...(body.args ? { args: body.args } : {}),
    ...(body.stdin !== undefined ? { stdin: body.stdin } : {}),
    ...(body.timeoutMs !== undefined ? { timeoutMs: body.timeoutMs } : {}),
  };
}

/**
 * The server-sent events of one run. Audit events are routed here by run id
 * as the sandbox records them; any the stream missed are sent before the
 * status. Cancelling the body (the client went away) kills the run.
 */
function eventStream(
  entry: Entry,
  child: Awaited<ReturnType<Sandbox["spawn"]>>,
  log: (message: string) => void,
  binary: boolean,
): ReadableStream<Uint8Array> {
  let done = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  // Output waits while the client is behind by STREAM_HIGH_WATER bytes: the
  // program then blocks on its own output instead of the server holding it.
  let wake: (() => void) | null = null;
  let drained: Promise<void> | null = null;
  const room = async () => {
    while (!done && (controller.desiredSize ?? 1) <= 0) {
      drained ??= new Promise((resolve) => (wake = resolve));
      await drained;
    }
  };
  const wakeAll = () => {
    const resolve = wake;
    wake = null;
    drained = null;
    resolve?.();
  };
  const sent = new Set<AuditEvent>();
  const send = (event: string, data: unknown) => {
    if (done) return;
    controller.enqueue(
      encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`),
    );
  };
  const audit = (event: AuditEvent) => {
    sent.add(event);
    send("audit", event);
  };
  entry.listeners.set(child.runId, audit);
  const pump = async (stream: ReadableStream<Uint8Array>, name: string) => {
    // One decoder per stream: a character split across two chunks is sent
    // whole with the second (invalid UTF-8 becomes U+FFFD; ?binary=1 keeps
    // the exact bytes).
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      if (binary) send(name, { base64: base64(chunk) });
      else {
        const text = decoder.decode(chunk, { stream: true });
        if (text) send(name, { text });
      }
      await room();
    }
    const rest = binary ? "" : decoder.decode();
    if (rest) send(name, { text: rest });
  };
  return new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      (async () => {
        try {
          await Promise.all([
            pump(child.stdout, "stdout"),
            pump(child.stderr, "stderr"),
          ]);
          const status = await child.status;
          for (const event of status.audit) {
            if (!sent.has(event)) audit(event);
          }
          send("status", status);
        } catch (error) {
          send("error", errorBody(toApiError(error, log, child.runId)));
        } finally {
          entry.listeners.delete(child.runId);
          if (!done) {
            done = true;
            controller.close();
          }
        }
      })();
    },
    pull() {
      wakeAll();
    },
    cancel() {
      done = true;
      wakeAll();
      child.kill();
    },
  }, {
    highWaterMark: STREAM_HIGH_WATER,
    size: (chunk) => chunk.byteLength,
  });
}

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
