/**
 * Which V8 heap objects were allocated after a point and are still alive:
 * what the soak uses to tell retained JavaScript objects (a leak) from
 * compiled code and allocator growth. V8 keeps an object's snapshot id
 * for its whole life, so nodes of a later snapshot whose ids were not in
 * an earlier one are exactly the survivors allocated in between.
 *
 * @module
 */

import inspector from "node:inspector";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

/** Takes a heap snapshot (after a GC when `--expose-gc` is on). */
async function takeSnapshot(): Promise<Snapshot> {
  (globalThis as { gc?: () => void }).gc?.();
  const session = new inspector.Session();
  session.connect();
  const chunks: string[] = [];
  session.on(
    "HeapProfiler.addHeapSnapshotChunk",
    (message: { params: { chunk: string } }) =>
      chunks.push(message.params.chunk),
  );
  try {
    await new Promise<void>((resolve, reject) =>
      session.post(
        "HeapProfiler.takeHeapSnapshot",
        {},
        (error: Error | null) => error ? reject(error) : resolve(),
      )
    );
  } finally {
    session.disconnect();
  }
  return JSON.parse(chunks.join("")) as Snapshot;
}

/**
 * The ids of every object alive now: the "before" of
 * {@linkcode survivorsSince}. One typed array, so holding it adds a single
 * object to the later snapshot.
 *
 * @returns The sorted ids.
 *
 * @example Usage
 * ```ts ignore
 * const before = await heapIds();
 * console.log(before.length);
 * ```
 */
export async function heapIds(): Promise<Float64Array> {
  const snap = await takeSnapshot();
  const fields = snap.snapshot.meta.node_fields;
  const idAt = fields.indexOf("id");
  const ids = new Float64Array(snap.nodes.length / fields.length);
  for (let i = 0, j = 0; i < snap.nodes.length; i += fields.length, j++) {
    ids[j] = snap.nodes[i + idAt]!;
  }
  return ids.sort();
}

/** Surviving objects of one kind (type and constructor name). */
export interface Survivors {
  kind: string;
  count: number;
  bytes: number;
}

/**
 * The objects alive now that were not alive at `before`, grouped by kind
 * (`"object:Headers"`, `"code:system / InstructionStream"`), most bytes
 * first.
 *
 * @param before Ids from {@linkcode heapIds}.
 * @param top How many kinds to return.
 * @returns The survivors by kind.
 *
 * @example Usage
 * ```ts ignore
 * const before = await heapIds();
 * const kept: object[] = [];
 * for (let i = 0; i < 1000; i++) kept.push(new URL("http://x/"));
 * console.log(await survivorsSince(before, 5)); // URL objects among them
 * ```
 */
export async function survivorsSince(
  before: Float64Array,
  top: number,
): Promise<Survivors[]> {
  const snap = await takeSnapshot();
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [idAt, typeAt, nameAt, sizeAt] = ["id", "type", "name", "self_size"]
    .map((name) => fields.indexOf(name)) as [number, number, number, number];
  const known = (id: number) => {
    let low = 0;
    let high = before.length - 1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      if (before[mid] === id) return true;
      if (before[mid]! < id) low = mid + 1;
      else high = mid - 1;
    }
    return false;
  };
  const byKind = new Map<string, Survivors>();
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    if (known(snap.nodes[i + idAt]!)) continue;
    const name = String(snap.strings[snap.nodes[i + nameAt]!])
      .replace(/@\d+/g, "@").slice(0, 60);
    const kind = `${types[snap.nodes[i + typeAt]!]}:${name}`;
    const entry = byKind.get(kind) ?? { kind, count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += snap.nodes[i + sizeAt]!;
    byKind.set(kind, entry);
  }
  return [...byKind.values()].sort((a, b) => b.bytes - a.bytes).slice(0, top);
}
