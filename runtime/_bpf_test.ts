import assert from "node:assert/strict";
import { BpfProgram, SECCOMP_DATA } from "./_bpf.ts";

/** One decoded `struct sock_filter`. */
function decode(bytes: Uint8Array, pc: number) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    code: view.getUint16(pc * 8, true),
    jt: view.getUint8(pc * 8 + 2),
    jf: view.getUint8(pc * 8 + 3),
    k: view.getUint32(pc * 8 + 4, true),
  };
}

Deno.test("SECCOMP_DATA gives the seccomp_data offsets of nr, arch and args", () => {
  assert.equal(SECCOMP_DATA.nr, 0);
  assert.equal(SECCOMP_DATA.arch, 4);
  // nr (4) + arch (4) + instruction_pointer (8), then 8 bytes per argument.
  assert.equal(SECCOMP_DATA.argLow(0), 16);
  assert.equal(SECCOMP_DATA.argLow(1), 24);
  assert.equal(SECCOMP_DATA.argLow(5), 56);
});

Deno.test("BpfProgram.assemble() encodes one load as 8 little-endian bytes", () => {
  const bytes = new BpfProgram().load(SECCOMP_DATA.arch).assemble();
  assert.deepEqual([...bytes], [0x20, 0x00, 0, 0, 4, 0, 0, 0]);
});

Deno.test("BpfProgram.assemble() encodes ret with the full 32-bit action", () => {
  const bytes = new BpfProgram().ret(0x80000000).ret(-1).assemble();
  assert.deepEqual([...bytes.subarray(0, 8)], [0x06, 0, 0, 0, 0, 0, 0, 0x80]);
  assert.deepEqual(decode(bytes, 1), {
    code: 0x06,
    jt: 0,
    jf: 0,
    k: 0xffffffff,
  });
});

Deno.test("BpfProgram.assemble() encodes eq, ge and set jumps with their opcodes", () => {
  const bytes = new BpfProgram()
    .jump("eq", 1, "end")
    .jump("ge", 0x40000000, "end")
    .jump("set", 0xc000003e, "end")
    .label("end")
    .ret(0)
    .assemble();
  assert.deepEqual(decode(bytes, 0), { code: 0x15, jt: 2, jf: 0, k: 1 });
  assert.deepEqual(decode(bytes, 1), {
    code: 0x35,
    jt: 1,
    jf: 0,
    k: 0x40000000,
  });
  assert.deepEqual(decode(bytes, 2), {
    code: 0x45,
    jt: 0,
    jf: 0,
    k: 0xc000003e,
  });
});

Deno.test("BpfProgram.assemble() resolves labels to forward offsets, null falls through", () => {
  const bytes = new BpfProgram()
    .load(SECCOMP_DATA.nr) // 0
    .jump("eq", 39, "yes", "no") // 1
    .ret(1) // 2
    .label("no")
    .ret(2) // 3
    .label("yes")
    .ret(3) // 4
    .assemble();
  assert.equal(bytes.length, 5 * 8, "labels emit no instruction");
  // Offsets count from the instruction after the jump.
  assert.deepEqual(decode(bytes, 1), { code: 0x15, jt: 2, jf: 1, k: 39 });

  const fallThrough = new BpfProgram().jump("eq", 1, null, "x").ret(0)
    .label("x").ret(1).assemble();
  assert.deepEqual(decode(fallThrough, 0), { code: 0x15, jt: 0, jf: 1, k: 1 });
});

Deno.test("BpfProgram.assemble() refuses a backward jump (classic BPF jumps forward only)", () => {
  const program = new BpfProgram().label("top").load(0).jump("eq", 1, "top")
    .ret(0);
  assert.throws(() => program.assemble(), (error: unknown) => {
    assert.ok(error instanceof RangeError);
    assert.match(error.message, /'top'/);
    assert.match(error.message, /out of range: current value is -2/);
    return true;
  });
});

Deno.test("BpfProgram.assemble() refuses a jump further than 255 instructions", () => {
  const build = (gap: number) => {
    const p = new BpfProgram().jump("eq", 1, "far");
    for (let i = 0; i < gap; i++) p.load(0);
    return p.label("far").ret(0);
  };
  // 255 instructions in between is the largest offset a u8 can hold.
  assert.equal(decode(build(255).assemble(), 0).jt, 255);
  assert.throws(
    () => build(256).assemble(),
    /Cannot assemble BPF jump to 'far' as its offset is out of range: current value is 256/,
  );
});

Deno.test("BpfProgram.assemble() refuses a jump to an unknown label", () => {
  const program = new BpfProgram().jump("eq", 1, "nowhere").ret(0);
  assert.throws(
    () => program.assemble(),
    /Cannot assemble BPF jump to unknown label 'nowhere'/,
  );
});

Deno.test("BpfProgram.label() refuses a duplicate label", () => {
  const program = new BpfProgram().label("allow").ret(0);
  assert.throws(
    () => program.label("allow"),
    /Cannot define BPF label 'allow' twice/,
  );
});

Deno.test("BpfProgram.assemble() refuses more than the kernel's 4096 instructions", () => {
  const program = new BpfProgram();
  for (let i = 0; i < 4096; i++) program.ret(0);
  assert.equal(program.assemble().length, 4096 * 8);
  program.ret(0);
  assert.throws(() => program.assemble(), RangeError);
});
