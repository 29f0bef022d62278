import assert from "node:assert/strict";
import { parseJsonc } from "./_jsonc.ts";

Deno.test("parseJsonc() parses plain JSON unchanged", () => {
  const value = { a: [1, 2.5, -3], b: { c: null, d: true }, e: "x" };
  assert.deepEqual(parseJsonc(JSON.stringify(value, null, 2)), value);
});

Deno.test("parseJsonc() ignores line and block comments", () => {
  const text = `// leading
{
  "a": 1, // trailing
  /* block */ "b": /* inline */ 2,
  /*
   * multi-line
   */
  "c": 3
}
// end without newline`;
  assert.deepEqual(parseJsonc(text), { a: 1, b: 2, c: 3 });
});

Deno.test("parseJsonc() accepts trailing commas in objects and arrays", () => {
  assert.deepEqual(parseJsonc('{ "a": [1, 2,], "b": {"c": 1,}, }'), {
    a: [1, 2],
    b: { c: 1 },
  });
  // A comment between the comma and the bracket.
  assert.deepEqual(parseJsonc("[1, // one\n /* x */ ]"), [1]);
});

Deno.test("parseJsonc() keeps comment markers and commas inside strings", () => {
  const text = String.raw`{
  "url": "https://example.com/a//b",
  "glob": "/* not a comment */",
  "comma": "a,}",
  "quote": "say \"// hi\", ok",
  "backslash": "C:\\",
  "after": 1
}`;
  assert.deepEqual(parseJsonc(text), {
    url: "https://example.com/a//b",
    glob: "/* not a comment */",
    comma: "a,}",
    quote: 'say "// hi", ok',
    backslash: "C:\\",
    after: 1,
  });
});

Deno.test("parseJsonc() still refuses what JSON refuses", () => {
  for (const text of ["{ a: 1 }", "[1,,]", "{ 'a': 1 }", "", "[1] [2]"]) {
    assert.throws(() => parseJsonc(text), SyntaxError, text);
  }
});

Deno.test("parseJsonc() reports the line and column of an error after comments", () => {
  const text = `{
  /* a comment
     over two lines */
  "a": 1
  "b": 2
}`;
  assert.throws(
    () => parseJsonc(text),
    (error: unknown) => {
      assert.ok(error instanceof SyntaxError);
      assert.match(error.message, /^Cannot parse JSON at line 5, column 3:/);
      return true;
    },
  );
});

Deno.test("parseJsonc() reports the line of an unexpected token", () => {
  // A missing value: V8's message for this names no position.
  const text = `{
  // the memory limit
  "limits": {
    "memoryMb": ,
  }
}`;
  assert.throws(
    () => parseJsonc(text),
    (error: unknown) => {
      assert.ok(error instanceof SyntaxError);
      assert.match(error.message, /line 4\b/);
      return true;
    },
  );
});
