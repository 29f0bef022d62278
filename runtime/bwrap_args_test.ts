import assert from "node:assert/strict";
import { buildBwrapArgs, type BwrapOptions, type Mount } from "./bwrap_args.ts";

function options(overrides: Partial<BwrapOptions> = {}): BwrapOptions {
  return {
    identity: { uid: 65534, gid: 65534 },
    mounts: [],
    env: {},
    cwd: "/",
    seccompFd: 3,
    command: ["/usr/bin/deno", "run", "/airlock/main.js"],
    ...overrides,
  };
}

/** The bwrap options, i.e. everything before the `--` separator. */
function optionPart(args: string[]): string[] {
  const seccomp = args.indexOf("--seccomp");
  assert.equal(args[seccomp + 2], "--");
  return args.slice(0, seccomp + 2);
}

const FULL: BwrapOptions = options({
  hostname: "box",
  mounts: [
    { kind: "ro-bind", source: "/usr/bin/deno", dest: "/usr/bin/deno" },
    { kind: "bind", source: "/tmp/scratch", dest: "/scratch" },
    { kind: "tmpfs", dest: "/tmp", sizeBytes: 1024, mode: 0o1777 },
    { kind: "proc", dest: "/proc" },
    { kind: "dev", dest: "/dev" },
    { kind: "dir", dest: "/run", mode: 0o755 },
    { kind: "symlink", target: "usr/lib", dest: "/lib" },
    { kind: "remount-ro", dest: "/" },
  ],
  env: { NO_COLOR: "1", DENO_DIR: "/tmp/.deno" },
  // A command that looks like bwrap options must stay the command's.
  command: ["/bin/prog", "--bind", "/", "/", "--"],
});

Deno.test("buildBwrapArgs() always unshares every namespace and insists on a user namespace", () => {
  for (const opts of [options(), FULL]) {
    const args = optionPart(buildBwrapArgs(opts));
    assert.ok(args.includes("--unshare-all"));
    assert.ok(args.includes("--unshare-user"));
  }
});

Deno.test("buildBwrapArgs() always starts a new session, dies with its parent and drops every capability", () => {
  for (const opts of [options(), FULL]) {
    const args = optionPart(buildBwrapArgs(opts));
    assert.ok(args.includes("--new-session"));
    assert.ok(args.includes("--die-with-parent"));
    const capDrop = args.indexOf("--cap-drop");
    assert.ok(capDrop >= 0);
    assert.equal(args[capDrop + 1], "ALL");
    assert.ok(!args.includes("--cap-add"));
  }
});

Deno.test("buildBwrapArgs() always clears the environment before setting variables", () => {
  const args = buildBwrapArgs(FULL);
  const clear = args.indexOf("--clearenv");
  assert.ok(clear >= 0);
  assert.ok(clear < args.indexOf("--setenv"));
  // Exactly the variables asked for, nothing of the harness's.
  const set = args.flatMap((a, i) => a === "--setenv" ? [args[i + 1]] : []);
  assert.deepEqual(set.sort(), ["DENO_DIR", "NO_COLOR"]);
});

Deno.test("buildBwrapArgs() loads the seccomp filter last, right before '--'", () => {
  for (const opts of [options({ seccompFd: 7 }), { ...FULL, seccompFd: 7 }]) {
    const args = buildBwrapArgs(opts);
    const seccomp = args.indexOf("--seccomp");
    assert.equal(args.lastIndexOf("--seccomp"), seccomp, "only one filter");
    assert.deepEqual(args.slice(seccomp, seccomp + 3), [
      "--seccomp",
      "7",
      "--",
    ]);
    assert.deepEqual(args.slice(seccomp + 3), [...opts.command]);
  }
});

Deno.test("buildBwrapArgs() places the isolation flags before any mount", () => {
  const args = buildBwrapArgs(FULL);
  const firstMount = args.indexOf("--ro-bind");
  for (
    const flag of [
      "--unshare-all",
      "--unshare-user",
      "--new-session",
      "--die-with-parent",
      "--cap-drop",
      "--clearenv",
    ]
  ) {
    assert.ok(args.indexOf(flag) < firstMount, flag);
  }
});

