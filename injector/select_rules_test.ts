/**
 * selectRules() picks a destination's rules for one request: every matching
 * transform in order until the first matching response rule, each condition
 * (path, methods, query, headers) holding as written.
 */
import assert from "node:assert/strict";
import {
  compileNetworkPolicy,
  type NetworkPolicyInput,
  NetworkPolicySchema,
} from "./network_policy.ts";
import { selectRules } from "./select_rules.ts";

const SECRET = "sk-unit-0123456789abcdef";

function compile(input: NetworkPolicyInput) {
  return compileNetworkPolicy(NetworkPolicySchema.parse(input), {
    secrets: { T: SECRET },
    env: () => undefined,
  });
}

function rulesOf(input: NetworkPolicyInput, host = "api.example.com") {
  const d = compile(input).decide(host, 443);
  assert.ok(d.allowed);
  return d.rules;
}

const request = (
  over: Partial<{
    method: string;
    path: string;
    query: string;
    headers: [string, string][];
  }> = {},
) => ({ method: "GET", path: "/", query: "", headers: [], ...over });

Deno.test("selectRules(): every matching transform in order, until the first matching response", () => {
  const rules = rulesOf({
    allow: {
      "api.example.com": [
        { transform: [{ headers: { "X-1": "1" } }] },
        {
          match: { methods: ["POST"] },
          transform: [{ headers: { "X-2": "2" } }],
        },
        {
          match: { path: { startsWith: "/blocked/" } },
          response: { statusCode: 403, body: "no" },
        },
        { transform: [{ headers: { "X-3": "3" } }] },
        { response: { statusCode: 418 } },
        { transform: [{ headers: { "X-4": "4" } }] },
      ],
    },
  });
  const ids = (r: ReturnType<typeof selectRules>) => ({
    transforms: r.transforms.map((t) => t.id),
    response: r.response?.id ?? null,
  });
  assert.deepEqual(ids(selectRules(rules, request())), {
    transforms: ["api.example.com#0", "api.example.com#3"],
    response: "api.example.com#4",
  });
  assert.deepEqual(
    ids(selectRules(rules, request({ method: "post", path: "/blocked/x" }))),
    {
      transforms: ["api.example.com#0", "api.example.com#1"],
      response: "api.example.com#2",
    },
  );
});

Deno.test("selectRules(): path exact / startsWith / regex", () => {
  const rules = rulesOf({
    allow: {
      "api.example.com": [
        { match: { path: { exact: "/a" } }, response: { statusCode: 201 } },
        {
          match: { path: { startsWith: "/b/" } },
          response: { statusCode: 202 },
        },
        {
          match: { path: { regex: "^/c/[0-9]+$" } },
          response: { statusCode: 203 },
        },
      ],
    },
  });
  const status = (path: string) =>
    selectRules(rules, request({ path })).response?.response?.statusCode ??
      null;
  assert.equal(status("/a"), 201);
  assert.equal(status("/a/"), null);
  assert.equal(status("/ab"), null);
  assert.equal(status("/b/"), 202);
  assert.equal(status("/b/c/d"), 202);
  assert.equal(status("/b"), null);
  assert.equal(status("/c/12"), 203);
  assert.equal(status("/c/12/"), null);
  assert.equal(status("/x/c/12"), null);
});

Deno.test("selectRules(): methods case-insensitively, query keys and values, header names case-insensitively", () => {
  const rules = rulesOf({
    allow: {
      "api.example.com": [
        {
          match: { methods: ["get"] },
          transform: [{ headers: { "X-M": "1" } }],
        },
        {
          match: { query: [{ key: "k", value: "v" }, { key: "present" }] },
          transform: [{ headers: { "X-Q": "1" } }],
        },
        {
          match: {
            headers: [{ key: "X-Tenant", value: "acme" }, { key: "x-flag" }],
          },
          transform: [{ headers: { "X-H": "1" } }],
        },
      ],
    },
  });
  const names = (r: ReturnType<typeof request>) =>
    selectRules(rules, r).transforms.map((t) => t.headers![0]![0]);
  assert.deepEqual(names(request({ method: "GET" })), ["X-M"]);
  assert.deepEqual(names(request({ method: "Get" })), ["X-M"]);
  assert.deepEqual(names(request({ method: "POST" })), []);
  assert.deepEqual(
    names(request({ method: "POST", query: "k=v&present" })),
    ["X-Q"],
  );
  assert.deepEqual(
    names(request({ method: "POST", query: "k=w&k=v&present=" })),
    ["X-Q"],
  );
  assert.deepEqual(names(request({ method: "POST", query: "k=v" })), []);
  assert.deepEqual(
    names(request({ method: "POST", query: "k=%76&present" })),
    ["X-Q"],
    "query values are compared decoded",
  );
  assert.deepEqual(
    names(request({
      method: "POST",
      headers: [["x-tenant", "acme"], ["X-FLAG", ""]],
    })),
    ["X-H"],
  );
  assert.deepEqual(
    names(request({ method: "POST", headers: [["X-Tenant", "acme"]] })),
    [],
  );
  assert.deepEqual(
    names(request({
      method: "POST",
      headers: [["X-Tenant", "other"], ["X-Tenant", "acme"], ["x-flag", "1"]],
    })),
    ["X-H"],
  );
});

Deno.test("selectRules(): no rules, no match", () => {
  assert.deepEqual(selectRules([], request()), {
    transforms: [],
    response: null,
  });
});
