import assert from "node:assert/strict";
import { MAX_DURATION_MS, parseDuration, parseSizeMb } from "./_units.ts";

Deno.test("parseDuration() reads ms, s, m and h", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("5s"), 5000);
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration("2m"), 120_000);
  assert.equal(parseDuration("1h"), 3_600_000);
  assert.equal(parseDuration(" 5s "), 5000);
});

Deno.test("parseDuration() refuses a bare number: a duration needs a unit", () => {
  for (const text of ["3", "5000", "0.25"]) {
    assert.throws(
      () => parseDuration(text),
      (error: unknown) => {
        assert.ok(error instanceof SyntaxError);
        assert.equal(
          error.message,
          `Cannot use --timeout '${text}' as a duration needs a unit: write '${text}ms' or '${text}s' (units: ms, s, m, h)`,
        );
        return true;
      },
    );
  }
});

Deno.test("parseDuration() refuses malformed, negative and zero durations", () => {
  for (const text of ["", "abc", "5x", "-1s", "1e3", "5 s", "s", "1.s"]) {
    assert.throws(
      () => parseDuration(text),
      (error: unknown) => {
        assert.ok(error instanceof SyntaxError);
        assert.equal(
          error.message,
          `Cannot parse --timeout '${text}': use a number with a unit, e.g. '500ms', '5s', '2m'`,
        );
        return true;
      },
    );
  }
  for (const text of ["0ms", "0.0001s"]) {
    assert.throws(() => parseDuration(text), /it must be positive/, text);
  }
});

Deno.test("parseDuration() refuses more than the policy's 24 hours", () => {
  assert.equal(parseDuration("24h"), MAX_DURATION_MS);
  assert.throws(() => parseDuration("25h"), RangeError);
  assert.throws(() => parseDuration("5000m"), /the longest run is 24h/);
});

Deno.test("parseSizeMb() reads K, M, G, T with optional B or iB, case-insensitive", () => {
  assert.equal(parseSizeMb("512M"), 512);
  assert.equal(parseSizeMb("512m"), 512);
  assert.equal(parseSizeMb("64MiB"), 64);
  assert.equal(parseSizeMb("64MB"), 64);
  assert.equal(parseSizeMb("1G"), 1024);
  assert.equal(parseSizeMb("1 GiB"), 1024);
  assert.equal(parseSizeMb("1T"), 1024 * 1024);
  assert.equal(parseSizeMb("0.5G"), 512);
});

Deno.test("parseSizeMb() reads a bare number as MiB and rounds up", () => {
  assert.equal(parseSizeMb("100"), 100);
  assert.equal(parseSizeMb("1.2"), 2);
  assert.equal(parseSizeMb("1K"), 1);
  assert.equal(parseSizeMb("1536K"), 2);
});

Deno.test("parseSizeMb() refuses malformed, negative and zero sizes", () => {
  for (const text of ["", "abc", "1X", "-1M", "1Gi", "M", "1e3"]) {
    assert.throws(() => parseSizeMb(text), /^SyntaxError: Cannot parse size/);
  }
  for (const text of ["0", "0M", "0.0G"]) {
    assert.throws(() => parseSizeMb(text), /it must be positive/, text);
  }
});
