import assert from "node:assert/strict";
import { auditText } from "./mod.ts";

Deno.test("auditText() resolves -P from the config's permission sets, and flags a set it cannot find", () => {
  const config = JSON.stringify(
    {
      permissions: {
        default: { net: ["api.x.com"] },
        wide: { env: { allow: true, deny: ["AWS_SECRET"] }, run: ["sh"] },
      },
      test: { permissions: { read: true } },
      tasks: {
        a: "deno run -P --no-prompt x.ts",
        b: "deno run -P=wide --no-prompt x.ts",
        c: "deno test -P --no-prompt",
        d: "deno run -P=missing --no-prompt x.ts",
      },
    },
    null,
    2,
  );
  assert.deepEqual(
    auditText(config, "deno.json").map((f) =>
      `${f.line} ${f.severity} ${f.flag}`
    ),
    [
      "26 low --allow-net=api.x.com (from -P)",
      "27 high --allow-env (from -P=wide)",
      "27 critical --allow-run=sh (from -P=wide)",
      "28 high --allow-read (from -P)",
      "29 medium -P=missing",
    ],
  );
});
