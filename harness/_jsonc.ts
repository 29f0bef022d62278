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
    // V8 gives a position for some errors only; find it ourselves otherwise.
    let at = Number(message.match(/position (\d+)/)?.[1]);
    if (!Number.isFinite(at)) at = errorOffset(stripped);
    if (at >= 0) {
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

/** Offset of the first JSON syntax error in `s`, or -1 (a small scanner). */
function errorOffset(s: string): number {
  let i = 0;
  const literal =
    /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;
  const space = () => {
    while (i < s.length && " \t\n\r".includes(s[i]!)) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const string = () => {
    i++;
    while (i < s.length && s[i] !== '"') {
      if (s.charCodeAt(i) < 0x20) fail();
      i += s[i] === "\\" ? 2 : 1;
    }
    if (i >= s.length) fail();
    i++;
  };
  const value = (): void => {
    space();
    const c = s[i];
    if (c === "{" || c === "[") {
      const close = c === "{" ? "}" : "]";
      i++;
      space();
      if (s[i] === close) {
        i++;
        return;
      }
      while (true) {
        if (c === "{") {
          space();
          if (s[i] !== '"') fail();
          string();
          space();
          if (s[i] !== ":") fail();
          i++;
        }
        value();
        space();
        if (s[i] === ",") {
          i++;
          continue;
        }
        if (s[i] === close) {
          i++;
          return;
        }
        fail();
      }
    }
    if (c === '"') return string();
    literal.lastIndex = i;
    const match = literal.exec(s);
    if (!match) fail();
    i += match![0].length;
  };
  try {
    value();
    space();
    if (i < s.length) fail();
    return -1;
  } catch (at) {
    return typeof at === "number" ? at : -1;
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
      // A comma right after ':' ',' '[' or '{' is a missing value, not a
      // trailing comma: keep it so the error points at the real mistake.
      const previous = out.trimEnd().at(-1);
      const trailing = (lookahead === "}" || lookahead === "]") &&
        previous !== undefined && !":,[{".includes(previous);
      out += trailing ? " " : ",";
      i++;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}
