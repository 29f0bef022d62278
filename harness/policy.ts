/**
 * The sandbox policy: the parser that refuses bad policies with every
 * problem listed by its path and resolves their paths, loading from
 * JSON/JSONC files, and redaction for display. The schema and the policy's
 * types are in `policy_schema.ts` (re-exported here).
 *
 * A policy is data the harness trusts its operator for; the program inside
 * the sandbox never sees or changes it.
 *
 * @module
 */

import { z } from "zod";
import { SANDBOX_PATHS } from "../runtime/launcher.ts";
import { parseJsonc } from "./_jsonc.ts";
import { normalisePath } from "./paths.ts";
import { redactNetworkPolicy } from "../injector/network_policy.ts";
import { REDACTED } from "../injector/secret_refs.ts";
import {
  InputSchema,
  InputTargetSchema,
  type Policy,
  type PolicyInputMount,
  PolicySchema,
} from "./policy_schema.ts";

export * from "./policy_schema.ts";

/** One problem in a policy. */
export interface PolicyIssue {
  /** Where, as a dotted path (`limits.memoryMb`, `inputs.0.target`). */
  path: string;
  /** What is wrong. */
  message: string;
}

/**
 * A policy was refused; `issues` lists every problem.
 *
 * @example Reading the issues
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePolicy, PolicyError } from "./policy.ts";
 * assert.throws(
 *   () => parsePolicy({ limits: { timeoutMs: 0 }, scratch: "yes" }),
 *   (error) => {
 *     assert.ok(error instanceof PolicyError);
 *     assert.deepEqual(error.issues.map((i) => i.path), ["limits.timeoutMs", "scratch"]);
 *     return true;
 *   },
 * );
 * ```
 */
export class PolicyError extends Error {
  /** Every problem found. */
  readonly issues: PolicyIssue[];
  /**
   * Builds the error; its message lists every problem by path.
   *
   * @param issues The problems.
   * @param source Where the policy came from, for the message.
   */
  constructor(issues: PolicyIssue[], source = "policy") {
    super(
      `Invalid ${source}: ${issues.length} problem${
        issues.length === 1 ? "" : "s"
      }\n` +
        issues.map((i) => `  - ${i.path || "(root)"}: ${i.message}`).join("\n"),
    );
    this.name = "PolicyError";
    this.issues = issues;
  }
}

/** Options for {@linkcode parsePolicy}. */
export interface ParsePolicyOptions {
  /** Directory relative input paths are resolved against; default cwd. */
  baseDir?: string;
  /** Name of the policy's source for messages (a file name). */
  source?: string;
}

/**
 * Validates a policy and fills in defaults.
 *
 * @param input The policy as written (parsed JSON or an object).
 * @param options Base directory for relative paths.
 * @returns The normalised policy.
 * @throws {PolicyError} Listing every problem by path.
 *
 * @example Usage
 * ```ts
 * import { parsePolicy } from "./policy.ts";
 * const policy = parsePolicy({ limits: { timeoutMs: 5000 }, scratch: true });
 * console.log(policy.limits.timeoutMs, policy.limits.memoryMb, policy.network);
 * ```
 */
export function parsePolicy(
  input: unknown,
  options: ParsePolicyOptions = {},
): Policy {
  const parsed = PolicySchema.safeParse(input ?? {});
  const issues: PolicyIssue[] = parsed.success
    ? []
    : flattenIssues(parsed.error.issues);
  // The input checks below run even when another part failed the schema,
  // so one pass lists every problem.
  const entries = parsed.success
    ? parsed.data.inputs
    : individuallyValidInputs(input);
  const mounts: PolicyInputMount[] = [];
  const targets = new Map<string, number>();
  entries.forEach((entry, index) => {
    if (entry === null) return;
    const mount = normaliseInput(entry, index, options.baseDir, issues);
    if (mount === null) return;
    // Compared normalised: "/inputs/x/" would otherwise hide "/inputs/x".
    // (The schema refuses ".." in a target: null only beside that issue.)
    mount.target = normalisePath(mount.target) ?? mount.target;
    const earlier = targets.get(mount.target);
    if (earlier !== undefined) {
      issues.push({
        path: `inputs.${index}`,
        message: `target '${mount.target}' is also used by inputs.${earlier}`,
      });
    }
    targets.set(mount.target, index);
    mounts.push(mount);
  });
  const caCerts: string[] = [];
  if (parsed.success) {
    // CA files named relative to the policy file resolve next to it.
    parsed.data.upstream.caCerts.forEach((file, index) => {
      const path = normalisePath(
        file,
        file.startsWith("/") ? {} : { cwd: options.baseDir ?? Deno.cwd() },
      );
      if (path === null) {
        issues.push({
          path: `upstream.caCerts.${index}`,
          message: `'${file}' climbs above '/': name the file itself`,
        });
      } else caCerts.push(path);
    });
    for (const name of Object.keys(parsed.data.env)) {
      if (name in parsed.data.secrets) {
        issues.push({
          path: `env.${name}`,
          message: "is also a placeholder in 'secrets': keep one",
        });
      }
    }
  }
  if (!parsed.success || issues.length > 0) {
    throw new PolicyError(issues, options.source);
  }
  const { $schema: _ignored, inputs: _inputs, ...rest } = parsed.data;
  const upstream = { ...rest.upstream, caCerts };
  return { ...rest, upstream, inputs: mounts };
}

