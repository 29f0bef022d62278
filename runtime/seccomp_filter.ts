/**
 * The seccomp filter every sandboxed process runs under, generated as classic
 * BPF and handed to bubblewrap with `--seccomp FD`.
 *
 * Namespaces hide the host; this filter shrinks the kernel surface the
 * sandbox can poke at. It is an allowlist at the ABI level (only the native
 * x86_64 ABI), an allowlist of socket families, and a denylist of syscalls
 * that no Deno program needs and that container escapes are made of.
 *
 * @module
 */

import { BpfProgram, SECCOMP_DATA } from "./_bpf.ts";

// <linux/seccomp.h> actions.
const RET_KILL_PROCESS = 0x80000000;
const RET_ALLOW = 0x7fff0000;
const RET_ERRNO = 0x00050000;

const EPERM = 1;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;

const AUDIT_ARCH_X86_64 = 0xc000003e;
/** Syscall numbers at or above this are the x32 ABI on x86_64. */
const X32_SYSCALL_BIT = 0x40000000;

/** A syscall the filter refuses, with the attack that motivates it. */
export interface DeniedSyscall {
  /** Kernel name of the syscall. */
  name: string;
  /** The x86_64 syscall number. */
  nr: number;
  /** The attack or escape this refusal closes. */
  why: string;
}

/**
 * Syscalls refused with `EPERM`, each with the reason. Deno never needs them
 * for a sandboxed program; each is a known container-escape or kernel-exploit
 * primitive.
 *
 * @example Usage
 * ```ts
 * import { DENIED_SYSCALLS } from "./seccomp_filter.ts";
 * console.log(DENIED_SYSCALLS.find((s) => s.name === "io_uring_setup")?.why);
 * ```
 */
