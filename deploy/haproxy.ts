/**
 * The router in front of a fleet of `airlock serve` nodes, as an HAProxy
 * (2.6+) configuration: one generator for the Kubernetes manifests
 * (`deploy/kubernetes/base/haproxy.cfg`) and for the multi-node test and
 * benchmark on loopback, so what the test proves is what gets deployed.
 *
 * Routing needs no state shared between nodes: a sandbox id names its node
 * (`sbx-<node>-<12 hex>`), the router reads the node from the path and
 * sends the request to that node's own backend. Everything else (creating
 * a sandbox, listing, /version) goes to any node that says it is ready.
 *
 * - New sandboxes: the `new_sandboxes` backend checks each node's
 *   `GET /ready`, so a full, draining or broken node takes none; a refused
 *   connection or a node's 503 (`node_full`, `draining`: nothing was made)
 *   is retried on another node. With no node ready: 503 `no_capacity`.
 * - A sandbox's requests: the `node_<name>` backend checks `GET /health`
 *   only, so a draining node still serves its sandboxes' runs until it
 *   exits. A node that is down: 503 `node_unavailable` at once; a node lost
 *   in the middle of a request: 502 `node_unavailable`. Requests are never
 *   sent to another node (it could only answer 421 `wrong_node`), and a
 *   run is never retried (it may have had effects).
 * - An id naming a node this router does not know: 503 `node_unavailable`.
 *
 * @example A router for two local nodes
 * ```ts
 * import { haproxyConfig } from "./haproxy.ts";
 * const cfg = haproxyConfig({
 *   bind: "127.0.0.1:8080",
 *   nodes: [
 *     { name: "airlock-0", address: "127.0.0.1:8787" },
 *     { name: "airlock-1", address: "127.0.0.1:8788" },
 *   ],
 * });
 * console.log(cfg.includes("backend node_airlock-1")); // true
 * ```
 *
 * @module
 */

/** One node the router knows. */
export interface RouterNode {
  /** The node's name, as in its sandbox ids (a DNS label). */
  name: string;
  /**
   * Where it listens, `host:port`; may use HAProxy's `${VAR}` expansion
   * (the Kubernetes config names pods by `${POD_NAMESPACE}`).
   */
  address: string;
}

/** Options for {@linkcode haproxyConfig}. */
export interface HaproxyConfigOptions {
  /** The nodes, in order. */
  nodes: readonly RouterNode[];
  /** Where the router listens: `host:port` or `:port`. */
  bind: string;
  /** Health check interval (ms); default 1000. */
  checkIntervalMs?: number;
  /** Failed checks before a node is down; default 2. */
  checkFall?: number;
  /**
   * Resolve node addresses through DNS at run time (`resolvers` section
   * reading /etc/resolv.conf): for Kubernetes, where a pod's address
   * changes when it is replaced. Default false (addresses are fixed).
   */
  dns?: boolean;
  /**
   * Longest time a node may take to answer (ms): the longest run plus its
   * answer. Default 330,000 (the 300 s run ceiling and some).
   */
  serverTimeoutMs?: number;
  /** A `stats` page at this `host:port` (no auth: keep it internal). */
  stats?: string;
  /** Log each request to stderr (HAProxy's httplog format). */
  log?: boolean;
}

/** A DNS label, as node.ts allows (checked again: it becomes config text). */
const NODE_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** What an address may hold: no spaces, quotes or newlines. */
const ADDRESS = /^[A-Za-z0-9.:_${}\[\]-]+$/;

/**
 * The HAProxy configuration of the router.
 *
 * @param options The nodes and where to listen.
 * @returns The configuration text.
 * @throws {TypeError} For a node name that is not a DNS label, a duplicate
 * name, or an address with characters a config line cannot hold.
 *
 * @example Usage
 * ```ts
 * import { haproxyConfig } from "./haproxy.ts";
 * const cfg = haproxyConfig({ bind: ":8080", nodes: [{ name: "n0", address: "10.0.0.5:8787" }] });
 * console.log(cfg.includes("server n0 10.0.0.5:8787")); // true
 * ```
 */