/**
 * A copy of a policy safe to show or serialise: injected header values and
 * placeholder secret values become `<redacted>`.
 *
 * @param policy A validated policy.
 * @returns The redacted copy.
 *
 * @example Usage
 * ```ts
 * import { parsePolicy, redactPolicy } from "./policy.ts";
 * const p = parsePolicy({ secrets: { T: { hosts: ["a.example.com"], value: "literal-secret-value" } } });
 * console.log(redactPolicy(p).secrets.T?.value); // "<redacted>"
 * ```
 */
export function redactPolicy(policy: Policy): Policy {
  return {
    ...structuredClone(policy),
    network: redactNetworkPolicy(policy.network),
    secrets: Object.fromEntries(
      Object.entries(policy.secrets).map((
        [name, s],
      ) => [name, { hosts: [...s.hosts], value: REDACTED }]),
    ),
  };
}

/**
 * Reads and validates a policy file (JSON or JSONC). Relative input paths are
 * resolved against the file's directory.
 *
 * @param path The policy file.
 * @returns The normalised policy.
 * @throws {PolicyError} If the file is unreadable, not JSON, or invalid.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadPolicyFile } from "./policy.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(
 *   `${dir}/policy.jsonc`,
 *   '{ "scratch": true, // JSONC: comments allowed\n "inputs": ["data"] }',
 * );
 * const policy = await loadPolicyFile(`${dir}/policy.jsonc`);
 * assert.equal(policy.scratch, true);
 * assert.equal(policy.inputs[0]?.source, `${dir}/data`); // next to the file
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadPolicyFile(path: string): Promise<Policy> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    // Fail closed: an unreadable policy never means "use the defaults".
    throw new PolicyError([{
      path: "",
      message: `cannot read the file: ${(error as Error).message}`,
    }], `policy file '${path}'`);
  }
  let value: unknown;
  try {
    value = parseJsonc(text);
  } catch (error) {
    throw new PolicyError(
      [{ path: "", message: (error as Error).message }],
      `policy file '${path}'`,
    );
  }
  const absolute = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  return parsePolicy(value, {
    baseDir: absolute.slice(0, absolute.lastIndexOf("/")) || "/",
    source: `policy file '${path}'`,
  });
}

/**
 * The JSON Schema of the policy file, for editors (`$schema`).
 *
 * @returns A JSON Schema (draft 2020-12) object.
 *
 * @example Usage
 * ```ts
 * import { policyJsonSchema } from "./policy.ts";
 * console.log(Object.keys(policyJsonSchema()));
 * ```
 */
export function policyJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(PolicySchema, { io: "input" }) as Record<
    string,
    unknown
  >;
}

/** The inputs of an invalid policy that are valid on their own (else null). */
function individuallyValidInputs(
  input: unknown,
): (z.output<typeof InputSchema> | null)[] {
  const list = (input as { inputs?: unknown } | null)?.inputs;
  if (!Array.isArray(list)) return [];
  return list.map((entry) => {
    const one = InputSchema.safeParse(entry);
    return one.success ? one.data : null;
  });
}

function normaliseInput(
  entry: z.output<typeof InputSchema>,
  index: number,
  baseDir: string | undefined,
  issues: PolicyIssue[],
): PolicyInputMount | null {
  let source: string;
  let target: string | undefined;
  let copy = false;
  if (typeof entry === "string") {
    // HOST[:SANDBOX]; the sandbox part always starts with /inputs/.
    const split = entry.indexOf(`:${SANDBOX_PATHS.inputs}/`);
    source = split === -1 ? entry : entry.slice(0, split);
    target = split === -1 ? undefined : entry.slice(split + 1);
    if (target !== undefined) {
      const checked = InputTargetSchema.safeParse(target);
      if (!checked.success) {
        issues.push({
          path: `inputs.${index}`,
          message: `target ${checked.error.issues[0]?.message}`,
        });
      }
    }
  } else {
    source = entry.source;
    target = entry.target;
    copy = entry.copy;
  }
  const normalised = normalisePath(
    source,
    source.startsWith("/") ? {} : { cwd: baseDir ?? Deno.cwd() },
  );
  if (normalised === null) {
    // Clamping would bind "../../x" to a directory the writer never named.
    issues.push({
      path: `inputs.${index}`,
      message: `source '${source}' climbs above '/': name the directory itself`,
    });
    return null;
  }
  const name = normalised.split("/").filter(Boolean).at(-1) ?? "";
  if (!name) {
    issues.push({ path: `inputs.${index}`, message: "source must not be '/'" });
  }
  if (/[,\0\n\r]/.test(name) && target === undefined) {
    issues.push({
      path: `inputs.${index}`,
      message:
        "source name contains a comma or control character: give a target",
    });
  }
  return {
    source: normalised,
    target: target ?? `${SANDBOX_PATHS.inputs}/${name}`,
    copy,
  };
}

