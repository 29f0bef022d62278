/**
 * The HTTP API's wire format: one zod schema per request and response body
 * and the table of routes. The app validates with these schemas and
 * `/openapi.json` is generated from them and the table (openapi.ts), so the
 * document cannot drift from what the routes accept. The same bodies as
 * plain TypeScript types, for clients, are in types.ts.
 *
 * @module
 */

import { z } from "zod";
import { LimitsSchema, PolicySchema } from "../harness/policy.ts";
import { NetworkPolicySchema } from "../injector/network_policy.ts";
import { ERROR_CODES } from "./types.ts";

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** One problem with a request, by its path in the body (`policy.limits`). */
export const IssueSchema = z.strictObject({
  path: z.string().describe("Dotted path in the request body; '' for the root"),
  message: z.string(),
});

/** One problem found while bundling the program. */
export const BundleProblemSchema = z.strictObject({
  message: z.string(),
  file: z.string().optional(),
  line: z.number().int().optional(),
  column: z.number().int().optional(),
});

/** Every error answer. */
export const ErrorBodySchema = z.strictObject({
  error: z.strictObject({
    code: z.enum(ERROR_CODES),
    message: z.string(),
    issues: z.array(IssueSchema).optional().describe(
      "For invalid_request, invalid_policy, over_ceiling (each limit over its ceiling) and npm_not_allowed",
    ),
    problems: z.array(BundleProblemSchema).optional().describe(
      "For bundle_error",
    ),
  }),
});

/** `GET /health`. */
export const HealthSchema = z.strictObject({ ok: z.literal(true) });

/** One readiness check. */
export const ReadinessCheckSchema = z.strictObject({
  ok: z.boolean(),
  detail: z.string(),
});

/** `GET /ready` (200 when ready, 503 when not, same body). */
export const ReadinessSchema = z.strictObject({
  ready: z.boolean(),
  node: z.string().nullable().describe(
    "This node's name (in the ids of its sandboxes)",
  ),
  checks: z.record(z.string(), ReadinessCheckSchema).describe(
    "sandbox (a probe sandbox runs), injector, capacity, draining",
  ),
});

/** `GET /version`. */
export const VersionSchema = z.strictObject({
  airlock: z.string(),
  deno: z.string(),
});

/** `POST /sandboxes` body. */
export const CreateSandboxRequestSchema = z.strictObject({
  policy: PolicySchema.optional().describe(
    "The sandbox policy (default: the server's). Limits it does not set take the server's defaults; a limit over the server's ceiling is refused (over_ceiling). npm.allow, host inputs, upstream settings, subnets.allow and ${env:NAME} references are refused unless the server's config allows them",
  ),
  secrets: z.record(
    z.string().regex(NAME, "must be a secret name ([A-Za-z_][A-Za-z0-9_]*)"),
    z.string(),
  ).optional().describe(
    "Values for ${secret:NAME} references; they stay in the server's injector and are never returned",
  ),
  name: z.string().min(1).max(200).optional().describe(
    "A label for listings",
  ),
  warm: z.boolean().optional().describe(
    "Warm start (default true): while idle, the sandbox keeps its next run's process started (~38 MB) so a short run takes milliseconds; false starts each run's process when the run is asked for",
  ),
});

/** One sandbox in a listing. */
export const SandboxInfoSchema = z.strictObject({
  id: z.string(),
  name: z.string().nullable(),
  createdAt: z.string().describe("ISO time"),
  running: z.boolean().describe("Whether a run is live"),
});

/** `POST /sandboxes` answer: the sandbox and its validated policy. */
export const CreatedSandboxSchema = SandboxInfoSchema.extend({
  policy: PolicySchema.describe(
    "The policy with defaults filled in; injected header values and placeholder secret values are '<redacted>'",
  ),
});

/** `GET /sandboxes`. */
export const SandboxListSchema = z.strictObject({
  sandboxes: z.array(SandboxInfoSchema),
});

