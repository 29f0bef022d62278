/**
 * The Kubernetes manifests (deploy/kubernetes/), offline: every object of
 * the kustomize base and of the example overlay, rendered here by a small
 * kustomize (resources, namespace, labels, images and strategic-merge
 * patches: all the overlay uses), validates against the Kubernetes schemas
 * of the `kubernetes-models` package; and what the manifests say about
 * the server agrees with the server: the config parses with the server's
 * own schema, ports, probe paths, the drain deadline, the Secret's files,
 * and the router's backends match the autoscaler's most replicas.
 */

import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { parseJsonc } from "../harness/_jsonc.ts";
import { ServerConfigSchema } from "../http/config.ts";
import { resolveNodeName } from "../http/node.ts";
import { ROUTES } from "../http/schemas.ts";
import { kubernetesRouterConfig } from "../deploy/haproxy.ts";
import { NODE_V8_FLAGS } from "../deploy/node_flags.ts";

const ROOT = new URL("../deploy/kubernetes/", import.meta.url).pathname;

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

/** Validators by `apiVersion/kind`: every kind the manifests use. */
const MODELS: Record<string, (data: Obj) => { validate(): void }> = {
  "v1/ConfigMap": (d) => new ConfigMap(d),
  "v1/Namespace": (d) => new Namespace(d),
  "v1/Secret": (d) => new Secret(d),
  "v1/Service": (d) => new Service(d),
  "apps/v1/Deployment": (d) => new Deployment(d),
  "apps/v1/StatefulSet": (d) => new StatefulSet(d),
  "autoscaling/v2/HorizontalPodAutoscaler": (d) =>
    new HorizontalPodAutoscaler(d as HorizontalPodAutoscaler),
  "policy/v1/PodDisruptionBudget": (d) => new PodDisruptionBudget(d),
  "networking.k8s.io/v1/NetworkPolicy": (d) => new NetworkPolicy(d),
};

function validate(object: Obj): void {
  const key = `${object.apiVersion}/${object.kind}`;
  const model = MODELS[key];
  assert.ok(model, `no schema for ${key}`);
  try {
    model(object).validate();
  } catch (error) {
    throw new Error(
      `${key} '${object.metadata?.name}' is invalid: ${
        (error as Error).message
      }`,
    );
  }
}

async function yamlFile(path: string): Promise<Obj[]> {
  const docs = parseAllDocuments(await Deno.readTextFile(path));
  return docs.map((doc) => {
    assert.equal(doc.errors.length, 0, `${path}: ${doc.errors.join("; ")}`);
    return doc.toJS() as Obj;
  }).filter((o) => o !== null);
}

/** Strategic merge as kustomize does it for what we patch: maps merge,
 * lists of named items merge by name, other values are replaced. */
function merge(base: unknown, patch: unknown): unknown {
  if (Array.isArray(base) && Array.isArray(patch)) {
    const named = (list: unknown[]) =>
      list.every((i) => typeof i === "object" && i !== null && "name" in i);
    if (!named(base) || !named(patch)) return patch;
    const out = [...base] as Obj[];
    for (const item of patch as Obj[]) {
      const at = out.findIndex((o) => o.name === item.name);
      if (at === -1) out.push(item);
      else out[at] = merge(out[at], item) as Obj;
    }
    return out;
  }
  if (
    typeof base === "object" && base !== null && !Array.isArray(base) &&
    typeof patch === "object" && patch !== null && !Array.isArray(patch)
  ) {
    const out: Obj = { ...base };
    for (const [key, value] of Object.entries(patch)) {
      out[key] = key in out ? merge(out[key], value) : value;
    }
    return out;
  }
  return patch;
}

