import assert from "node:assert/strict";
import { hasSecretRef, REDACTED, resolveSecretRefs } from "./secret_refs.ts";

Deno.test("hasSecretRef() finds ${env:…} and ${secret:…} references only", () => {
  assert.equal(hasSecretRef("Bearer ${env:TOKEN}"), true);
  assert.equal(hasSecretRef("${secret:api_key_2}"), true);
  assert.equal(hasSecretRef("a ${secret:A} b ${env:B}"), true);
  for (
    const text of [
      "plain",
      "$env:TOKEN",
      "${ENV:TOKEN}",
      "${file:/etc/passwd}",
      "${env:1BAD}",
      "${env:}",
      "${env:A-B}",
      "{env:TOKEN}",
      "${secret:TOKEN",
    ]
  ) {
    assert.equal(hasSecretRef(text), false, text);
  }
});

Deno.test("hasSecretRef() gives the same answer on repeated calls (no regex state carried over)", () => {
  for (let i = 0; i < 5; i++) {
    assert.equal(hasSecretRef("x ${secret:A}"), true);
    assert.equal(hasSecretRef("${env:B}"), true);
  }
});

Deno.test("resolveSecretRefs() replaces every reference of both kinds", () => {
  const result = resolveSecretRefs(
    "${secret:A}:${env:B}:${secret:A}",
    {
      secrets: { A: "alpha" },
      env: (name) => (name === "B" ? "beta" : undefined),
    },
  );
  assert.deepEqual(result, {
    value: "alpha:beta:alpha",
    missing: [],
    secrets: ["alpha", "beta", "alpha"],
  });
});

Deno.test("resolveSecretRefs() lists unresolved references by kind and name and leaves them in place", () => {
  const result = resolveSecretRefs("${secret:A} ${env:B} ${secret:C}", {
    secrets: { C: "gamma" },
    env: () => undefined,
  });
  assert.deepEqual(result.missing, ["secret:A", "env:B"]);
  assert.equal(result.value, "${secret:A} ${env:B} gamma");
});

Deno.test("resolveSecretRefs() treats an empty value as unresolved", () => {
  const result = resolveSecretRefs("x${secret:A}", { secrets: { A: "" } });
  assert.deepEqual(result.missing, ["secret:A"]);
});

Deno.test("resolveSecretRefs() without a secrets map resolves no ${secret:…}", () => {
  assert.deepEqual(resolveSecretRefs("${secret:A}", {}).missing, ["secret:A"]);
});

Deno.test("resolveSecretRefs() leaves text without references unchanged, including look-alikes", () => {
  const text = "Bearer $x ${ENV:A} ${file:b} $$ {}";
  assert.deepEqual(resolveSecretRefs(text, { env: () => "nope" }), {
    value: text,
    missing: [],
    secrets: [],
  });
});

Deno.test("resolveSecretRefs() inserts values literally ($&, $1 and references inside values are not expanded)", () => {
  const result = resolveSecretRefs("[${secret:A}][${secret:B}]", {
    secrets: { A: "x$&y$1z$$", B: "${env:HOME}" },
    env: () => "leaked-env",
  });
  assert.deepEqual(result, {
    value: "[x$&y$1z$$][${env:HOME}]",
    missing: [],
    secrets: ["x$&y$1z$$", "${env:HOME}"],
  });
});

Deno.test("resolveSecretRefs() reads the harness environment by default", () => {
  const name = "AIRLOCK_SECRET_REFS_TEST_VAR";
  Deno.env.set(name, "from-env");
  try {
    assert.deepEqual(resolveSecretRefs(`\${env:${name}}`, {}), {
      value: "from-env",
      missing: [],
      secrets: ["from-env"],
    });
  } finally {
    Deno.env.delete(name);
  }
  assert.deepEqual(resolveSecretRefs(`\${env:${name}}`, {}).missing, [
    `env:${name}`,
  ]);
});

Deno.test("REDACTED is the read-back marker <redacted>", () => {
  assert.equal(REDACTED, "<redacted>");
});
