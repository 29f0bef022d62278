/**
 * A server's node name: the name it puts in every sandbox id it makes
 * (`sbx-<node>-<random>`), so a router can send a sandbox's requests to the
 * node that holds it by reading the id alone, with no state shared between
 * nodes. In Kubernetes it is the pod's name (a StatefulSet's pods have
 * stable ones that are also DNS names under its headless Service).
 *
 * @example Where the name comes from, and what an id says
 * ```ts
 * import { nodeOfSandboxId, resolveNodeName } from "./node.ts";
 * const node = resolveNodeName({ env: (name) => name === "POD_NAME" ? "airlock-2" : undefined });
 * console.log(node); // "airlock-2"
 * console.log(nodeOfSandboxId("sbx-airlock-2-0123456789ab")); // "airlock-2"
 * ```
 *
 * @module
 */

/**
 * What a node name may be: a DNS label (lower-case letters, digits and '-',
 * 1-63 characters, not starting or ending with '-'). It becomes part of a
 * host name in routers, so nothing else is allowed.
 */
export const NODE_NAME_PATTERN: RegExp =
  /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A sandbox id: `sbx-<random>` or `sbx-<node>-<random>` (12 hex digits). */
const SANDBOX_ID =
  /^sbx-(?:([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)-)?[0-9a-f]{12}$/;

/** Options for {@linkcode resolveNodeName}. */
export interface ResolveNodeNameOptions {
  /** The name set by the operator (`--node`, config `node.name`). */
  configured?: string | undefined;
  /** Environment lookup; default `Deno.env.get`. */
  env?: (name: string) => string | undefined;
  /** The host name; default `Deno.hostname()`. */
  hostname?: () => string;
}

/**
 * The node name, from the first of: the operator's setting,
 * `AIRLOCK_NODE_NAME`, `POD_NAME` (Kubernetes' downward API), the first
 * label of the host name (lower-cased; a host name that is not a DNS label
 * is skipped). The operator's setting and the variables must be valid.
 *
 * @param options Where to look.
 * @returns The node name.
 * @throws {TypeError} When a set name is not a DNS label.
 *
 * @example Usage
 * ```ts
 * import { resolveNodeName } from "./node.ts";
 * console.log(resolveNodeName({ configured: "edge-1" })); // "edge-1"
 * ```
 */
export function resolveNodeName(options: ResolveNodeNameOptions = {}): string {
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const candidates: [string, string | undefined][] = [
    ["the node name", options.configured],
    ["AIRLOCK_NODE_NAME", env("AIRLOCK_NODE_NAME")],
    ["POD_NAME", env("POD_NAME")],
  ];
  for (const [where, value] of candidates) {
    if (value === undefined || value === "") continue;
    if (!NODE_NAME_PATTERN.test(value)) {
      throw new TypeError(
        `Cannot use ${where} '${value}': a node name is 1-63 lower-case letters, digits or '-', not starting or ending with '-' (it becomes part of sandbox ids and router host names)`,
      );
    }
    return value;
  }
  let host = "";
  try {
    host = (options.hostname ?? Deno.hostname)();
  } catch { /* no sys permission: fall through */ }
  const label = host.split(".")[0]!.toLowerCase();
  return NODE_NAME_PATTERN.test(label) ? label : "node";
}

/**
 * The node a sandbox id names, or null (an id without one, or not an id).
 *
 * @param id A sandbox id.
 * @returns The node's name, or null.
 *
 * @example Usage
 * ```ts
 * import { nodeOfSandboxId } from "./node.ts";
 * console.log(nodeOfSandboxId("sbx-0123456789ab")); // null
 * console.log(nodeOfSandboxId("sbx-a-b-0123456789ab")); // "a-b"
 * ```
 */
export function nodeOfSandboxId(id: string): string | null {
  return SANDBOX_ID.exec(id)?.[1] ?? null;
}
