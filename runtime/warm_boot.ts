/**
 * Warm start: the sandboxed Deno process starts before its program exists.
 *
 * Deno's start (~20 ms here, most of a short run) does not depend on the
 * program, so every run's Deno starts with a tiny boot module as its
 * `--preload`: Deno runs a preload to completion before it even reads the
 * main module, and the boot blocks on stdin. The harness, once it has
 * bundled the program, writes `main.js` into the run's read-only code
 * directory (from the host side) and sends a header on stdin: a 4-byte
 * big-endian length and that much JSON (`{ "args": [...], "node": bool }`).
 * The boot reads exactly those bytes (the rest of stdin is the program's),
 * sets `Deno.args` (and `process.argv` when the program can see it) and
 * returns; Deno then loads `main.js` as a normal main module, so
 * `import.meta.main`, `Deno.mainModule`, error reports and the `load` event
 * are exactly those of a direct start. A sandbox can therefore start its
 * next run's process while idle and hand it the program in a millisecond.
 *
 * Nothing the boot does needs a permission (stdin is open, modules are
 * loaded, not read), so the audit trail is the program's alone. The
 * process is never reused: each one runs exactly one program.
 *
 * @module
 */

/** File name of the boot module in the run's code directory. */
export const BOOT_FILE = "boot.js";

/** File name the program is written to (beside the boot). */
export const PROGRAM_FILE = "main.js";

/** Exit code of a boot whose stdin closed before a header came (unused run). */
export const BOOT_ABANDONED = 125;

/** Largest header accepted (program arguments included). */
export const MAX_BOOT_HEADER = 1024 * 1024;

/** What the boot needs to start the program. */
export interface BootHeader {
  /** The program's `Deno.args`. */
  args: readonly string[];
  /**
   * Whether the program may use Node's `process` (then `process.argv` gets
   * the arguments too; loading Node compatibility costs ~15 ms, so it is
   * only done for programs that can observe it).
   */
  node: boolean;
}

/**
 * Encodes the header the boot waits for.
 *
 * @param header Arguments and whether to patch `process.argv`.
 * @returns Length-prefixed JSON.
 * @throws {RangeError} If the header is larger than {@linkcode MAX_BOOT_HEADER}.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeBootHeader } from "./warm_boot.ts";
 * const bytes = encodeBootHeader({ args: ["a"], node: false });
 * assert.equal(new DataView(bytes.buffer).getUint32(0), bytes.length - 4);
 * ```
 */
export function encodeBootHeader(header: BootHeader): Uint8Array<ArrayBuffer> {
  const json = new TextEncoder().encode(
    JSON.stringify({ args: header.args, node: header.node }),
  );
  if (json.length > MAX_BOOT_HEADER) {
    throw new RangeError(
      `Cannot start the program as its arguments take ${json.length} bytes: at most ${MAX_BOOT_HEADER} are allowed`,
    );
  }
  const bytes = new Uint8Array(4 + json.length);
  new DataView(bytes.buffer).setUint32(0, json.length);
  bytes.set(json, 4);
  return bytes;
}

/**
 * Whether bundled program text can observe Node's `process` (a `node:`
 * import, or the `process` global). A false positive costs ~15 ms; a false
 * negative would show the program an empty `process.argv`, so the test is
 * purely textual and errs on the side of true.
 *
 * @param js The bundled program.
 * @returns True when `process.argv` must be patched.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { usesNodeProcess } from "./warm_boot.ts";
 * assert.equal(usesNodeProcess("console.log(1)"), false);
 * assert.equal(usesNodeProcess('import p from "node:process"'), true);
 * ```
 */
export function usesNodeProcess(js: string): boolean {
  return /\bprocess\b|node:/.test(js);
}

/**
 * The boot module's source. It runs inside the sandbox (the untrusted
 * side), with the program's permissions: it can do nothing the program
 * could not, and trusts nothing but the header.
 */
export const BOOT_SOURCE =
  `// airlock warm boot (a --preload): waits for the run's header on stdin.
const readExactly = async (n) => {
  const buf = new Uint8Array(n);
  for (let got = 0; got < n;) {
    // A buffer of exactly the bytes still owed: nothing of the program's
    // stdin is consumed here.
    const r = await Deno.stdin.read(buf.subarray(got));
    if (r === null) Deno.exit(${BOOT_ABANDONED});
    got += r;
  }
  return buf;
};
const size = new DataView((await readExactly(4)).buffer).getUint32(0);
if (size > ${MAX_BOOT_HEADER}) Deno.exit(${BOOT_ABANDONED});
const header = JSON.parse(new TextDecoder().decode(await readExactly(size)));
// Assignable like the original (a program may replace Deno.args).
Object.defineProperty(Deno, "args", {
  get: () => header.args,
  set: (value) => Object.defineProperty(Deno, "args", { value, writable: true, enumerable: true, configurable: true }),
  enumerable: true,
  configurable: true,
});
if (header.node && header.args.length > 0) globalThis.process.argv.push(...header.args);
`;