export const DENIED_SYSCALLS: readonly DeniedSyscall[] = [
  // Namespace and mount manipulation: re-arranging the filesystem view or
  // entering another namespace undoes what bubblewrap set up.
  { name: "unshare", nr: 272, why: "nested namespaces re-grant capabilities" },
  { name: "setns", nr: 308, why: "joining another namespace" },
  { name: "mount", nr: 165, why: "re-mounting host paths" },
  { name: "umount2", nr: 166, why: "uncovering what a mount hides" },
  { name: "pivot_root", nr: 155, why: "changing the root filesystem" },
  { name: "chroot", nr: 161, why: "chroot-based escapes" },
  { name: "open_tree", nr: 428, why: "new mount API: cloning mounts" },
  { name: "move_mount", nr: 429, why: "new mount API: attaching mounts" },
  { name: "fsopen", nr: 430, why: "new mount API: creating filesystems" },
  { name: "fsconfig", nr: 431, why: "new mount API (CVE-2022-0185)" },
  { name: "fsmount", nr: 432, why: "new mount API" },
  { name: "fspick", nr: 433, why: "new mount API: reconfiguring mounts" },
  { name: "mount_setattr", nr: 442, why: "making read-only mounts writable" },
  // Looking into or controlling other processes.
  { name: "ptrace", nr: 101, why: "debugging other sandbox processes" },
  {
    name: "process_vm_readv",
    nr: 310,
    why: "reading another process's memory",
  },
  {
    name: "process_vm_writev",
    nr: 311,
    why: "writing another process's memory",
  },
  { name: "kcmp", nr: 312, why: "probing other processes' kernel objects" },
  { name: "pidfd_getfd", nr: 438, why: "stealing file descriptors" },
  {
    name: "open_by_handle_at",
    nr: 304,
    why: "opening host files by handle (the 'shocker' escape)",
  },
  { name: "name_to_handle_at", nr: 303, why: "the other half of 'shocker'" },
  // Kernel attack surface with a long CVE record.
  { name: "io_uring_setup", nr: 425, why: "io_uring bypasses seccomp checks" },
  { name: "io_uring_enter", nr: 426, why: "io_uring" },
  { name: "io_uring_register", nr: 427, why: "io_uring" },
  { name: "bpf", nr: 321, why: "eBPF verifier exploits" },
  { name: "perf_event_open", nr: 298, why: "perf exploits and side channels" },
  { name: "userfaultfd", nr: 323, why: "widens kernel race windows" },
  { name: "keyctl", nr: 250, why: "kernel keyring is not namespaced" },
  { name: "add_key", nr: 248, why: "kernel keyring" },
  { name: "request_key", nr: 249, why: "kernel keyring" },
  { name: "kexec_load", nr: 246, why: "replacing the kernel" },
  { name: "kexec_file_load", nr: 320, why: "replacing the kernel" },
  { name: "init_module", nr: 175, why: "loading kernel modules" },
  { name: "finit_module", nr: 313, why: "loading kernel modules" },
  { name: "delete_module", nr: 176, why: "unloading kernel modules" },
  { name: "fanotify_init", nr: 300, why: "watching host filesystems" },
  { name: "lookup_dcookie", nr: 212, why: "kernel internals" },
  { name: "uselib", nr: 134, why: "obsolete loader path" },
  { name: "ustat", nr: 136, why: "obsolete" },
  { name: "sysfs", nr: 139, why: "obsolete" },
  { name: "_sysctl", nr: 156, why: "obsolete" },
  { name: "vhangup", nr: 153, why: "terminal hijacking" },
  { name: "modify_ldt", nr: 154, why: "segment tricks used by exploits" },
  { name: "iopl", nr: 172, why: "raw I/O port access" },
  { name: "ioperm", nr: 173, why: "raw I/O port access" },
  // Host-wide state that a sandbox must not change.
  { name: "reboot", nr: 169, why: "host-wide" },
  { name: "swapon", nr: 167, why: "host-wide" },
  { name: "swapoff", nr: 168, why: "host-wide" },
  { name: "syslog", nr: 103, why: "reading the kernel log" },
  { name: "acct", nr: 163, why: "host-wide process accounting" },
  { name: "settimeofday", nr: 164, why: "host clock" },
  { name: "clock_settime", nr: 227, why: "host clock" },
  { name: "clock_adjtime", nr: 305, why: "host clock" },
  { name: "adjtimex", nr: 159, why: "host clock" },
  { name: "quotactl", nr: 179, why: "host quotas" },
  { name: "quotactl_fd", nr: 443, why: "host quotas" },
  { name: "mbind", nr: 237, why: "NUMA policy tricks" },
  { name: "set_mempolicy", nr: 238, why: "NUMA policy tricks" },
  { name: "migrate_pages", nr: 256, why: "moving other processes' pages" },
  { name: "move_pages", nr: 279, why: "moving other processes' pages" },
];

/** Socket families a sandboxed program may open. */
export const ALLOWED_SOCKET_FAMILIES: Readonly<Record<string, number>> = {
  // AF_UNIX: the in-sandbox bridge reaches the injector's socket; only sockets
  // we bind-mount exist, and abstract sockets are per network namespace.
  AF_UNIX: 1,
  // AF_INET/AF_INET6: loopback inside the empty network namespace (the proxy).
  AF_INET: 2,
  AF_INET6: 10,
  // AF_NETLINK: glibc's getaddrinfo asks for interfaces; the namespace is empty.
  AF_NETLINK: 16,
};
// Everything else is refused: above all AF_VSOCK (40), which a network
// namespace does NOT isolate (CID 2 is the hypervisor host on these VMs), then
// AF_PACKET, AF_ALG, AF_KEY, AF_TIPC, AF_RDS, AF_XDP and friends.

// clone(2) flags that create namespaces. A nested user namespace hands the
// process a full capability set over fresh namespaces: kernel attack surface.
const CLONE_NAMESPACE_FLAGS = 0x00000080 | // CLONE_NEWTIME
  0x00020000 | // CLONE_NEWNS
  0x02000000 | // CLONE_NEWCGROUP
  0x04000000 | // CLONE_NEWUTS
  0x08000000 | // CLONE_NEWIPC
  0x10000000 | // CLONE_NEWUSER
  0x20000000 | // CLONE_NEWPID
  0x40000000; // CLONE_NEWNET