Deno.test("buildBwrapArgs() sets the identity, hostname and cwd asked for", () => {
  const args = buildBwrapArgs(
    options({ identity: { uid: 1000, gid: 1001 }, cwd: "/scratch" }),
  );
  assert.deepEqual(
    args.slice(args.indexOf("--uid"), args.indexOf("--uid") + 2),
    [
      "--uid",
      "1000",
    ],
  );
  assert.equal(args[args.indexOf("--gid") + 1], "1001");
  assert.equal(args[args.indexOf("--hostname") + 1], "sandbox");
  assert.equal(args[args.indexOf("--chdir") + 1], "/scratch");
  assert.equal(
    buildBwrapArgs(FULL)[buildBwrapArgs(FULL).indexOf("--hostname") + 1],
    "box",
  );
});

Deno.test("buildBwrapArgs() translates each mount kind in order", () => {
  const args = optionPart(buildBwrapArgs(FULL));
  const mounts = args.slice(
    args.indexOf("--ro-bind"),
    args.indexOf("--setenv"),
  );
  assert.deepEqual(mounts, [
    "--ro-bind",
    "/usr/bin/deno",
    "/usr/bin/deno",
    "--bind",
    "/tmp/scratch",
    "/scratch",
    "--perms",
    "1777",
    "--size",
    "1024",
    "--tmpfs",
    "/tmp",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--perms",
    "0755",
    "--dir",
    "/run",
    "--symlink",
    "usr/lib",
    "/lib",
    "--remount-ro",
    "/",
  ]);
});

Deno.test("buildBwrapArgs() bounds every tmpfs with --size (and --perms) right before --tmpfs", () => {
  const args = buildBwrapArgs(options({
    mounts: [
      { kind: "tmpfs", dest: "/a", sizeBytes: 4096 },
      { kind: "tmpfs", dest: "/b", sizeBytes: 8192, mode: 0o700 },
    ],
  }));
  const a = args.indexOf("/a");
  assert.deepEqual(args.slice(a - 3, a + 1), [
    "--size",
    "4096",
    "--tmpfs",
    "/a",
  ]);
  const b = args.indexOf("/b");
  assert.deepEqual(args.slice(b - 5, b + 1), [
    "--perms",
    "0700",
    "--size",
    "8192",
    "--tmpfs",
    "/b",
  ]);
});

Deno.test("buildBwrapArgs() refuses an unbounded or invalid tmpfs size and mode", () => {
  for (const sizeBytes of [0, -1, 1.5, NaN, Infinity]) {
    assert.throws(
      () =>
        buildBwrapArgs(options({
          mounts: [{ kind: "tmpfs", dest: "/tmp", sizeBytes }],
        })),
      RangeError,
      `size ${sizeBytes}`,
    );
  }
  for (const mode of [-1, 0o10000, 1.5]) {
    assert.throws(
      () =>
        buildBwrapArgs(
          options({ mounts: [{ kind: "dir", dest: "/d", mode }] }),
        ),
      /Cannot set mount mode/,
    );
  }
});

Deno.test("buildBwrapArgs() refuses relative paths in sources, destinations and cwd", () => {
  const cases: [string, Partial<BwrapOptions>][] = [
    ["source", { mounts: [{ kind: "ro-bind", source: "etc", dest: "/etc" }] }],
    ["dest", { mounts: [{ kind: "bind", source: "/etc", dest: "etc" }] }],
    ["dest", { mounts: [{ kind: "proc", dest: "proc" }] }],
    ["cwd", { cwd: "scratch" }],
    ["cwd", { cwd: "" }],
  ];
  for (const [what, overrides] of cases) {
    assert.throws(
      () => buildBwrapArgs(options(overrides)),
      (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, new RegExp(`${what} path .* not absolute`));
        return true;
      },
    );
  }
});

