/**
 * JSONC (JSON with comments and trailing commas) to JSON, preserving string
 * contents byte for byte and line numbers (comments become spaces), so JSON
 * parse errors still point at the right line.
 *
 * @module
 */

/**
 * Parses JSONC text.
 *
 * @param text JSON with `//` and `/* *\/` comments and trailing commas.
 * @returns The parsed value.
 * @throws {SyntaxError} With the line and column of the problem.
 *
 * @example Usage
 * ```ts
 * import { parseJsonc } from "./_jsonc.ts";
 * console.log(parseJsonc('{ "a": 1, // one\n }'));
 * ```
 */
export function parseJsonc(text: string): unknown {
  const stripped = stripJsonc(text);
  try {
    return JSON.parse(stripped);
  } catch (error) {
    const message = (error as Error).message;
    const at = Number(message.match(/position (\d+)/)?.[1]);
    if (Number.isFinite(at)) {
      const before = stripped.slice(0, at).split("\n");
      throw new SyntaxError(
        `Cannot parse JSON at line ${before.length}, column ${
          (before.at(-1)?.length ?? 0) + 1
        }: ${message}`,
      );
    }
    throw new SyntaxError(`Cannot parse JSON: ${message}`);
  }
}

function stripJsonc(text: string): string {
  let out = "";
  let i = 0;
  const blank = (s: string) => s.replace(/[^\n]/g, " ");
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (c === "/" && text[i + 1] === "/") {
      const end = text.indexOf("\n", i);
      const stop = end === -1 ? text.length : end;
      out += blank(text.slice(i, stop));
      i = stop;
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      const stop = end === -1 ? text.length : end + 2;
      out += blank(text.slice(i, stop));
      i = stop;
    } else if (c === ",") {
      // Drop a comma whose next significant character closes the container.
      let j = i + 1;
      let lookahead = "";
      while (j < text.length) {
        if (/\s/.test(text[j]!)) {
          j++;
        } else if (text[j] === "/" && text[j + 1] === "/") {
          const end = text.indexOf("\n", j);
          j = end === -1 ? text.length : end;
        } else if (text[j] === "/" && text[j + 1] === "*") {
          const end = text.indexOf("*/", j + 2);
          j = end === -1 ? text.length : end + 2;
        } else {
          lookahead = text[j]!;
          break;
        }
      }
      out += lookahead === "}" || lookahead === "]" ? " " : ",";
      i++;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}
