import assert from "node:assert/strict";
import {
  ALLOWED_SOCKET_FAMILIES,
  buildSeccompFilter,
  DENIED_SYSCALLS,
} from "./seccomp_filter.ts";

const RET_KILL_PROCESS = 0x80000000;
const RET_ALLOW = 0x7fff0000;
const RET_ERRNO = 0x00050000;
const EPERM = 1;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const AUDIT_ARCH_I386 = 0x40000003;

const filter = buildSeccompFilter("x86_64");

/**
 * Runs the filter the way the kernel does for one syscall (only the opcodes
 * the assembler emits), so every decision can be checked without a kernel.
 */
function evaluate(
  nr: number,
  args: readonly number[] = [],
  arch = AUDIT_ARCH_X86_64,
): number {
  const data = new DataView(new ArrayBuffer(64));
  data.setUint32(0, nr >>> 0, true);
  data.setUint32(4, arch, true);
  args.forEach((a, i) => data.setUint32(16 + 8 * i, a >>> 0, true));
  const code = new DataView(filter.buffer, filter.byteOffset, filter.length);
  let acc = 0;
  for (let pc = 0; pc < filter.length / 8;) {
    const op = code.getUint16(pc * 8, true);
    const jt = code.getUint8(pc * 8 + 2);
    const jf = code.getUint8(pc * 8 + 3);
    const k = code.getUint32(pc * 8 + 4, true);
    switch (op) {
      case 0x20: // ld w abs
        acc = data.getUint32(k, true);
        pc++;
        break;
      case 0x06: // ret k
        return k;
      case 0x15: // jeq k
        pc += 1 + (acc === k ? jt : jf);
        break;
      case 0x35: // jge k
        pc += 1 + (acc >= k ? jt : jf);
        break;
      case 0x45: // jset k
        pc += 1 + ((acc & k) !== 0 ? jt : jf);
        break;
      default:
        throw new Error(`unexpected opcode ${op} at ${pc}`);
    }
  }
  throw new Error("filter ran off its end");
}

Deno.test("buildSeccompFilter() emits whole sock_filter instructions", () => {
  assert.ok(filter.length > 0);
  assert.equal(filter.length % 8, 0);
  assert.ok(filter.length / 8 <= 4096);
});

Deno.test("buildSeccompFilter() starts by checking the architecture", () => {
  const view = new DataView(filter.buffer, filter.byteOffset, filter.length);
  // ld [4] (seccomp_data.arch)
  assert.equal(view.getUint16(0, true), 0x20);
  assert.equal(view.getUint32(4, true), 4);
  // jeq AUDIT_ARCH_X86_64, fall through, else jump to a kill.
  assert.equal(view.getUint16(8, true), 0x15);
  assert.equal(view.getUint32(12, true), AUDIT_ARCH_X86_64);
  assert.equal(view.getUint8(10), 0);
  const killAt = 2 + view.getUint8(11);
  assert.equal(view.getUint16(killAt * 8, true), 0x06);
  assert.equal(view.getUint32(killAt * 8 + 4, true), RET_KILL_PROCESS);
});

Deno.test("buildSeccompFilter() kills any process using a foreign ABI (i386)", () => {
  // getpid on i386 is 20; any number at all must be killed.
  assert.equal(evaluate(20, [], AUDIT_ARCH_I386), RET_KILL_PROCESS);
  assert.equal(evaluate(272, [], AUDIT_ARCH_I386), RET_KILL_PROCESS);
});

Deno.test("buildSeccompFilter() answers x32 syscalls with ENOSYS", () => {
  assert.equal(evaluate(0x40000000 | 39), RET_ERRNO | ENOSYS);
  assert.equal(evaluate(0x40000000 | 272), RET_ERRNO | ENOSYS);
});

Deno.test("buildSeccompFilter() refuses every denied syscall with EPERM", () => {
  assert.ok(DENIED_SYSCALLS.length > 0);
  for (const { name, nr } of DENIED_SYSCALLS) {
    assert.equal(evaluate(nr), RET_ERRNO | EPERM, name);
  }
});

