/**
 * The corpus's own instruments, checked before they are trusted: the canary
 * scanner finds both canaries in every encoding at any position, and stays
 * quiet on text without them.
 */

import assert from "node:assert/strict";
import { ENV_CANARY, findCanaries, INJECTED_CANARY } from "./_corpus.ts";

const encoder = new TextEncoder();

function base64(text: string): string {
  let binary = "";
  for (const b of encoder.encode(text)) binary += String.fromCharCode(b);
  return btoa(binary);
}

const hex = (text: string) =>
  Array.from(encoder.encode(text)).map((b) => b.toString(16).padStart(2, "0"))
    .join("");

const CANARIES: [string, string][] = [
  ["env", ENV_CANARY],
  ["injected", INJECTED_CANARY],
];

for (const [name, canary] of CANARIES) {
  Deno.test(`scanner: finds the ${name} canary in every encoding, at any offset`, () => {
    const forms: Record<string, string> = {
      raw: `x ${canary} y`,
      json: JSON.stringify({ a: canary }).replaceAll("/", "\\/"),
      url: `?t=${encodeURIComponent(`Bearer ${canary}`)}`,
      hex: `0x${hex(canary)}`,
      HEX: hex(`:${canary}`).toUpperCase(),
      "base64 +0": base64(`${canary} tail`),
      "base64 +1": base64(`a${canary}`),
      "base64 +2": base64(`ab${canary}ab`),
      "base64url": base64(`Bearer ${canary}!`).replaceAll("+", "-")
        .replaceAll("/", "_"),
      "random part alone": `…${canary.slice(8)}…`,
    };
    for (const [form, text] of Object.entries(forms)) {
      assert.ok(findCanaries(text).length > 0, `${form}: ${text}`);
      assert.ok(findCanaries(encoder.encode(text)).length > 0, `${form} bytes`);
    }
  });
}

Deno.test("scanner: quiet on text without a canary", () => {
  assert.deepEqual(
    findCanaries(
      `Bearer [airlock:redacted] ${base64("atk+inj/")} ${hex("atk+env/")}`,
    ),
    [],
  );
  assert.notEqual(ENV_CANARY, INJECTED_CANARY);
});
