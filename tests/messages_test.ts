/**
 * Errors a person understands, at the library's door: each mistake a new
 * user makes is answered with what is wrong and what to do, not with a
 * validator's or the runtime's wording. (The command line's own messages
 * are in cli_test.ts.)
 */

import assert from "node:assert/strict";
import { parsePolicy, PolicyError, Sandbox } from "../mod.ts";

const INJECTING = {
  network: {
    allow: {
      "api.example.com": [{
        transform: [{
          headers: { authorization: "Bearer ${secret:API_TOKEN}" },
        }],
      }],
    },
  },
};

async function createError(
  options: Parameters<typeof Sandbox.create>[0],
): Promise<PolicyError> {
  try {
    await using _sandbox = await Sandbox.create(options);
  } catch (error) {
    assert.ok(error instanceof PolicyError, String(error));
    return error;
  }
  assert.fail("Sandbox.create accepted the policy");
}

Deno.test("Sandbox.create: a secret passed as undefined is reported as passed but undefined", async () => {
  const error = await createError({
    policy: INJECTING,
    // What `{ API_TOKEN: Deno.env.get("API_TOKEN")! }` passes when the
    // variable is not set.
    secrets: { API_TOKEN: undefined as unknown as string },
  });
  assert.match(
    error.message,
    /'\$\{secret:API_TOKEN\}' \(the secrets map has 'API_TOKEN', but its value is undefined: check where the value comes from/,
  );
  assert.doesNotMatch(error.message, /pass it in the secrets map/);
  // Control: a secret never passed still says to pass it.
  const missing = await createError({ policy: INJECTING, secrets: {} });
  assert.match(missing.message, /\(pass it in the secrets map\)/);
  const empty = await createError({
    policy: INJECTING,
    secrets: { API_TOKEN: "" },
  });
  assert.match(empty.message, /its value is an empty string/);
});

Deno.test("parsePolicy: validator wording becomes a person's", () => {
  const cases: [unknown, string][] = [
    [
      { network: { allow: { "api.example.com": [{ match: {} }] } } },
      "network.allow.api.example.com.0: needs 'transform' or 'response'",
    ],
    [
      {
        network: {
          allow: { "api.example.com": [{ transform: [{}] }] },
        },
      },
      "network.allow.api.example.com.0.transform.0.headers: is missing: give an object",
    ],
    [{ limits: { timeoutMs: 0 } }, "limits.timeoutMs: must be at least 1"],
    [
      { limits: { outputBytes: 1e12 } },
      "limits.outputBytes: must be at most 268435456",
    ],
    [{ scratch: "yes" }, "scratch: must be true or false, not a string"],
    [
      { network: "none" },
      'network: must be "deny-all", or "allow-all", or an object, not a string',
    ],
    [
      { network: { allow: { "*": [] } } },
      "network.allow.*: the host pattern '*' is refused as '*' would match every host",
    ],
    [
      { secrets: { T: { hosts: ["a.example.com"] } } },
      "secrets.T.value: is missing: give a string",
    ],
  ];
  for (const [policy, expected] of cases) {
    assert.throws(() => parsePolicy(policy), (error: unknown) => {
      assert.ok(error instanceof PolicyError);
      assert.ok(
        error.message.includes(expected),
        `expected '${expected}' in:\n${error.message}`,
      );
      assert.doesNotMatch(
        error.message,
        /Invalid input|received undefined|Too (small|big)|key Cannot/,
      );
      return true;
    });
  }
});

Deno.test("Sandbox.create: an input 'HOST:/etc/x' says sandbox paths must be under /inputs/", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airlock-messages-" });
  try {
    await Deno.writeTextFile(`${dir}/data.csv`, "a");
    await assert.rejects(
      async () => {
        await using _s = await Sandbox.create({
          policy: { inputs: [`${dir}/data.csv:/etc/x`] },
        });
      },
      new RegExp(
        `if '/etc/x' is meant as the path inside the sandbox, it must be under /inputs/`,
      ),
    );
    // Control: a plain missing file says only that.
    await assert.rejects(
      async () => {
        await using _s = await Sandbox.create({
          policy: { inputs: [`${dir}/missing.csv`] },
        });
      },
      (error: Error) => {
        assert.match(error.message, /does not exist/);
        assert.doesNotMatch(error.message, /inside the sandbox/);
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
