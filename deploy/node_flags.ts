/**
 * The V8 flags an `airlock serve` node runs with, wherever it is started:
 * the `serve` task in deno.json, deploy/Containerfile, the StatefulSet in
 * deploy/kubernetes/base and the fleet test kit (tests/deploy_kubernetes_test.ts
 * checks that they agree).
 *
 * `--max-semi-space-size=2` caps V8's young generation at two 2 MiB
 * semi-spaces. By default V8 grows a semi-space (from well under 1 MiB up
 * to 16 MiB on 64-bit) each time enough objects have survived scavenges,
 * and keeps it: on a node whose runs overlap (a run's objects live as long
 * as the run) the young generation climbs towards 32 MiB committed and the
 * reserved heap from ~21 to ~65 MiB while the live objects stay flat
 * (`deno task soak`; README, "Performance"). Capped, the young generation
 * stays at 4 MiB or less; on the loaded test machine no throughput
 * difference was measurable.
 *
 * @module
 */

/**
 * The value of `--v8-flags=` for a node.
 *
 * @example Usage
 * ```ts
 * import { NODE_V8_FLAGS } from "./node_flags.ts";
 * console.log(`deno run --v8-flags=${NODE_V8_FLAGS} http/serve.ts`);
 * ```
 */
export const NODE_V8_FLAGS = "--max-semi-space-size=2";
