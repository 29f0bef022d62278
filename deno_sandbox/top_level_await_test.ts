/**
 * Top-level `await` in REPL input: the rewrite evaluated as the REPL
 * driver evaluates it (scripts in one global scope, a promise result
 * awaited), then `sandbox.deno.eval()` and `repl.eval()` in real sandboxes.
 */

import assert from "node:assert/strict";
import vm from "node:vm";
import { Sandbox } from "./mod.ts";
import { compileReplInput } from "./repl.ts";
import { wrapTopLevelAwait } from "./top_level_await.ts";

/** Evaluates inputs one after another in one fresh global scope. */
async function replSession(...inputs: string[]): Promise<unknown[]> {
  const context = vm.createContext({});
  const values: unknown[] = [];
  for (const input of inputs) {
    let value = vm.runInContext(await compileReplInput(input), context);
    if (value !== null && typeof value?.then === "function") {
      value = await value;
    }
    values.push(structuredClone(value)); // into this realm, for deepEqual
  }
  return values;
}

Deno.test("wrapTopLevelAwait() leaves input without top-level await alone", async () => {
  for (
    const input of [
      "1 + 1",
      "var await = 1; await", // a name in a script
      "async function g() { await 1 }",
      "const f = async () => await 1",
      "await (", // a syntax error either way: reported as it stands
    ]
  ) {
    assert.equal(await wrapTopLevelAwait(input), null, input);
  }
});

Deno.test("top-level await: the last expression's value, declarations persisting for later inputs", async () => {
  assert.deepEqual(
    await replSession(
      "await Promise.resolve(5)",
      "const r: number = await Promise.resolve(5); r * 2",
      "r",
      "r = 7; r", // a `const` becomes a `let` binding
    ),
    [5, 10, 5, 7],
  );
  assert.deepEqual(
    await replSession(
      "const { a, b: [c], ...rest } = await Promise.resolve({ a: 1, b: [2], d: 4 }), [e = 9] = [];",
      "[a, c, rest, e]",
    ),
    [undefined, [1, 2, { d: 4 }, 9]],
  );
  assert.deepEqual(
    await replSession(
      "var v = await 1; let q; var keep = 3; var keep;",
      "[v, q, keep, typeof globalThis.v]",
    ),
    [undefined, [1, undefined, 3, "number"]],
  );
  assert.deepEqual(
    await replSession(
      "async function twice(n: number) { return 2 * n } await twice(2)",
      "twice(3)", // a promise result is awaited
      "class K { static v = 1 } await 0; new K() instanceof K",
      "K.v",
      "let sum = 0; for await (const x of [1, 2]) sum += x; sum",
      "{ total: await Promise.resolve(sum) }", // an object, as in Deno's REPL
    ),
    [4, 6, true, 1, 3, { total: 3 }],
  );
  await assert.rejects(
    replSession("await Promise.reject(new RangeError('no'))"),
    { name: "RangeError", message: "no" },
  );
  // Control: without the rewrite the same input does not compile.
  assert.throws(
    () => new vm.Script("const r = await Promise.resolve(5); r * 2"),
    SyntaxError,
  );
});

Deno.test("sandbox.deno.eval() and repl.eval() accept top-level await", async () => {
  await using sandbox = await Sandbox.create({ allowNet: [] });
  await sandbox.fs.writeTextFile("data.json", JSON.stringify({ n: 21 }));
  assert.equal(
    await sandbox.deno.eval(
      "const { n } = JSON.parse(await Deno.readTextFile('data.json')); n * 2",
    ),
    42,
  );
  assert.equal(
    await sandbox.deno.eval(
      "await new Promise((resolve) => setTimeout(() => resolve('later'), 10))",
    ),
    "later",
  );
  await using repl = await sandbox.deno.repl();
  await repl.eval("const data = await Promise.resolve({ n: 2 });");
  assert.equal(await repl.eval("data.n * 21"), 42);
  assert.deepEqual(
    await repl.eval("const m = await Promise.resolve(new Map([[1, 2]])); m"),
    new Map([[1, 2]]),
  );
  await assert.rejects(
    repl.eval("await Promise.reject(new TypeError('refused'))"),
    (e) => e instanceof TypeError && e.message === "refused",
  );
  assert.equal(
    await repl.eval("data.n"),
    2,
    "the REPL lives on after an error",
  );
});