Deno.test("buildBwrapArgs() refuses '..' in any path (a mount cannot walk out of its directory)", () => {
  const cases: Partial<BwrapOptions>[] = [
    { mounts: [{ kind: "ro-bind", source: "/srv/../etc", dest: "/x" }] },
    { mounts: [{ kind: "bind", source: "/srv", dest: "/inputs/../etc" }] },
    { mounts: [{ kind: "tmpfs", dest: "/tmp/..", sizeBytes: 1 }] },
    { cwd: "/scratch/../.." },
  ];
  for (const overrides of cases) {
    assert.throws(() => buildBwrapArgs(options(overrides)), /contains '\.\.'/);
  }
  // A name that merely contains dots is fine.
  const args = buildBwrapArgs(options({
    mounts: [{ kind: "ro-bind", source: "/srv/..data", dest: "/x..y" }],
  }));
  assert.ok(args.includes("/srv/..data"));
});

Deno.test("buildBwrapArgs() refuses NUL and line breaks in paths, env values and argv", () => {
  const cases: Partial<BwrapOptions>[] = [
    { mounts: [{ kind: "ro-bind", source: "/a\0b", dest: "/x" }] },
    { mounts: [{ kind: "ro-bind", source: "/a", dest: "/x\ny" }] },
    { mounts: [{ kind: "symlink", target: "a\nb", dest: "/l" }] },
    { env: { A: "1\n2" } },
    { env: { A: "1\r2" } },
    { env: { A: "1\0" } },
    { cwd: "/a\nb" },
    { command: ["/bin/prog", "ok", "bad\0arg"] },
  ];
  for (const overrides of cases) {
    assert.throws(
      () => buildBwrapArgs(options(overrides)),
      /contains NUL or a line break/,
      JSON.stringify(overrides),
    );
  }
});

Deno.test("buildBwrapArgs() refuses NUL and line breaks in the hostname", () => {
  for (const hostname of ["a\nb", "a\0b"]) {
    assert.throws(() => buildBwrapArgs(options({ hostname })), TypeError);
  }
});

Deno.test("buildBwrapArgs() refuses a mount destination used twice", () => {
  const mounts: Mount[] = [
    { kind: "ro-bind", source: "/a", dest: "/inputs/x" },
    { kind: "bind", source: "/b", dest: "/inputs/x" },
  ];
  assert.throws(
    () => buildBwrapArgs(options({ mounts })),
    /Cannot mount '\/inputs\/x' twice in one sandbox/,
  );
  // Re-mounting an earlier destination read-only is not a duplicate.
  const args = buildBwrapArgs(options({
    mounts: [
      { kind: "tmpfs", dest: "/tmp", sizeBytes: 1 },
      { kind: "remount-ro", dest: "/tmp" },
    ],
  }));
  assert.ok(args.includes("--remount-ro"));
});

Deno.test("buildBwrapArgs() refuses invalid environment variable names", () => {
  for (const name of ["", "1A", "A-B", "A=B", "--bind", "A B", "ÄB"]) {
    assert.throws(
      () => buildBwrapArgs(options({ env: { [name]: "x" } })),
      /environment variable as its name is invalid/,
      name,
    );
  }
  const args = buildBwrapArgs(options({ env: { _A1: "x", lower_ok: "" } }));
  assert.ok(args.includes("_A1") && args.includes("lower_ok"));
});

Deno.test("buildBwrapArgs() refuses invalid uids and gids", () => {
  for (const id of [-1, 1.5, NaN, 0xffffffff, 2 ** 32]) {
    assert.throws(
      () => buildBwrapArgs(options({ identity: { uid: id, gid: 1 } })),
      /'uid' must be a valid id/,
    );
    assert.throws(
      () => buildBwrapArgs(options({ identity: { uid: 1, gid: id } })),
      /'gid' must be a valid id/,
    );
  }
});

Deno.test("buildBwrapArgs() refuses a seccomp fd below 3 (stdio is never the filter)", () => {
  for (const seccompFd of [0, 1, 2, -1, 3.5]) {
    assert.throws(
      () => buildBwrapArgs(options({ seccompFd })),
      /'seccompFd' must be an integer >= 3/,
    );
  }
});

Deno.test("buildBwrapArgs() refuses an empty command", () => {
  assert.throws(
    () => buildBwrapArgs(options({ command: [] })),
    /without a command/,
  );
});