export function haproxyConfig(options: HaproxyConfigOptions): string {
  const seen = new Set<string>();
  for (const node of options.nodes) {
    // Attack: a node name or address is written into the config; a space,
    // quote or newline could add directives of its own.
    if (!NODE_NAME.test(node.name) || seen.has(node.name)) {
      throw new TypeError(
        `Cannot route to node '${node.name}': node names are distinct DNS labels (lower-case letters, digits, '-')`,
      );
    }
    if (!ADDRESS.test(node.address)) {
      throw new TypeError(
        `Cannot route to node '${node.name}' at '${node.address}': give host:port`,
      );
    }
    seen.add(node.name);
  }
  if (options.nodes.length === 0) {
    throw new TypeError("Cannot route to no nodes: give at least one");
  }
  const inter = options.checkIntervalMs ?? 1000;
  const fall = options.checkFall ?? 2;
  const serverTimeout = options.serverTimeoutMs ?? 330_000;
  const dns = options.dns ?? false;
  const server = (node: RouterNode) => {
    const address = node.address.includes("${")
      ? `"${node.address}"`
      : node.address;
    const resolve = dns ? " resolvers cluster init-addr none" : "";
    return `  server ${node.name} ${address} check inter ${inter} fall ${fall} rise 1${resolve}`;
  };
  const names = options.nodes.map((n) => n.name).join(" ");
  const error = (status: number, code: string, message: string) =>
    `  http-error status ${status} content-type application/json lf-string '${
      json(code, message)
    }'`;

  const lines = [
    "# airlock router: generated by deploy/haproxy.ts (do not edit by hand).",
    "# Routes a sandbox's requests to the node named in its id",
    "# (sbx-<node>-<12 hex>); everything else to a node that is ready.",
    "global",
    "  maxconn 4096",
    ...(options.log ? ["  log stderr format short local0 info"] : []),
    "",
    "defaults",
    "  mode http",
    ...(options.log ? ["  log global", "  option httplog"] : []),
    "  option http-server-close",
    "  timeout connect 2s",
    "  timeout client 120s",
    "  timeout http-request 10s",
    "  # Longer than clients keep idle connections (Deno and hyper: 90 s), so",
    "  # the client closes first: a request never meets a connection the",
    "  # router is closing (a POST that fails that way cannot be retried).",
    "  timeout http-keep-alive 100s",
    `  timeout server ${Math.ceil(serverTimeout / 1000)}s`,
    "  timeout queue 5s",
    "  # A check may wait for a node's first readiness probe (a sandbox run).",
    "  timeout check 5s",
    "  # A connection refused is retried after min(timeout connect, 1 s).",
    "  retries 2",
    "",
  ];
  if (dns) {
    lines.push(
      "# Pod addresses change when a pod is replaced: resolve them at run time.",
      "resolvers cluster",
      "  parse-resolv-conf",
      "  hold valid 5s",
      "  hold nx 2s",
      "  hold obsolete 2s",
      "",
    );
  }
  if (options.stats) {
    lines.push(
      "frontend stats",
      `  bind ${options.stats}`,
      "  stats enable",
      "  stats uri /",
      "",
    );
  }
  lines.push(
    "frontend airlock",
    `  bind ${options.bind}`,
    "  # The node a sandbox id names: /sandboxes/sbx-<node>-<12 hex>[/...]",
    "  acl sandbox_path path_reg ^/sandboxes/sbx-[a-z0-9-]+-[0-9a-f]{12}(/|$)",
    "  http-request set-var(txn.node) path,field(3,/),regsub(^sbx-,),regsub(-[0-9a-f]{12}$,) if sandbox_path",
    `  acl known_node var(txn.node) -m str ${names}`,
    `  http-request return status 503 content-type application/json lf-string '${
      json(
        "node_unavailable",
        "Cannot reach node %[var(txn.node)] named in the sandbox id: this router has no such node (the sandbox is gone with it); create a new sandbox",
      )
    }' if sandbox_path !known_node`,
    "  use_backend node_%[var(txn.node)] if sandbox_path known_node",
    "  default_backend new_sandboxes",
    "",
    "# Anything not about one sandbox: a node that says it is ready (/ready:",
    "# a probe sandbox runs, below its ceiling, not draining).",
    "backend new_sandboxes",
    "  balance roundrobin",
    "  option httpchk GET /ready",
    "  http-check expect status 200",
    "  # A node that refuses the connection, or answers 503 (node_full,",
    "  # draining: nothing was created), is retried on another node.",
    "  retry-on conn-failure empty-response 503",
    "  option redispatch 1",
    error(
      503,
      "no_capacity",
      "Cannot create a sandbox now: no node is ready (all are full, draining or down); retry later",
    ),
    ...options.nodes.map(server),
    "",
  );
  for (const node of options.nodes) {
    lines.push(
      `# Sandboxes of node ${node.name}: only ever this node, never retried`,
      "# elsewhere; /health (not /ready), so a draining node's runs go on.",
      `backend node_${node.name}`,
      "  option httpchk GET /health",
      "  http-check expect status 200",
      error(
        503,
        "node_unavailable",
        `Cannot reach node ${node.name}, which holds this sandbox: it is down or gone, and its sandboxes with it; create a new sandbox`,
      ),
      error(
        502,
        "node_unavailable",
        `Node ${node.name}, which holds this sandbox, went away during the request: the sandbox is gone with it; create a new sandbox`,
      ),
      error(
        504,
        "node_unavailable",
        `Node ${node.name} did not answer in time`,
      ),
      server(node),
      "",
    );
  }
  return lines.join("\n");
}

