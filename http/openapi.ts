/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the route table
 * and the zod schemas of schemas.ts: `/openapi.json` is made from the same
 * schemas the app validates with, so the document cannot drift from what the
 * routes accept.
 *
 * @module
 */

import { z } from "zod";
import { PolicySchema } from "../harness/policy.ts";
import { NetworkPolicySchema } from "../injector/network_policy.ts";
import {
  AuditEventSchema,
  AuditTrailSchema,
  CreatedSandboxSchema,
  CreateSandboxRequestSchema,
  DirListingSchema,
  ErrorBodySchema,
  HealthSchema,
  NetworkViewSchema,
  ReadinessSchema,
  type RouteBody,
  ROUTES,
  RunRequestSchema,
  RunResultSchema,
  RunStatusSchema,
  SandboxInfoSchema,
  SandboxListSchema,
  StreamChunkSchema,
  UpdateNetworkRequestSchema,
  VersionSchema,
} from "./schemas.ts";

/** Named schemas of the document: requests as written, answers as sent. */
const REQUEST_SCHEMAS: Record<string, z.ZodType> = {
  CreateSandboxRequest: CreateSandboxRequestSchema,
  PolicyInput: PolicySchema,
  RunRequest: RunRequestSchema,
  UpdateNetworkRequest: UpdateNetworkRequestSchema,
  NetworkPolicyInput: NetworkPolicySchema,
};
const RESPONSE_SCHEMAS: Record<string, z.ZodType> = {
  ErrorBody: ErrorBodySchema,
  Health: HealthSchema,
  Readiness: ReadinessSchema,
  Version: VersionSchema,
  SandboxInfo: SandboxInfoSchema,
  CreatedSandbox: CreatedSandboxSchema,
  SandboxList: SandboxListSchema,
  Policy: PolicySchema,
  NetworkPolicy: NetworkPolicySchema,
  NetworkView: NetworkViewSchema,
  AuditEvent: AuditEventSchema,
  AuditTrail: AuditTrailSchema,
  RunStatus: RunStatusSchema,
  RunResult: RunResultSchema,
  StreamChunk: StreamChunkSchema,
  DirListing: DirListingSchema,
};

function components(
  named: Record<string, z.ZodType>,
  io: "input" | "output",
): Map<z.ZodType, string> & { schemas: Record<string, unknown> } {
  const registry = z.registry<{ id: string }>();
  const ids = new Map<z.ZodType, string>();
  for (const [id, schema] of Object.entries(named)) {
    registry.add(schema, { id });
    ids.set(schema, id);
  }
  const out = z.toJSONSchema(registry, {
    io,
    uri: (id) => `#/components/schemas/${id}`,
  });
  const schemas: Record<string, unknown> = {};
  for (const [id, schema] of Object.entries(out.schemas)) {
    // Component schemas are fragments of this document: no own $id/$schema
    // (a fragment-only $id is not valid JSON Schema 2020-12).
    const { $id: _id, $schema: _schema, ...rest } = schema;
    schemas[id] = rest;
  }
  return Object.assign(ids, { schemas });
}

function content(
  body: RouteBody,
  ids: Map<z.ZodType, string>,
): Record<string, unknown> | undefined {
  if ("json" in body) {
    const id = ids.get(body.json);
    return {
      "application/json": {
        schema: id
          ? { $ref: `#/components/schemas/${id}` }
          : { type: "object" },
      },
    };
  }
  if ("binary" in body) {
    return {
      "application/octet-stream": {
        schema: {
          type: "string",
          contentMediaType: "application/octet-stream",
        },
      },
    };
  }
  if ("text" in body) {
    return { "text/plain": { schema: { type: "string" } } };
  }
  if ("events" in body) {
    return { "text/event-stream": { schema: { type: "string" } } };
  }
  return undefined;
}

/**
 * The OpenAPI 3.1 document of the API, generated from {@linkcode ROUTES} and
 * the zod schemas of schemas.ts.
 *
 * @param version The airlock version for `info.version`.
 * @returns The document (JSON-serialisable).
 *
 * @example Usage
 * ```ts
 * import { openApiDocument } from "./openapi.ts";
 * const doc = openApiDocument("0.1.0");
 * console.log(Object.keys(doc.paths as object).includes("/sandboxes"));
 * ```
 */
export function openApiDocument(version: string): Record<string, unknown> {
  const requests = components(REQUEST_SCHEMAS, "input");
  const responses = components(RESPONSE_SCHEMAS, "output");
  for (const id of Object.keys(requests.schemas)) {
    if (id in responses.schemas) {
      throw new Error(
        `Cannot generate OpenAPI: schema id '${id}' is used twice`,
      );
    }
  }
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of ROUTES) {
    const parameters = [
      ...[...route.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
        name: m[1],
        in: "path",
        required: true,
        schema: { type: "string" },
      })),
      ...(route.query ?? []).map((q) => ({
        name: q.name,
        in: "query",
        required: false,
        description: q.description,
        schema: { type: "string", enum: ["1"] },
      })),
    ];
    const success = content(route.response, responses);
    const requestContent = route.request
      ? content(route.request, requests)
      : undefined;
    (paths[route.path] ??= {})[route.method] = {
      operationId: route.operationId,
      summary: route.summary,
      ...(route.auth ? {} : { security: [] }),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(requestContent
        ? { requestBody: { required: true, content: requestContent } }
        : {}),
      responses: {
        [String(route.status)]: {
          description: "Success",
          ...(success ? { content: success } : {}),
        },
        default: {
          description: "An error; 'code' says which (see ErrorBody)",
          content: {
            "application/json": {
              schema: { $ref: "#/components/schemas/ErrorBody" },
            },
          },
        },
      },
    };
  }
  return {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: {
      title: "airlock HTTP API",
      version,
      description:
        "Run untrusted Deno programs in bubblewrap sandboxes whose only egress is an injecting proxy.",
    },
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: { ...requests.schemas, ...responses.schemas },
    },
  };
}