/** `POST /sandboxes/{id}/runs` and `.../runs/stream` body. */
export const RunRequestSchema = z.strictObject({
  code: z.string().optional().describe(
    "Program source (TypeScript or JavaScript)",
  ),
  files: z.record(z.string().min(1), z.string()).optional().describe(
    "Program files by relative path; give 'entry' too",
  ),
  entry: z.string().min(1).optional().describe("The entry point, one of files"),
  args: z.array(z.string()).optional().describe("Deno.args of the program"),
  stdin: z.string().optional().describe("Text fed to the program's stdin"),
  timeoutMs: z.number().int().min(1).max(86_400_000).optional().describe(
    "Wall-clock limit of this run; default the policy's; at most the server's ceiling (over_ceiling)",
  ),
}).superRefine((body, ctx) => {
  const inline = body.code !== undefined;
  const files = body.files !== undefined || body.entry !== undefined;
  if (inline === files) {
    ctx.addIssue({
      code: "custom",
      path: [],
      message: "give either 'code', or 'files' with 'entry'",
    });
  } else if (files && (body.files === undefined || body.entry === undefined)) {
    ctx.addIssue({
      code: "custom",
      path: [body.files === undefined ? "files" : "entry"],
      message: "'files' and 'entry' go together",
    });
  }
}).describe("A program: 'code', or 'files' with 'entry'");

/** One audit event (egress request, permission check or harness record). */
export const AuditEventSchema = z.looseObject({
  time: z.string(),
  source: z.enum(["injector", "broker", "harness"]),
  kind: z.string(),
}).describe("See AuditEvent in harness/run_result.ts for every field");

/** How a run ended. */
export const RunStatusSchema = z.strictObject({
  sandboxId: z.string(),
  runId: z.string(),
  exitCode: z.number().int(),
  signal: z.string().nullable(),
  reason: z.enum([
    "exit",
    "timeout",
    "oom",
    "cpu",
    "file-size",
    "disk-limit",
    "output-limit",
    "killed",
    "crashed",
  ]),
  success: z.boolean(),
  truncated: z.boolean(),
  durationMs: z.number(),
  startedAt: z.string(),
  limits: LimitsSchema,
  audit: z.array(AuditEventSchema),
});

/** `POST /sandboxes/{id}/runs` answer. */
export const RunResultSchema = RunStatusSchema.extend({
  stdout: z.string().describe("Decoded as UTF-8 (invalid bytes replaced)"),
  stderr: z.string(),
});

/**
 * Data of a `stdout` or `stderr` stream event: text by default, base64 of
 * the exact bytes with `?binary=1`.
 */
export const StreamChunkSchema = z.union([
  z.strictObject({
    text: z.string().describe(
      "The output as UTF-8 text (invalid bytes replaced; a character split across chunks arrives whole)",
    ),
  }),
  z.strictObject({
    base64: z.string().describe("The exact bytes, base64-encoded (?binary=1)"),
  }),
]);

/** `PUT /sandboxes/{id}/network` body. */
export const UpdateNetworkRequestSchema = z.strictObject({
  network: NetworkPolicySchema,
});

/** `GET` and `PUT /sandboxes/{id}/network` answer. */
export const NetworkViewSchema = z.strictObject({
  network: NetworkPolicySchema.describe(
    "The policy in force; injected values are '<redacted>'",
  ),
});

/** `GET /sandboxes/{id}/audit`. */
export const AuditTrailSchema = z.strictObject({
  events: z.array(AuditEventSchema),
});

/** `GET /sandboxes/{id}/files/{path}?list=1`. */
export const DirListingSchema = z.strictObject({
  path: z.string(),
  entries: z.array(z.strictObject({
    name: z.string(),
    isFile: z.boolean(),
    isDirectory: z.boolean(),
    isSymlink: z.boolean(),
  })),
});

/** A documented body: a JSON schema, raw bytes, or an event stream. */
export type RouteBody =
  | { json: z.ZodType }
  | { binary: true }
  | { events: true }
  | { text: true }
  | { none: true };

/** One route of the API, as documented. */
export interface RouteDoc {
  /** HTTP method, lower case. */
  method: "get" | "post" | "put" | "delete";
  /** OpenAPI form: `/sandboxes/{id}`. */
  path: string;
  /** The client method of the same name. */
  operationId: string;
  /** What it does. */
  summary: string;
  /** Whether a bearer token is required (when the server has tokens). */
  auth: boolean;
  /** The request body, if any. */
  request?: RouteBody;
  /** Optional query parameters (all take "1"). */
  query?: { name: string; description: string }[];
  /** The success status. */
  status: number;
  /** The success body. */
  response: RouteBody;
}

const json = (schema: z.ZodType): RouteBody => ({ json: schema });

