import assert from "node:assert/strict";
import {
  assertValidLimits,
  DEFAULT_LIMITS,
  DENO_DATA_BASELINE_MB,
  prlimitArgs,
  type ResourceLimits,
  v8Flags,
} from "./limits.ts";

const MIB = 1024 * 1024;
const LIMITS: ResourceLimits = {
  ...DEFAULT_LIMITS,
  memoryMb: 100,
  cpuSeconds: 7,
  fileSizeMb: 3,
  openFiles: 64,
  processes: 32,
};

/** prlimit options as a name -> "soft:hard" map. */
function byName(args: string[]): Map<string, string> {
  return new Map(args.map((a) => {
    const match = a.match(/^--(\w+)=(\d+:\d+)$/);
    assert.ok(match, `unexpected prlimit option '${a}'`);
    return [match[1]!, match[2]!];
  }));
}

Deno.test("prlimitArgs() bounds RLIMIT_DATA at Deno's baseline plus memoryMb", () => {
  const data = (640 + 100) * MIB;
  assert.equal(DENO_DATA_BASELINE_MB, 640);
  assert.equal(byName(prlimitArgs(LIMITS)).get("data"), `${data}:${data}`);
});

Deno.test("prlimitArgs() gives CPU a soft limit one second below the hard limit", () => {
  assert.equal(byName(prlimitArgs(LIMITS)).get("cpu"), "7:8");
});

Deno.test("prlimitArgs() sets file size, open files and no core dumps", () => {
  const args = byName(prlimitArgs(LIMITS));
  assert.equal(args.get("fsize"), `${3 * MIB}:${3 * MIB}`);
  assert.equal(args.get("nofile"), "64:64");
  assert.equal(args.get("core"), "0:0");
  assert.ok(!args.has("as"), "RLIMIT_AS is unusable with V8");
});

Deno.test("prlimitArgs() caps processes unless told the uid is shared", () => {
  assert.equal(
    byName(prlimitArgs(LIMITS, { enforceProcesses: true })).get("nproc"),
    "32:32",
  );
  // The default fails safe: the cap applies.
  assert.equal(byName(prlimitArgs(LIMITS)).get("nproc"), "32:32");
  assert.ok(
    !byName(prlimitArgs(LIMITS, { enforceProcesses: false })).has("nproc"),
  );
});

Deno.test("v8Flags() bounds the old space at memoryMb", () => {
  assert.equal(v8Flags(LIMITS), "--max-old-space-size=100");
  assert.equal(v8Flags(DEFAULT_LIMITS), "--max-old-space-size=256");
});

Deno.test("assertValidLimits() accepts the defaults", () => {
  assertValidLimits(DEFAULT_LIMITS);
  assert.ok(Object.isFrozen(DEFAULT_LIMITS));
});

Deno.test("assertValidLimits() names a limit that is not a positive integer", () => {
  for (const value of [0, -1, 1.5, NaN, Infinity, 2 ** 53]) {
    for (const name of Object.keys(DEFAULT_LIMITS)) {
      assert.throws(
        () => assertValidLimits({ ...DEFAULT_LIMITS, [name]: value }),
        (error: unknown) => {
          assert.ok(error instanceof RangeError);
          assert.equal(
            error.message,
            `Cannot use limit '${name}' as it must be a positive integer: current value is ${value}`,
          );
          return true;
        },
      );
    }
  }
});

Deno.test("assertValidLimits() refuses fewer than 16 processes (Deno's own threads)", () => {
  assert.throws(
    () => assertValidLimits({ ...DEFAULT_LIMITS, processes: 15 }),
    /Cannot use limit 'processes' as Deno needs at least 16 threads to start: current value is 15/,
  );
  assertValidLimits({ ...DEFAULT_LIMITS, processes: 16 });
});
