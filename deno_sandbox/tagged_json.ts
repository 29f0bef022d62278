/**
 * Tagged JSON: how values cross between the REPL driver (inside the
 * sandbox) and the harness. Never `v8.deserialize` on the harness side: the
 * bytes come from untrusted code. The types are the structured-clone ones
 * the SDK promises (Map, Set, Date, RegExp, BigInt, typed arrays, errors,
 * plain objects in place of class instances).
 *
 * Both functions are self-contained: their source text is embedded in the
 * driver program (`repl.ts`), so they may use nothing from outside.
 *
 * @module
 */

/**
 * Encodes a value as tagged JSON. Self-contained: its source is also
 * embedded in the driver program.
 *
 * @param value Any structured-cloneable value.
 * @returns JSON-safe data.
 * @throws {TypeError} For functions, symbols, promises and cycles.
 *
 * @example Usage
 * ```ts
 * import { decodeValue, encodeValue } from "./tagged_json.ts";
 * import assert from "node:assert/strict";
 * const value = new Map([["when", new Date(0)]]);
 * assert.deepEqual(decodeValue(JSON.parse(JSON.stringify(encodeValue(value)))), value);
 * ```
 */
export function encodeValue(value: unknown): unknown {
  const seen = new Set<object>();
  const base64 = (bytes: Uint8Array): string => {
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
  };
  const walk = (v: unknown, depth: number): unknown => {
    if (depth > 500) throw new RangeError("the value is nested too deeply");
    if (v === null || typeof v === "string" || typeof v === "boolean") {
      return v;
    }
    if (typeof v === "number") {
      if (Number.isNaN(v)) return { $: "NaN" };
      if (v === Infinity) return { $: "Infinity" };
      if (v === -Infinity) return { $: "-Infinity" };
      if (Object.is(v, -0)) return { $: "-0" };
      return v;
    }
    if (v === undefined) return { $: "undefined" };
    if (typeof v === "bigint") return { $: "BigInt", v: v.toString() };
    if (typeof v !== "object") {
      throw new TypeError(`${String(typeof v)} could not be cloned`);
    }
    if (seen.has(v)) {
      throw new TypeError("a circular structure could not be cloned");
    }
    seen.add(v);
    try {
      const next = (x: unknown) => walk(x, depth + 1);
      if (Array.isArray(v)) return { $: "Array", v: Array.from(v, next) };
      if (v instanceof Date) return { $: "Date", v: next(v.getTime()) };
      if (v instanceof RegExp) {
        return { $: "RegExp", source: v.source, flags: v.flags };
      }
      if (v instanceof Map) {
        return { $: "Map", v: [...v].map(([k, x]) => [next(k), next(x)]) };
      }
      if (v instanceof Set) return { $: "Set", v: [...v].map(next) };
      if (v instanceof Error) {
        return {
          $: "Error",
          name: String(v.name),
          message: String(v.message),
          stack: String(v.stack ?? ""),
        };
      }
      if (v instanceof ArrayBuffer) {
        return { $: "ArrayBuffer", v: base64(new Uint8Array(v)) };
      }
      if (ArrayBuffer.isView(v)) {
        return {
          $: v.constructor.name,
          v: base64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)),
        };
      }
      if (
        v instanceof Boolean || v instanceof Number || v instanceof String
      ) {
        return next(v.valueOf());
      }
      if (
        v instanceof Promise || v instanceof WeakMap || v instanceof WeakSet
      ) {
        throw new TypeError(
          `${v.constructor.name} object could not be cloned`,
        );
      }
      const record = v as Record<string, unknown>;
      return {
        $: "Object",
        v: Object.keys(record).map((k) => [k, next(record[k])]),
      };
    } finally {
      seen.delete(v);
    }
  };
  return walk(value, 0);
}

/**
 * Decodes tagged JSON made by {@linkcode encodeValue}. Self-contained (also
 * embedded in the driver). Only known tags are accepted; object keys are
 * defined as own data properties (`__proto__` cannot set a prototype).
 *
 * @param data Parsed JSON.
 * @returns The value.
 * @throws {TypeError} For malformed data.
 *
 * @example Usage
 * ```ts
 * import { decodeValue } from "./tagged_json.ts";
 * import assert from "node:assert/strict";
 * assert.equal(decodeValue({ $: "BigInt", v: "12" }), 12n);
 * // An own "__proto__" key stays a key: no prototype is set.
 * const decoded = decodeValue({ $: "Object", v: [["__proto__", { $: "Object", v: [] }]] });
 * assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
 * assert.throws(() => decodeValue({ $: "Function" }), TypeError);
 * ```
 */
export function decodeValue(data: unknown): unknown {
  const bad = (why: string): never => {
    throw new TypeError(`Cannot decode the REPL's answer: ${why}`);
  };
  const views: Record<string, new (b: ArrayBuffer) => ArrayBufferView> = {
    Uint8Array,
    Uint8ClampedArray,
    Int8Array,
    Uint16Array,
    Int16Array,
    Uint32Array,
    Int32Array,
    Float32Array,
    Float64Array,
    BigInt64Array,
    BigUint64Array,
    DataView,
  };
  const errors: Record<string, new (m: string) => Error> = {
    Error,
    TypeError,
    RangeError,
    SyntaxError,
    ReferenceError,
    EvalError,
    URIError,
  };
  const bytes = (text: unknown): ArrayBuffer => {
    if (typeof text !== "string") bad("bytes are not a string");
    const binary = atob(text as string);
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out.buffer;
  };
  const list = (x: unknown): unknown[] =>
    Array.isArray(x) ? x : bad("a list is not an array");
  const walk = (d: unknown, depth: number): unknown => {
    if (depth > 500) bad("nested too deeply");
    if (d === null || ["string", "boolean", "number"].includes(typeof d)) {
      return d;
    }
    if (typeof d !== "object" || Array.isArray(d)) bad("unknown shape");
    const node = d as Record<string, unknown>;
    const next = (x: unknown) => walk(x, depth + 1);
    const tag = String(node.$);
    switch (tag) {
      case "NaN":
        return NaN;
      case "Infinity":
        return Infinity;
      case "-Infinity":
        return -Infinity;
      case "-0":
        return -0;
      case "undefined":
        return undefined;
      case "BigInt":
        return BigInt(String(node.v));
      case "Array":
        return list(node.v).map(next);
      case "Date":
        return new Date(Number(next(node.v)));
      case "RegExp":
        return new RegExp(String(node.source), String(node.flags));
      case "Map":
        return new Map(
          list(node.v).map((e) => {
            const [k, x] = list(e);
            return [next(k), next(x)] as const;
          }),
        );
      case "Set":
        return new Set(list(node.v).map(next));
      case "Error": {
        const name = String(node.name);
        const error = new (errors[name] ?? Error)(String(node.message));
        if (!(name in errors)) {
          Object.defineProperty(error, "name", {
            value: name,
            configurable: true,
            writable: true,
          });
        }
        error.stack = String(node.stack);
        return error;
      }
      case "ArrayBuffer":
        return bytes(node.v);
      case "Object": {
        const out: Record<string, unknown> = {};
        for (const entry of list(node.v)) {
          const [k, x] = list(entry);
          Object.defineProperty(out, String(k), {
            value: next(x),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        }
        return out;
      }
      default: {
        const View = Object.hasOwn(views, tag) ? views[tag] : undefined;
        if (!View) return bad(`unknown type '${tag}'`);
        try {
          return new View(bytes(node.v));
        } catch {
          return bad(`bad ${tag} length`);
        }
      }
    }
  };
  return walk(data, 0);
}