/** What `kustomize build dir` makes, for the features the manifests use. */
async function render(dir: string): Promise<Obj[]> {
  const [k] = await yamlFile(`${dir}/kustomization.yaml`);
  assert.ok(k);
  const known = [
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "images",
    "patches",
  ];
  for (const key of Object.keys(k)) {
    // A feature this renderer does not know would be silently skipped.
    assert.ok(known.includes(key), `${dir}: unsupported kustomize '${key}'`);
  }
  let objects: Obj[] = [];
  for (const resource of k.resources ?? []) {
    const path = `${dir}/${resource}`;
    objects.push(
      ...(Deno.statSync(path).isDirectory
        ? await render(path)
        : await yamlFile(path)),
    );
  }
  for (const { path } of k.patches ?? []) {
    for (const patch of await yamlFile(`${dir}/${path}`)) {
      const at = objects.findIndex((o) =>
        o.kind === patch.kind && o.metadata.name === patch.metadata.name
      );
      assert.notEqual(at, -1, `${path}: patches nothing`);
      objects[at] = merge(objects[at], patch) as Obj;
    }
  }
  for (const { pairs } of k.labels ?? []) {
    objects = objects.map((o) => ({
      ...o,
      metadata: { ...o.metadata, labels: { ...o.metadata.labels, ...pairs } },
    }));
  }
  if (k.namespace) {
    objects = objects.map((o) =>
      o.kind === "Namespace"
        ? o
        : { ...o, metadata: { ...o.metadata, namespace: k.namespace } }
    );
  }
  for (const image of k.images ?? []) {
    for (const o of objects) {
      for (const c of o.spec?.template?.spec?.containers ?? []) {
        if (c.image.split(":")[0] === image.name) {
          c.image = `${image.newName ?? image.name}:${image.newTag}`;
        }
      }
    }
  }
  return objects;
}

function find(objects: Obj[], kind: string, name: string): Obj {
  const found = objects.find((o) =>
    o.kind === kind && o.metadata.name === name
  );
  assert.ok(found, `no ${kind} '${name}'`);
  return found;
}

function matches(selector: Obj, labels: Obj): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

const BASE = `${ROOT}base`;
const OVERLAY = `${ROOT}overlays/example`;

Deno.test("deploy/kubernetes: every manifest of the base, the base rendered and the example overlay rendered validate against the Kubernetes schemas", async () => {
  let count = 0;
  for await (const entry of Deno.readDir(BASE)) {
    if (!entry.name.endsWith(".yaml") || entry.name === "kustomization.yaml") {
      continue;
    }
    for (const object of await yamlFile(`${BASE}/${entry.name}`)) {
      validate(object);
      count++;
    }
  }
  assert.equal(count, 10);
  for (const dir of [BASE, OVERLAY]) {
    const objects = await render(dir);
    for (const object of objects) validate(object);
  }
  const overlay = await render(OVERLAY);
  assert.deepEqual(
    overlay.map((o) => `${o.kind}/${o.metadata.name}`).sort(),
    [
      "ConfigMap/airlock-router",
      "ConfigMap/airlock-server",
      "Deployment/airlock-router",
      "HorizontalPodAutoscaler/airlock-nodes",
      "Namespace/airlock-example",
      "NetworkPolicy/airlock-nodes",
      "PodDisruptionBudget/airlock-nodes",
      "PodDisruptionBudget/airlock-router",
      "Secret/airlock-secrets",
      "Service/airlock",
      "Service/airlock-nodes",
      "StatefulSet/airlock",
    ],
  );
  const nodes = find(overlay, "StatefulSet", "airlock");
  assert.equal(nodes.metadata.namespace, "airlock-example");
  assert.equal(nodes.spec.replicas, 4);
  assert.equal(
    nodes.spec.template.spec.containers[0].image,
    "registry.example.com/airlock:0.1.0",
  );
  // The patch merged into the container, it did not replace it.
  assert.equal(
    nodes.spec.template.spec.containers[0].resources.limits.memory,
    "16Gi",
  );
  assert.ok(nodes.spec.template.spec.containers[0].readinessProbe);
});

Deno.test("deploy/kubernetes: the schema check refuses a broken manifest (control)", async () => {
  const [nodes] = await yamlFile(`${BASE}/nodes-statefulset.yaml`);
  const broken = structuredClone(nodes!);
  broken.spec.replicas = "three";
  assert.throws(() => validate(broken), /replicas must be integer/);
  const badProc = structuredClone(nodes!);
  badProc.spec.template.spec.containers[0].securityContext.procMount = "Open";
  assert.throws(() => validate(badProc), /procMount/);
});

