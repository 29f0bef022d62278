/**
 * Top-level `await` in REPL input (`sandbox.deno.eval()`, `repl.eval()`),
 * as Deno's own REPL accepts it. The REPL evaluates scripts in the global
 * scope (`node:vm`), where `await` is not allowed outside a function; input
 * that uses it is rewritten, the way Node's REPL does it, into an async
 * function whose top-level declarations are hoisted to the global scope:
 *
 * ```js ignore
 * const r = await fetch(url); r.status
 * // becomes
 * let r;
 * (async () => { void ((r = await fetch(url))); return (r.status); })()
 * ```
 *
 * So declarations persist for later inputs, and the value is that of the
 * last expression statement (the REPL awaits the returned promise).
 * `const` declarations become `let` bindings (a later input may assign
 * them); `var` and function declarations become global properties, class
 * declarations `let` bindings.
 *
 * @module
 */

import type {
  ClassDeclaration,
  FunctionDeclaration,
  Pattern,
  Program,
  Statement,
  VariableDeclaration,
} from "acorn";

/**
 * Rewrites JavaScript that uses top-level `await` (or `for await`) into a
 * script that runs it in an async function with its declarations hoisted.
 *
 * @param js Script text (REPL input, already compiled from TypeScript).
 * @returns The rewritten script, or null when the input needs no rewriting
 *   (no top-level `await`) or does not parse either way (the REPL then
 *   reports the syntax error as it stands).
 *
 * @example Usage
 * ```ts
 * import { wrapTopLevelAwait } from "./top_level_await.ts";
 * import assert from "node:assert/strict";
 * assert.equal(await wrapTopLevelAwait("1 + 1"), null);
 * const script = await wrapTopLevelAwait("const a = await Promise.resolve(20); a + 1");
 * assert.equal(await (0, eval)(script!), 21);
 * assert.equal((globalThis as { a?: number }).a, undefined); // a `let` binding, not a property
 * ```
 */
export async function wrapTopLevelAwait(js: string): Promise<string | null> {
  // Without the word there is nothing to do, and acorn is not even loaded.
  if (!/\bawait\b/.test(js)) return null;
  const { parse } = await import("acorn");
  const options = { ecmaVersion: "latest", sourceType: "script" } as const;
  try {
    parse(js, options);
    return null; // a valid script already: `await` is a name or in a function
  } catch {
    // Either top-level await or a syntax error: the second parse tells.
  }
  let program: Program;
  try {
    program = parse(js, { ...options, allowAwaitOutsideFunction: true });
  } catch {
    return null;
  }
  return rewrite(js, program);
}

type Edit = { start: number; end: number; text: string };

function rewrite(js: string, program: Program): string {
  const hoisted: string[] = [];
  const edits: Edit[] = [];
  const source = (node: { start: number; end: number }) =>
    js.slice(node.start, node.end);
  const body = program.body as Statement[];
  body.forEach((statement, index) => {
    const last = index === body.length - 1;
    switch (statement.type) {
      case "VariableDeclaration":
        edits.push(declaration(statement, source, hoisted));
        break;
      case "FunctionDeclaration":
        edits.push(functionDeclaration(statement, hoisted));
        break;
      case "ClassDeclaration":
        edits.push(...classDeclaration(statement, hoisted));
        break;
      case "ExpressionStatement":
        if (last) {
          edits.push({
            start: statement.start,
            end: statement.end,
            text: `return (${source(statement.expression)});`,
          });
        }
        break;
    }
  });
  let out = js;
  for (const edit of edits.sort((a, b) => b.start - a.start)) {
    out = out.slice(0, edit.start) + edit.text + out.slice(edit.end);
  }
  return `${hoisted.join(" ")}\n(async () => {\n${out}\n})()`;
}

/** `const {a, b: [c]} = x, d;` → `void (({a, b: [c]} = x), (d = undefined));` */
function declaration(
  node: VariableDeclaration,
  source: (node: { start: number; end: number }) => string,
  hoisted: string[],
): Edit {
  const names = node.declarations.flatMap((d) => boundNames(d.id));
  if (names.length > 0) {
    hoisted.push(`${node.kind === "var" ? "var" : "let"} ${names.join(", ")};`);
  }
  const assignments = node.declarations.flatMap((d) =>
    d.init
      ? [`(${source(d.id)} = ${source(d.init)})`]
      // `var x;` keeps x's value; `let x;` sets it to undefined.
      : node.kind === "var"
      ? []
      : [`(${source(d.id)} = undefined)`]
  );
  return {
    start: node.start,
    end: node.end,
    text: `void (${assignments.join(", ") || "0"});`,
  };
}

/** `function f() {}` stays (hoisted in the async function) and is published. */
function functionDeclaration(
  node: FunctionDeclaration,
  hoisted: string[],
): Edit {
  const name = node.id.name;
  hoisted.push(`var ${name};`);
  // The arrow function's `this` is the script's: the global object.
  return {
    start: node.start,
    end: node.start,
    text: `this.${name} = ${name}; `,
  };
}

/** `class A {}` → `A = class A {};` */
function classDeclaration(node: ClassDeclaration, hoisted: string[]): Edit[] {
  const name = node.id.name;
  hoisted.push(`let ${name};`);
  return [
    { start: node.start, end: node.start, text: `${name} = ` },
    { start: node.end, end: node.end, text: ";" },
  ];
}

/** The names a binding pattern declares. */
function boundNames(pattern: Pattern): string[] {
  switch (pattern.type) {
    case "Identifier":
      return [pattern.name];
    case "ObjectPattern":
      return pattern.properties.flatMap((p) =>
        p.type === "RestElement" ? boundNames(p.argument) : boundNames(p.value)
      );
    case "ArrayPattern":
      return pattern.elements.flatMap((e) => e ? boundNames(e) : []);
    case "RestElement":
      return boundNames(pattern.argument);
    case "AssignmentPattern":
      return boundNames(pattern.left);
    default:
      return [];
  }
}
