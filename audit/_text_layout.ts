/**
 * Text layout for the terminal report: column fitting, padding, and cutting
 * long values (prose at its end, paths and hosts in the middle), measured
 * in code points.
 *
 * @module
 */

/**
 * Column widths that fit `available`: narrow columns keep their natural
 * width, the widest give up space first, none below `min`.
 *
 * @param natural Each column's natural width.
 * @param available The room for all of them.
 * @param min The narrowest a column gets.
 * @returns The widths.
 *
 * @example Usage
 * ```ts
 * import { fit } from "./_text_layout.ts";
 * console.log(fit([5, 50], 30, 8)); // [5, 25]
 * ```
 */
export function fit(
  natural: number[],
  available: number,
  min: number,
): number[] {
  const total = natural.reduce((a, b) => a + b, 0);
  if (total <= available) return natural;
  const widths = [...natural];
  const order = natural.map((_, i) => i).sort((a, b) =>
    natural[a]! - natural[b]!
  );
  let left = available;
  let columns = order.length;
  for (const i of order) {
    const share = Math.floor(left / columns);
    widths[i] = Math.min(natural[i]!, Math.max(share, min));
    left -= widths[i]!;
    columns--;
  }
  return widths;
}

/**
 * A text's length in code points.
 *
 * @param text Any text.
 * @returns Its length.
 *
 * @example Usage
 * ```ts
 * import { length } from "./_text_layout.ts";
 * console.log(length("✓é")); // 2
 * ```
 */
export function length(text: string): number {
  return [...text].length;
}

/**
 * Pads a text with spaces to `width`.
 *
 * @param text Any text.
 * @param width The width.
 * @returns The padded text (unchanged when already as wide).
 *
 * @example Usage
 * ```ts
 * import { pad } from "./_text_layout.ts";
 * console.log(pad("ab", 4) + "|"); // "ab  |"
 * ```
 */
export function pad(text: string, width: number): string {
  return text + " ".repeat(Math.max(0, width - length(text)));
}

/**
 * Cuts the end: for prose, whose start says the most.
 *
 * @param text Any text.
 * @param width The most code points kept, `…` included.
 * @returns The text, cut when longer.
 *
 * @example Usage
 * ```ts
 * import { cut } from "./_text_layout.ts";
 * console.log(cut("abcdef", 4)); // "abc…"
 * ```
 */
export function cut(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width
    ? text
    : `${chars.slice(0, width - 1).join("")}…`;
}

/**
 * Cuts the middle: for paths and hosts, whose file name or port at the end
 * matters as much as the start.
 *
 * @param text Any text.
 * @param width The most code points kept, `…` included.
 * @returns The text, cut when longer.
 *
 * @example Usage
 * ```ts
 * import { cutMiddle } from "./_text_layout.ts";
 * console.log(cutMiddle("/a/long/path.txt", 9)); // "/a/l….txt"
 * ```
 */
export function cutMiddle(text: string, width: number): string {
  const chars = [...text];
  if (chars.length <= width) return text;
  const tail = Math.floor((width - 1) / 2);
  const head = width - 1 - tail;
  return `${chars.slice(0, head).join("")}…${
    chars.slice(chars.length - tail).join("")
  }`;
}

/**
 * Wraps prose at spaces; a word longer than the width is cut in its middle.
 *
 * @param text Any text.
 * @param width The widest line.
 * @returns The lines.
 *
 * @example Usage
 * ```ts
 * import { wrap } from "./_text_layout.ts";
 * console.log(wrap("one two three", 8)); // ["one two", "three"]
 * ```
 */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let current = "";
  for (const word of text.split(" ")) {
    const candidate = current === "" ? word : `${current} ${word}`;
    if (length(candidate) <= width) {
      current = candidate;
      continue;
    }
    if (current !== "") lines.push(current);
    current = length(word) <= width ? word : cutMiddle(word, width);
  }
  if (current !== "") lines.push(current);
  return lines;
}
