import assert from "node:assert/strict";
import { atOrAbove, type Finding, sortFindings } from "./model.ts";

Deno.test("atOrAbove() and sortFindings() order severities critical > high > medium > low > info", () => {
  assert.equal(atOrAbove("critical", "high"), true);
  assert.equal(atOrAbove("high", "high"), true);
  assert.equal(atOrAbove("medium", "high"), false);
  assert.equal(atOrAbove("info", "low"), false);
  const f = (
    severity: Finding["severity"],
    file: string,
    line: number,
  ): Finding => ({
    id: "allow-all",
    file,
    line,
    severity,
    command: "",
    flag: "",
    message: "",
    suggestion: "",
  });
  assert.deepEqual(
    sortFindings([
      f("low", "a", 1),
      f("critical", "b", 2),
      f("critical", "a", 9),
      f("critical", "a", 3),
    ])
      .map((x) => `${x.severity} ${x.file}:${x.line}`),
    ["critical a:3", "critical a:9", "critical b:2", "low a:1"],
  );
});