for (
  const [label, dir] of [["base", BASE], ["example overlay", OVERLAY]] as const
) {
  Deno.test(`deploy/kubernetes (${label}): ports, probes, config keys, Secret files and router backends agree with the server`, async () => {
    const objects = await render(dir);
    const config = find(objects, "ConfigMap", "airlock-server");
    // The server's own schema (unknown keys are errors there).
    const parsed = ServerConfigSchema.safeParse(
      parseJsonc(config.data["server.jsonc"]),
    );
    assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
    const server = parsed.data;

    const nodes = find(objects, "StatefulSet", "airlock");
    const pod = nodes.spec.template.spec;
    const [container] = pod.containers;
    const port = container.ports.find((p: Obj) => p.name === "http");
    assert.equal(port.containerPort, server.listen?.port);
    assert.equal(server.listen?.host, "0.0.0.0");
    // --config is the ConfigMap's file.
    const at = container.command.indexOf("--config");
    const mounted = container.volumeMounts.find((m: Obj) =>
      m.mountPath === container.command[at + 1]
    );
    assert.equal(mounted?.subPath, "server.jsonc");
    // The node runs with the flags of deploy/node_flags.ts, as the image's
    // CMD and the serve task do (a long-running node's memory depends on it).
    const flags = `--v8-flags=${NODE_V8_FLAGS}`;
    assert.ok(container.command.includes(flags), container.command.join(" "));
    assert.ok(
      container.command.indexOf(flags) < container.command.indexOf(
        "/app/http/serve.ts",
      ),
    );
    const containerfile = await Deno.readTextFile(
      new URL("../deploy/Containerfile", import.meta.url),
    );
    assert.match(containerfile, new RegExp(`^CMD \\[.*"${flags}"`, "m"));
    const tasks = JSON.parse(
      await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
    ).tasks;
    assert.ok(tasks.serve.includes(flags), tasks.serve);
    assert.equal(
      pod.volumes.find((v: Obj) => v.name === mounted.name).configMap.name,
      "airlock-server",
    );

    // Probes reach the server's open routes on its port.
    const open = (path: string) =>
      ROUTES.some((r) => r.method === "get" && r.path === path && !r.auth);
    assert.equal(container.livenessProbe.httpGet.path, "/health");
    assert.equal(container.startupProbe.httpGet.path, "/health");
    assert.equal(container.readinessProbe.httpGet.path, "/ready");
    for (const probe of ["livenessProbe", "startupProbe", "readinessProbe"]) {
      assert.ok(open(container[probe].httpGet.path), probe);
      assert.equal(container[probe].httpGet.port, "http");
    }
    // The drain fits in the grace period (else live runs are SIGKILLed).
    assert.ok(
      (server.node?.drainTimeoutMs ?? 30_000) <
        pod.terminationGracePeriodSeconds * 1000,
    );
    // Sizing: the workspaces volume holds every sandbox's scratch quota
    // (else a full node's sandboxes fail with disk errors, not node_full),
    // and the pod's memory limit the node's sandboxes at bench:capacity's
    // figures (70 MiB server, 10.1 MiB per sandbox, a live run up to its
    // memoryMb and tmpMb plus 3.3 MiB).
    const workspaces = pod.volumes.find((v: Obj) => v.name === "workspaces");
    const gib = (q: string) => Number(q.replace(/Gi$/, "")) * 1024;
    const sandboxes = server.node?.maxSandboxes ?? Infinity;
    assert.ok(sandboxes * 256 <= gib(workspaces.emptyDir.sizeLimit));
    const perRun = (server.ceilings?.limits?.memoryMb ?? 256) + 32 + 3.3;
    assert.ok(
      70 + sandboxes * 10.1 + (server.runSlots ?? 1) * perRun <=
        gib(container.resources.limits.memory),
    );
    // Node names are the pods' names: each one a valid node name.
    const env = container.env.find((e: Obj) => e.name === "POD_NAME");
    assert.equal(env.valueFrom.fieldRef.fieldPath, "metadata.name");
    const hpa = find(objects, "HorizontalPodAutoscaler", "airlock-nodes");
    for (let i = 0; i < hpa.spec.maxReplicas; i++) {
      const name = `${nodes.metadata.name}-${i}`;
      assert.equal(
        resolveNodeName({ env: (v) => v === "POD_NAME" ? name : undefined }),
        name,
      );
    }

    // What bubblewrap needs, as the comments say.
    assert.equal(pod.hostUsers, false);
    const security = container.securityContext;
    assert.equal(security.procMount, "Unmasked");
    assert.equal(security.allowPrivilegeEscalation, false);
    assert.deepEqual(security.capabilities.drop, ["ALL"]);
    assert.ok(!security.privileged);

    // Token files come from the Secret, readable by the owner only.
    const secretMount = container.volumeMounts.find((m: Obj) =>
      m.name === "secrets"
    );
    const secretVolume = pod.volumes.find((v: Obj) => v.name === "secrets");
    assert.equal(secretVolume.secret.defaultMode & 0o077, 0);
    const files = [server.tokenFile!, server.metrics!.token!.file!];
    for (const file of files) {
      assert.ok(file.startsWith(`${secretMount.mountPath}/`), file);
    }
    const secret = objects.find((o) => o.kind === "Secret");
    if (secret) {
      assert.equal(secret.metadata.name, secretVolume.secret.secretName);
      for (const file of files) {
        assert.ok(file.split("/").at(-1)! in secret.stringData, file);
      }
    }
    // The workspaces directory is a volume.
    assert.ok(
      container.volumeMounts.some((m: Obj) => m.mountPath === server.tmpDir),
    );

    // The headless Service names each pod, even while it is not ready.
    const headless = find(objects, "Service", nodes.spec.serviceName);
    assert.equal(headless.spec.clusterIP, "None");
    assert.equal(headless.spec.publishNotReadyAddresses, true);
    assert.equal(headless.spec.ports[0].port, server.listen?.port);
    assert.equal(headless.spec.ports[0].targetPort, "http");
    const podLabels = nodes.spec.template.metadata.labels;
    assert.ok(matches(nodes.spec.selector.matchLabels, podLabels));
    assert.ok(matches(headless.spec.selector, podLabels));
    assert.ok(
      matches(
        find(objects, "PodDisruptionBudget", "airlock-nodes").spec.selector
          .matchLabels,
        podLabels,
      ),
    );
    assert.ok(
      matches(
        find(objects, "NetworkPolicy", "airlock-nodes").spec.podSelector
          .matchLabels,
        podLabels,
      ),
    );
    assert.equal(hpa.spec.scaleTargetRef.kind, "StatefulSet");
    assert.equal(hpa.spec.scaleTargetRef.name, nodes.metadata.name);

    // The router has one backend per pod the autoscaler can make, at the
    // pods' DNS names and port: exactly what deploy/haproxy.ts generates.
    const router = find(objects, "ConfigMap", "airlock-router");
    assert.equal(
      router.data["haproxy.cfg"].trimEnd(),
      kubernetesRouterConfig({
        statefulSet: nodes.metadata.name,
        service: headless.metadata.name,
        replicas: hpa.spec.maxReplicas,
        port: server.listen!.port!,
      }).trimEnd(),
    );
    const routerPods = find(objects, "Deployment", "airlock-router");
    const routerLabels = routerPods.spec.template.metadata.labels;
    assert.ok(
      matches(find(objects, "Service", "airlock").spec.selector, routerLabels),
    );
    // Only the router (and Prometheus) may reach the nodes.
    const from = find(objects, "NetworkPolicy", "airlock-nodes").spec
      .ingress[0].from;
    assert.ok(
      from.some((f: Obj) =>
        f.podSelector && !f.namespaceSelector &&
        matches(f.podSelector.matchLabels, routerLabels)
      ),
    );
  });
}

Deno.test("deploy/kubernetes: the router config is valid HAProxy (haproxy -c), where HAProxy is installed", async (t) => {
  const haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
  if (!haproxy) {
    t.step({
      name: "haproxy is not installed: skipped",
      ignore: true,
      fn() {},
    });
    return;
  }
  for (const dir of [BASE, OVERLAY]) {
    const router = find(await render(dir), "ConfigMap", "airlock-router");
    const file = await Deno.makeTempFile({ suffix: ".cfg" });
    try {
      await Deno.writeTextFile(file, router.data["haproxy.cfg"]);
      const out = await new Deno.Command(haproxy, {
        args: ["-c", "-f", file],
        env: { POD_NAMESPACE: "airlock", CLUSTER_DOMAIN: "cluster.local" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout) +
        new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, text);
      assert.match(text, /Configuration file is valid/);
    } finally {
      await Deno.remove(file);
    }
  }
});
