/**
 * A minimal classic-BPF assembler for seccomp filters: loads of the
 * `seccomp_data` words, conditional jumps to named labels and returns. It
 * exists so the filter in `seccomp_filter.ts` reads as a list of decisions,
 * not as hand-counted jump offsets (a miscounted offset silently allows a
 * syscall).
 *
 * @module
 */

// Opcodes from <linux/filter.h> / <linux/bpf_common.h>.
const BPF_LD_W_ABS = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGE_K = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const BPF_JSET_K = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const BPF_RET_K = 0x06; // BPF_RET | BPF_K

/** Offsets into `struct seccomp_data` (little-endian x86_64 / aarch64). */
export const SECCOMP_DATA = {
  nr: 0,
  arch: 4,
  /** Low 32 bits of syscall argument `i` (0-based). */
  argLow: (i: number): number => 16 + 8 * i,
} as const;

type Instruction =
  | { kind: "load"; offset: number }
  | { kind: "ret"; value: number }
  | { kind: "label"; name: string }
  | {
    kind: "jump";
    op: "eq" | "ge" | "set";
    k: number;
    ifTrue: string | null;
    ifFalse: string | null;
  };

/** Builds a BPF program from labelled instructions. */
export class BpfProgram {
  #code: Instruction[] = [];

  /** Loads a 32-bit word of `seccomp_data` into the accumulator. */
  load(offset: number): this {
    this.#code.push({ kind: "load", offset });
    return this;
  }

  /** Returns `value` (a `SECCOMP_RET_*` action) from the filter. */
  ret(value: number): this {
    this.#code.push({ kind: "ret", value: value >>> 0 });
    return this;
  }

  /** Marks the next instruction with `name`. */
  label(name: string): this {
    if (this.#code.some((i) => i.kind === "label" && i.name === name)) {
      throw new Error(`Cannot define BPF label '${name}' twice`);
    }
    this.#code.push({ kind: "label", name });
    return this;
  }

  /**
   * Jumps to `ifTrue` when the comparison holds, else to `ifFalse`; `null`
   * means "fall through to the next instruction".
   */
  jump(
    op: "eq" | "ge" | "set",
    k: number,
    ifTrue: string | null,
    ifFalse: string | null = null,
  ): this {
    this.#code.push({ kind: "jump", op, k: k >>> 0, ifTrue, ifFalse });
    return this;
  }

  /** Resolves labels and encodes `struct sock_filter[]` (8 bytes each). */
  assemble(): Uint8Array {
    const real = this.#code.filter(
      (i): i is Exclude<Instruction, { kind: "label" }> => i.kind !== "label",
    );
    const labels = new Map<string, number>();
    let index = 0;
    for (const inst of this.#code) {
      if (inst.kind === "label") labels.set(inst.name, index);
      else index++;
    }
    if (real.length > 4096) {
      throw new RangeError(
        `Cannot assemble BPF program as it has ${real.length} instructions: the kernel limit is 4096`,
      );
    }
    const out = new Uint8Array(real.length * 8);
    const view = new DataView(out.buffer);
    real.forEach((inst, pc) => {
      let code = 0, jt = 0, jf = 0, k = 0;
      switch (inst.kind) {
        case "load":
          code = BPF_LD_W_ABS;
          k = inst.offset;
          break;
        case "ret":
          code = BPF_RET_K;
          k = inst.value;
          break;
        case "jump": {
          code = inst.op === "eq"
            ? BPF_JEQ_K
            : inst.op === "ge"
            ? BPF_JGE_K
            : BPF_JSET_K;
          k = inst.k;
          jt = relative(labels, inst.ifTrue, pc);
          jf = relative(labels, inst.ifFalse, pc);
          break;
        }
      }
      view.setUint16(pc * 8, code, true);
      view.setUint8(pc * 8 + 2, jt);
      view.setUint8(pc * 8 + 3, jf);
      view.setUint32(pc * 8 + 4, k, true);
    });
    return out;
  }
}

function relative(
  labels: Map<string, number>,
  target: string | null,
  pc: number,
): number {
  if (target === null) return 0;
  const at = labels.get(target);
  if (at === undefined) {
    throw new Error(`Cannot assemble BPF jump to unknown label '${target}'`);
  }
  const offset = at - pc - 1;
  // Classic BPF only jumps forward, by at most 255 instructions.
  if (offset < 0 || offset > 255) {
    throw new RangeError(
      `Cannot assemble BPF jump to '${target}' as its offset is out of range: current value is ${offset}`,
    );
  }
  return offset;
}