/**
 * Flattens zod issues into path/message pairs. For a union, only the branch
 * that got furthest is reported ("expected string" at the root of every other
 * branch is noise).
 */
function flattenIssues(
  issues: readonly z.core.$ZodIssue[],
  prefix: PropertyKey[] = [],
): PolicyIssue[] {
  const out: PolicyIssue[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === "invalid_union" && issue.errors.length > 0) {
      // Each branch lacks only its own key (a rule with neither 'transform'
      // nor 'response'): name the choice, not the first branch's key.
      const lacking = issue.errors.map((branch) => {
        const only = branch.length === 1 ? branch[0]! : undefined;
        return only?.code === "invalid_type" && only.path.length === 1 &&
            /received undefined/.test(only.message)
          ? `'${String(only.path[0])}'`
          : null;
      });
      if (lacking.length > 1 && lacking.every((key) => key !== null)) {
        out.push({
          path: path.map(String).join("."),
          message: `needs ${[...new Set(lacking)].join(" or ")}`,
        });
        continue;
      }
      const branches = issue.errors.map((branch) => ({
        branch,
        score: branch.filter((i) =>
          i.path.length === 0 &&
          (i.code === "invalid_type" || i.code === "invalid_value")
        ).length,
      }));
      branches.sort((a, b) => a.score - b.score);
      const best = branches[0]!;
      if (best.score === 0) {
        out.push(...flattenIssues(best.branch, path));
        continue;
      }
      out.push({
        path: path.map(String).join("."),
        message: unionMessage(issue),
      });
      continue;
    }
    if (issue.code === "invalid_key" && issue.issues.length > 0) {
      // A record key failed its own check: say why, not just "invalid key".
      const why = issue.issues.map((i) =>
        i.message.replace(
          /^Cannot parse host pattern (.+?) as /,
          "the host pattern $1 is refused as ",
        )
      ).join("; ");
      out.push({
        path: path.map(String).join("."),
        message: why.startsWith("the host pattern") ? why : `key ${why}`,
      });
      continue;
    }
    const message = issue.code === "unrecognized_keys"
      ? `unknown key${issue.keys.length === 1 ? "" : "s"} ${
        issue.keys.map((k) => `'${k}'`).join(", ")
      } (not part of the policy schema)`
      : humanMessage(issue);
    out.push({ path: path.map(String).join("."), message });
  }
  return out;
}

const TYPE_WORDS: Record<string, string> = {
  array: "a list",
  object: "an object",
  record: "an object",
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  undefined: "nothing",
  null: "null",
};

/**
 * A zod issue in a person's words: "is missing (expected a list)" rather
 * than "Invalid input: expected array, received undefined". Messages the
 * schema wrote itself (refinements) pass through.
 */
function humanMessage(issue: z.core.$ZodIssue): string {
  const words = (type: string) => TYPE_WORDS[type] ?? type;
  switch (issue.code) {
    case "invalid_type": {
      const received = /received (\w+)/.exec(issue.message)?.[1];
      const expected = words(issue.expected);
      if (received === "undefined") return `is missing: give ${expected}`;
      if (issue.expected === "int" && received === "number") {
        return "must be a whole number";
      }
      return `must be ${expected}${received ? `, not ${words(received)}` : ""}`;
    }
    case "too_small":
    case "too_big": {
      const bound = issue.code === "too_small" ? issue.minimum : issue.maximum;
      const most = issue.code === "too_small" ? "at least" : "at most";
      const exclusive = issue.inclusive === false;
      const limit = `${
        exclusive
          ? (issue.code === "too_small" ? "more than" : "less than")
          : most
      } ${bound}`;
      if (issue.origin === "string") return `must have ${limit} characters`;
      if (issue.origin === "array" || issue.origin === "set") {
        return `must have ${limit} entries`;
      }
      return `must be ${limit}`;
    }
    case "invalid_value":
      return `must be ${
        issue.values.map((v) => JSON.stringify(v)).join(" or ")
      }`;
    default:
      return issue.message.replace(/^Invalid input: /, "");
  }
}

function unionMessage(issue: z.core.$ZodIssueInvalidUnion): string {
  const expected = issue.errors.flat()
    .filter((i) => i.path.length === 0)
    .map((i) =>
      humanMessage(i).replace(/^must be /, "").replace(/, not .*$/, "")
    );
  const received = issue.errors.flat()
    .map((i) => /received (\w+)/.exec(i.message)?.[1])
    .find((r) => r !== undefined);
  return `must be ${[...new Set(expected)].join(", or ")}${
    received ? `, not ${TYPE_WORDS[received] ?? received}` : ""
  }`;
}