const NR = {
  socket: 41,
  socketpair: 53,
  clone: 56,
  clone3: 435,
  ioctl: 16,
  personality: 135,
} as const;

// ioctl requests that push bytes into the controlling terminal's input queue
// (terminal injection into the harness's shell).
const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;

/**
 * Builds the sandbox seccomp filter for x86_64 as `struct sock_filter[]`
 * bytes, ready to be written to the file descriptor given to
 * `bwrap --seccomp`.
 *
 * @param arch The CPU architecture, as `Deno.build.arch` spells it.
 * @returns The BPF program.
 * @throws {Error} On an architecture with no syscall table: a filter we cannot
 *   build must stop the run, never be skipped.
 *
 * @example Usage
 * ```ts
 * import { buildSeccompFilter } from "./seccomp_filter.ts";
 * const bpf = buildSeccompFilter("x86_64");
 * console.log(bpf.length % 8 === 0);
 * ```
 */
export function buildSeccompFilter(arch: string = Deno.build.arch): Uint8Array {
  if (arch !== "x86_64") {
    throw new Error(
      `Cannot build the seccomp filter for architecture '${arch}': only x86_64 has a syscall table; refusing to run without a filter`,
    );
  }
  const p = new BpfProgram();
  // 32-bit (int 0x80) syscalls use another table; a filter written for the
  // 64-bit numbers would check the wrong calls. Kill on any foreign ABI.
  p.load(SECCOMP_DATA.arch).jump("eq", AUDIT_ARCH_X86_64, null, "kill");
  p.load(SECCOMP_DATA.nr);
  // x32 syscalls share the arch tag but carry bit 30: same reasoning.
  p.jump("ge", X32_SYSCALL_BIT, "enosys");
  for (const s of DENIED_SYSCALLS) p.jump("eq", s.nr, "eperm");
  // clone3 passes its flags in memory that BPF cannot read; ENOSYS makes
  // glibc fall back to clone(2), whose flags we can check.
  p.jump("eq", NR.clone3, "enosys");
  p.jump("eq", NR.clone, "check_clone");
  p.jump("eq", NR.socket, "check_family");
  p.jump("eq", NR.socketpair, "check_family");
  p.jump("eq", NR.ioctl, "check_ioctl");
  p.jump("eq", NR.personality, "check_personality");
  p.ret(RET_ALLOW);

  p.label("check_clone").load(SECCOMP_DATA.argLow(0));
  p.jump("set", CLONE_NAMESPACE_FLAGS, "eperm");
  p.ret(RET_ALLOW);

  p.label("check_family").load(SECCOMP_DATA.argLow(0));
  for (const family of Object.values(ALLOWED_SOCKET_FAMILIES)) {
    p.jump("eq", family, "allow");
  }
  p.ret(RET_ERRNO | EAFNOSUPPORT);

  p.label("check_ioctl").load(SECCOMP_DATA.argLow(1));
  p.jump("eq", TIOCSTI, "eperm");
  p.jump("eq", TIOCLINUX, "eperm");
  p.ret(RET_ALLOW);

  // Only the default persona and the query value: READ_IMPLIES_EXEC and
  // ADDR_NO_RANDOMIZE would weaken W^X and ASLR for exploits.
  p.label("check_personality").load(SECCOMP_DATA.argLow(0));
  p.jump("eq", 0, "allow");
  p.jump("eq", 0xffffffff, "allow");
  p.ret(RET_ERRNO | EPERM);

  p.label("allow").ret(RET_ALLOW);
  p.label("eperm").ret(RET_ERRNO | EPERM);
  p.label("enosys").ret(RET_ERRNO | ENOSYS);
  p.label("kill").ret(RET_KILL_PROCESS);
  return p.assemble();
}