/** Every route, in the order of the document. */
export const ROUTES: readonly RouteDoc[] = [
  {
    method: "get",
    path: "/health",
    operationId: "health",
    summary: "Liveness",
    auth: false,
    status: 200,
    response: json(HealthSchema),
  },
  {
    method: "get",
    path: "/ready",
    operationId: "ready",
    summary:
      "Readiness: whether this node can start a sandbox now (503 with the same body when not)",
    auth: false,
    status: 200,
    response: json(ReadinessSchema),
  },
  {
    method: "get",
    path: "/metrics",
    operationId: "metrics",
    summary:
      "Prometheus metrics (text format); needs the metrics token, or a loopback client",
    auth: false,
    status: 200,
    response: { text: true },
  },
  {
    method: "get",
    path: "/version",
    operationId: "version",
    summary: "airlock and Deno versions",
    auth: false,
    status: 200,
    response: json(VersionSchema),
  },
  {
    method: "get",
    path: "/openapi.json",
    operationId: "openapi",
    summary: "This document",
    auth: false,
    status: 200,
    response: { json: z.record(z.string(), z.unknown()) },
  },
  {
    method: "post",
    path: "/sandboxes",
    operationId: "createSandbox",
    summary: "Create a sandbox (nothing runs yet)",
    auth: true,
    request: json(CreateSandboxRequestSchema),
    status: 201,
    response: json(CreatedSandboxSchema),
  },
  {
    method: "get",
    path: "/sandboxes",
    operationId: "listSandboxes",
    summary: "The caller's sandboxes",
    auth: true,
    status: 200,
    response: json(SandboxListSchema),
  },
  {
    method: "delete",
    path: "/sandboxes/{id}",
    operationId: "deleteSandbox",
    summary: "Kill every run and delete every file of the sandbox",
    auth: true,
    status: 204,
    response: { none: true },
  },
  {
    method: "post",
    path: "/sandboxes/{id}/runs",
    operationId: "run",
    summary:
      "Run a program to completion (a client that disconnects kills the run). It waits for a run slot of the token (429 too_many_runs when the token's queue is full)",
    auth: true,
    request: json(RunRequestSchema),
    status: 200,
    response: json(RunResultSchema),
  },
  {
    method: "post",
    path: "/sandboxes/{id}/runs/stream",
    operationId: "runStream",
    summary:
      "Run a program, streaming server-sent events: 'stdout' and 'stderr' (StreamChunk: { text } by default, { base64 } of the exact bytes with ?binary=1), 'audit' (AuditEvent, as it happens), then 'status' (RunStatus) or 'error' (ErrorBody). A client that disconnects kills the run; a slow reader makes the program wait on its output. It waits for a run slot as /runs does",
    auth: true,
    request: json(RunRequestSchema),
    query: [{
      name: "binary",
      description:
        "1: send stdout and stderr as base64 of the exact bytes instead of text",
    }],
    status: 200,
    response: { events: true },
  },
  {
    method: "get",
    path: "/sandboxes/{id}/network",
    operationId: "getNetworkPolicy",
    summary: "The network policy in force (injected values redacted)",
    auth: true,
    status: 200,
    response: json(NetworkViewSchema),
  },
  {
    method: "put",
    path: "/sandboxes/{id}/network",
    operationId: "updateNetworkPolicy",
    summary: "Replace the network policy; applies to the next request",
    auth: true,
    request: json(UpdateNetworkRequestSchema),
    status: 200,
    response: json(NetworkViewSchema),
  },
  {
    method: "get",
    path: "/sandboxes/{id}/audit",
    operationId: "getAudit",
    summary: "The sandbox's audit trail (the last 10,000 events)",
    auth: true,
    status: 200,
    response: json(AuditTrailSchema),
  },
  {
    method: "get",
    path: "/sandboxes/{id}/files/{path}",
    operationId: "readFile",
    summary:
      "Read a scratch file (application/octet-stream), or list a directory with ?list=1 (DirListing). 'path' may contain slashes",
    auth: true,
    query: [{ name: "list", description: "1: list the directory" }],
    status: 200,
    response: { binary: true },
  },
  {
    method: "put",
    path: "/sandboxes/{id}/files/{path}",
    operationId: "writeFile",
    summary:
      "Write a scratch file from the raw body (parents are created); refused while a run is live",
    auth: true,
    request: { binary: true },
    status: 204,
    response: { none: true },
  },
  {
    method: "delete",
    path: "/sandboxes/{id}/files/{path}",
    operationId: "removeFile",
    summary: "Remove a scratch file or directory",
    auth: true,
    query: [{
      name: "recursive",
      description: "1: remove a non-empty directory",
    }],
    status: 204,
    response: { none: true },
  },
];