Deno.test("buildSeccompFilter() refuses the escape primitives by their x86_64 numbers", () => {
  // Independent of DENIED_SYSCALLS: a wrong number there must fail here.
  const numbers: Record<string, number> = {
    unshare: 272,
    setns: 308,
    mount: 165,
    pivot_root: 155,
    ptrace: 101,
    process_vm_readv: 310,
    process_vm_writev: 311,
    open_by_handle_at: 304,
    io_uring_setup: 425,
    io_uring_enter: 426,
    io_uring_register: 427,
    bpf: 321,
    perf_event_open: 298,
    userfaultfd: 323,
    keyctl: 250,
    add_key: 248,
    init_module: 175,
    finit_module: 313,
    kexec_load: 246,
    fsopen: 430,
    mount_setattr: 442,
    pidfd_getfd: 438,
  };
  for (const [name, nr] of Object.entries(numbers)) {
    assert.equal(evaluate(nr), RET_ERRNO | EPERM, name);
    assert.equal(
      DENIED_SYSCALLS.find((s) => s.name === name)?.nr,
      nr,
      `DENIED_SYSCALLS entry for ${name}`,
    );
  }
});

Deno.test("buildSeccompFilter() allows ordinary syscalls (read, write, getpid, exit)", () => {
  for (const nr of [0, 1, 39, 60, 231]) {
    assert.equal(evaluate(nr), RET_ALLOW, `syscall ${nr}`);
  }
});

Deno.test("buildSeccompFilter() refuses clone with any namespace flag", () => {
  const SIGCHLD = 17;
  const CLONE_THREAD_FLAGS = 0x003d0f00; // what pthread_create passes
  assert.equal(evaluate(56, [SIGCHLD]), RET_ALLOW);
  assert.equal(evaluate(56, [CLONE_THREAD_FLAGS]), RET_ALLOW);
  for (
    const flag of [
      0x80,
      0x20000,
      0x2000000,
      0x4000000,
      0x8000000,
      0x10000000,
      0x20000000,
      0x40000000,
    ]
  ) {
    assert.equal(evaluate(56, [flag | SIGCHLD]), RET_ERRNO | EPERM, `${flag}`);
  }
});

Deno.test("buildSeccompFilter() answers clone3 with ENOSYS (its flags are unreadable)", () => {
  assert.equal(evaluate(435), RET_ERRNO | ENOSYS);
});

Deno.test("buildSeccompFilter() allows only the listed socket families", () => {
  for (const [name, family] of Object.entries(ALLOWED_SOCKET_FAMILIES)) {
    assert.equal(evaluate(41, [family]), RET_ALLOW, name);
    assert.equal(evaluate(53, [family]), RET_ALLOW, `socketpair ${name}`);
  }
  // AF_VSOCK, AF_PACKET, AF_ALG, AF_KEY, AF_TIPC, AF_RDS, AF_XDP.
  for (const family of [40, 17, 38, 15, 30, 21, 44]) {
    assert.equal(evaluate(41, [family]), RET_ERRNO | EAFNOSUPPORT, `${family}`);
    assert.equal(evaluate(53, [family]), RET_ERRNO | EAFNOSUPPORT, `${family}`);
  }
});

Deno.test("buildSeccompFilter() refuses terminal injection ioctls (TIOCSTI, TIOCLINUX)", () => {
  assert.equal(evaluate(16, [0, 0x5412]), RET_ERRNO | EPERM);
  assert.equal(evaluate(16, [0, 0x541c]), RET_ERRNO | EPERM);
  assert.equal(evaluate(16, [0, 0x5401]), RET_ALLOW); // TCGETS
});

