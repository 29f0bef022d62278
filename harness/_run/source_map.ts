/**
 * A bundle's inline source map, moved beside it as a file.
 *
 * The bundler ends every program with its source map as a base64 `data:`
 * URL (a third of an SDK's bundle: 0.7 of 1.7 MB for `openai`). Inline, it
 * is part of the module's text: Deno scans it and stores it whole in its
 * module analysis on every start (~0.1 s of CPU for that bundle, measured).
 * As `main.js.map` beside `main.js`, Deno reads it only to format a stack
 * trace, with the same result: the same file names and lines.
 *
 * @module
 */

/** The map's file name beside the program (`main.js`). */
export const MAP_FILE = "main.js.map";

const MARKER = "\n//# sourceMappingURL=data:application/json;base64,";

/** A program and its map, ready to be written. */
export interface SeparatedProgram {
  /** The program, ending in a link to {@linkcode MAP_FILE}. */
  code: string;
  /** The map's bytes (JSON), or null when the program keeps its own. */
  map: Uint8Array | null;
}

/** Bundles recently separated (the same one is usually run again). */
const recent = new Map<string, SeparatedProgram>();
const RECENT = 8;

/**
 * Moves a bundle's trailing inline source map out. Anything but the
 * bundler's own trailing map (base64 to the end, at most a final newline)
 * is left as it is.
 *
 * @param js The bundled program.
 * @returns The program linking to {@linkcode MAP_FILE}, and the map.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { separateSourceMap } from "./source_map.ts";
 * const map = btoa('{"version":3}');
 * const out = separateSourceMap(
 *   `console.log(1);\n//# sourceMappingURL=data:application/json;base64,${map}\n`,
 * );
 * assert.equal(out.code, "console.log(1);\n//# sourceMappingURL=main.js.map\n");
 * assert.equal(new TextDecoder().decode(out.map!), '{"version":3}');
 * ```
 */
export function separateSourceMap(js: string): SeparatedProgram {
  const known = recent.get(js);
  if (known !== undefined) {
    // Most recently used last.
    recent.delete(js);
    recent.set(js, known);
    return known;
  }
  const separated = separate(js);
  recent.set(js, separated);
  for (const oldest of recent.keys()) {
    if (recent.size <= RECENT) break;
    recent.delete(oldest);
  }
  return separated;
}

function separate(js: string): SeparatedProgram {
  const at = js.lastIndexOf(MARKER);
  if (at === -1) return { code: js, map: null };
  let tail = js.slice(at + MARKER.length);
  if (tail.endsWith("\n")) tail = tail.slice(0, -1);
  // Base64 to the very end: no statement can follow the map.
  if (hasSpace(tail)) {
    return { code: js, map: null };
  }
  let map: Uint8Array;
  try {
    map = fromBase64(tail);
  } catch {
    return { code: js, map: null };
  }
  return {
    code: `${js.slice(0, at)}\n//# sourceMappingURL=${MAP_FILE}\n`,
    map,
  };
}

function hasSpace(text: string): boolean {
  for (const c of [" ", "\n", "\r", "\t", "\f", "\v"]) {
    if (text.includes(c)) return true;
  }
  return false;
}

/** `Uint8Array.fromBase64` (native in Deno 2.9), strict about the alphabet. */
function fromBase64(text: string): Uint8Array {
  const typed = Uint8Array as unknown as {
    fromBase64?: (text: string) => Uint8Array;
  };
  if (typed.fromBase64) return typed.fromBase64(text);
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}