/**
 * The router config of the Kubernetes manifests: StatefulSet pods
 * `<statefulSet>-0` ... `<statefulSet>-<replicas - 1>` under the headless
 * Service `<service>`, resolved at run time in the router pod's namespace.
 *
 * @param options The StatefulSet's name and most replicas (the
 * HorizontalPodAutoscaler's `maxReplicas`), the headless Service, the port.
 * @returns The configuration text.
 *
 * @example Usage
 * ```ts
 * import { kubernetesRouterConfig } from "./haproxy.ts";
 * const cfg = kubernetesRouterConfig({ statefulSet: "airlock", service: "airlock-nodes", replicas: 2, port: 8787 });
 * console.log(cfg.includes("airlock-1.airlock-nodes.${POD_NAMESPACE}.svc.${CLUSTER_DOMAIN}:8787")); // true
 * ```
 */
export function kubernetesRouterConfig(options: {
  statefulSet: string;
  service: string;
  replicas: number;
  port: number;
}): string {
  const nodes = Array.from({ length: options.replicas }, (_, i) => {
    const name = `${options.statefulSet}-${i}`;
    return {
      name,
      address:
        `${name}.${options.service}.\${POD_NAMESPACE}.svc.\${CLUSTER_DOMAIN}:${options.port}`,
    };
  });
  return haproxyConfig({
    bind: ":8080",
    nodes,
    dns: true,
    checkIntervalMs: 2000,
    stats: ":8404",
  });
}

/** An error body as the API writes it; `'` cannot occur (single-quoted). */
function json(code: string, message: string): string {
  const body = JSON.stringify({ error: { code, message } });
  if (body.includes("'")) throw new TypeError(`Cannot quote '${body}'`);
  return body;
}

/**
 * The router's ConfigMap for the Kubernetes manifests, as YAML: the
 * config of {@linkcode kubernetesRouterConfig} under `haproxy.cfg`.
 *
 * @param replicas The most node pods (the HorizontalPodAutoscaler's
 * `maxReplicas`).
 * @returns The manifest text.
 *
 * @example Usage
 * ```ts
 * import { routerConfigMap } from "./haproxy.ts";
 * console.log(routerConfigMap(3).startsWith("# Generated")); // true
 * ```
 */
export function routerConfigMap(replicas: number): string {
  const cfg = kubernetesRouterConfig({
    statefulSet: "airlock",
    service: "airlock-nodes",
    replicas,
    port: 8787,
  });
  return [
    `# Generated by 'deno task deploy:router --replicas ${replicas}': one`,
    "# backend per node pod airlock-0 ... airlock-" + (replicas - 1) +
    " (the HPA's maxReplicas).",
    "apiVersion: v1",
    "kind: ConfigMap",
    "metadata:",
    "  name: airlock-router",
    "data:",
    "  haproxy.cfg: |",
    ...cfg.split("\n").map((line) => line === "" ? "" : `    ${line}`),
  ].join("\n");
}

if (import.meta.main) {
  const at = Deno.args.indexOf("--replicas");
  const replicas = Number(at === -1 ? NaN : Deno.args[at + 1]);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 1000) {
    console.error(
      "Usage: deno task deploy:router --replicas N > router-config.yaml\n(N: the HorizontalPodAutoscaler's maxReplicas, 1 to 1000)",
    );
    Deno.exit(125);
  }
  // The YAML as deno fmt keeps it: exactly one newline at the end.
  console.log(routerConfigMap(replicas).trimEnd());
}