Deno.test("buildSeccompFilter() allows only the default personality", () => {
  assert.equal(evaluate(135, [0]), RET_ALLOW);
  assert.equal(evaluate(135, [0xffffffff]), RET_ALLOW);
  // READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE.
  assert.equal(evaluate(135, [0x0400000]), RET_ERRNO | EPERM);
  assert.equal(evaluate(135, [0x0040000]), RET_ERRNO | EPERM);
});

Deno.test("buildSeccompFilter() refuses to build for an architecture other than x86_64", () => {
  for (const arch of ["aarch64", "riscv64", ""]) {
    assert.throws(
      () => buildSeccompFilter(arch),
      (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.match(error.message, new RegExp(`architecture '${arch}'`));
        assert.match(error.message, /refusing to run without a filter/);
        return true;
      },
    );
  }
});

// ---------------------------------------------------------------------------
// The filter loaded by a real kernel: a python3 probe inside bwrap calls the
// syscalls through libc.syscall and reports [return value, errno] for each.

async function works(command: string, args: string[]): Promise<boolean> {
  try {
    const out = await new Deno.Command(command, {
      args,
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

const hasPython3 = await works("python3", ["-c", "import ctypes"]);
const hasBwrap = await works("bwrap", ["--version"]);
const ignoreKernel = !hasPython3 || !hasBwrap;

const PROBE_PRELUDE = `
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return [r, ctypes.get_errno()]
`;

const PROBE = PROBE_PRELUDE + `

def close_if_fd(r):
    if r[0] >= 0:
        os.close(r[0])
    return r

def clone_newuser():
    # clone(CLONE_NEWUSER | SIGCHLD, no new stack): fork-like if allowed.
    r = call(56, 0x10000000 | 17, 0, 0, 0, 0)
    if r[0] == 0:
        os._exit(0)
    if r[0] > 0:
        os.waitpid(r[0], 0)
    return r

def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(42)
    return [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), 0]

pair = (ctypes.c_int * 2)()
byte = ctypes.c_char(b"x")
out = {
    "io_uring_setup": call(425, 1, 0),
    "unshare_newuser": call(272, 0x10000000),
    "setns": call(308, -1, 0),
    "mount": call(165, 0, 0, 0, 0, 0),
    "keyctl": call(250, 0, -3, 0),
    "bpf": call(321, 0, 0, 0),
    "perf_event_open": call(298, 0, 0, -1, -1, 0),
    "userfaultfd": call(323, 0),
    "ptrace": call(101, 0, 0, 0, 0),
    "process_vm_readv": call(310, os.getpid(), 0, 0, 0, 0, 0),
    "clone_newuser": clone_newuser(),
    "clone3": call(435, 0, 0),
    "x32_getpid": call(0x40000000 | 39),
    "socket_vsock": close_if_fd(call(41, 40, 1, 0)),
    "socket_packet": close_if_fd(call(41, 17, 3, 0)),
    "socket_alg": close_if_fd(call(41, 38, 5, 0)),
    "socketpair_vsock": call(53, 40, 1, 0, ctypes.addressof(pair)),
    "socket_inet": close_if_fd(call(41, 2, 1, 0)),
    "socket_unix": close_if_fd(call(41, 1, 1, 0)),
    "fork": fork(),
    "ioctl_tiocsti": call(16, 0, 0x5412, ctypes.addressof(byte)),
    "personality_read_implies_exec": call(135, 0x0400000),
}
print(json.dumps(out))
`;

type ProbeResult = Record<string, [number, number]>;

/** Runs a probe script in bwrap, with or without the filter on fd 3. */
async function runProbe(
  script: string,
  withFilter: boolean,
): Promise<ProbeResult> {
  const path = await Deno.makeTempFile({ prefix: "airlock-seccomp-" });
  try {
    await Deno.writeFile(path, filter);
    const out = await new Deno.Command("sh", {
      args: [
        "-c",
        'exec 3<"$0" && exec "$@"',
        path,
        "bwrap",
        "--unshare-all",
        "--unshare-user",
        "--die-with-parent",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        ...(withFilter ? ["--seccomp", "3"] : []),
        "python3",
        "-c",
        script,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, `probe failed (${out.code}): ${stderr}`);
    return JSON.parse(new TextDecoder().decode(out.stdout));
  } finally {
    await Deno.remove(path);
  }
}

let filtered: Promise<ProbeResult> | undefined;
/** The filtered probe, run once and shared by the tests below. */
function probe(): Promise<ProbeResult> {
  filtered ??= runProbe(PROBE, true);
  return filtered;
}

function assertErrno(result: ProbeResult, name: string, errno: number) {
  assert.deepEqual(result[name], [-1, errno], name);
}

Deno.test({
  name: "the probe is sensitive: without the filter setns(-1) fails with EBADF",
  ignore: ignoreKernel,
  async fn() {
    // The full probe cannot run unfiltered (its unshare succeeds), so the
    // control calls only harmless syscalls whose errno the filter changes.
    const control = PROBE_PRELUDE + `
print(json.dumps({"setns": call(308, -1, 0), "clone3": call(435, 0, 0)}))
`;
    const result = await runProbe(control, false);
    assertErrno(result, "setns", 9); // EBADF
    assert.notEqual(result.clone3?.[1], ENOSYS);
  },
});

Deno.test({
  name:
    "buildSeccompFilter() in the kernel: io_uring, namespaces, mount, keyring, bpf, perf, userfaultfd, ptrace, process_vm_readv give EPERM",
  ignore: ignoreKernel,
  async fn() {
    const result = await probe();
    for (
      const name of [
        "io_uring_setup",
        "unshare_newuser",
        "setns",
        "mount",
        "keyctl",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "ptrace",
        "process_vm_readv",
      ]
    ) {
      assertErrno(result, name, EPERM);
    }
  },
});

Deno.test({
  name:
    "buildSeccompFilter() in the kernel: clone with CLONE_NEWUSER gives EPERM",
  ignore: ignoreKernel,
  async fn() {
    assertErrno(await probe(), "clone_newuser", EPERM);
  },
});

Deno.test({
  name:
    "buildSeccompFilter() in the kernel: clone3 gives ENOSYS, x32 syscalls ENOSYS",
  ignore: ignoreKernel,
  async fn() {
    const result = await probe();
    assertErrno(result, "clone3", ENOSYS);
    assertErrno(result, "x32_getpid", ENOSYS);
  },
});

Deno.test({
  name:
    "buildSeccompFilter() in the kernel: AF_VSOCK, AF_PACKET and AF_ALG sockets give EAFNOSUPPORT",
  ignore: ignoreKernel,
  async fn() {
    const result = await probe();
    assertErrno(result, "socket_vsock", EAFNOSUPPORT);
    assertErrno(result, "socket_packet", EAFNOSUPPORT);
    assertErrno(result, "socket_alg", EAFNOSUPPORT);
    assertErrno(result, "socketpair_vsock", EAFNOSUPPORT);
  },
});

Deno.test({
  name: "buildSeccompFilter() in the kernel: AF_INET and AF_UNIX sockets work",
  ignore: ignoreKernel,
  async fn() {
    const result = await probe();
    assert.ok(result.socket_inet![0] >= 0, `AF_INET: ${result.socket_inet}`);
    assert.ok(result.socket_unix![0] >= 0, `AF_UNIX: ${result.socket_unix}`);
  },
});

Deno.test({
  name: "buildSeccompFilter() in the kernel: a plain fork still works",
  ignore: ignoreKernel,
  async fn() {
    assert.deepEqual((await probe()).fork, [42, 0]);
  },
});

Deno.test({
  name:
    "buildSeccompFilter() in the kernel: ioctl TIOCSTI and personality(READ_IMPLIES_EXEC) give EPERM",
  ignore: ignoreKernel,
  async fn() {
    const result = await probe();
    assertErrno(result, "ioctl_tiocsti", EPERM);
    assertErrno(result, "personality_read_implies_exec", EPERM);
  },
});
