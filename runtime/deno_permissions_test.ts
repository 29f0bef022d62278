import assert from "node:assert/strict";
import {
  denoPermissionFlags,
  NEVER_GRANTED,
  SYSTEM_INFO_KINDS,
} from "./deno_permissions.ts";

const GRANTS = {
  read: ["/inputs/a", "/scratch"],
  write: ["/scratch"],
  net: ["api.github.com", "example.com:443"],
};

Deno.test("denoPermissionFlags() never grants env, run, ffi, sys or everything unless asked", () => {
  for (const grants of [GRANTS, { read: [], write: [], net: [] }]) {
    for (const flag of denoPermissionFlags(grants)) {
      assert.doesNotMatch(
        flag,
        /^(-A|--allow-all|--allow-(env|run|ffi|sys|import|scripts)(=|$))/,
        flag,
      );
      assert.match(flag, /^--(no-prompt|allow-(read|write|net)=|deny-)/);
    }
  }
});

Deno.test("denoPermissionFlags() denies run and ffi always, sys and env unless granted, and never prompts", () => {
  const flags = denoPermissionFlags({ read: [], write: [], net: [] });
  assert.equal(flags[0], "--no-prompt");
  for (const kind of ["run", "ffi", "sys", "env"]) {
    assert.ok(flags.includes(`--deny-${kind}`), kind);
  }
  assert.deepEqual([...NEVER_GRANTED].sort(), ["ffi", "run"]);
  const granted = denoPermissionFlags({
    read: [],
    write: [],
    net: [],
    env: "all",
    sys: ["hostname", "cpus"],
  });
  for (const kind of ["run", "ffi"]) {
    assert.ok(granted.includes(`--deny-${kind}`), kind);
  }
});

Deno.test("denoPermissionFlags() grants the whole environment only for env: 'all'", () => {
  const flags = denoPermissionFlags({
    read: [],
    write: [],
    net: [],
    env: "all",
  });
  assert.ok(flags.includes("--allow-env"));
  assert.ok(!flags.includes("--deny-env"));
});

Deno.test("denoPermissionFlags() grants only the listed kinds of system information, never setPriority", () => {
  const flags = denoPermissionFlags({
    read: [],
    write: [],
    net: [],
    sys: ["hostname", "cpus", "hostname"],
  });
  assert.ok(flags.includes("--allow-sys=hostname,cpus"), flags.join(" "));
  assert.ok(!flags.includes("--deny-sys"));
  assert.ok(!flags.includes("--allow-sys"), "never every kind");
  assert.ok(!(SYSTEM_INFO_KINDS as readonly string[]).includes("setPriority"));
  // Attack: a kind outside the list (or two kinds in one entry) smuggled
  // past the types would widen the grant.
  for (const kind of ["setPriority", "hostname,setPriority", "inspector"]) {
    assert.throws(
      () =>
        denoPermissionFlags({
          read: [],
          write: [],
          net: [],
          // deno-lint-ignore no-explicit-any
          sys: [kind as any],
        }),
      /^TypeError: Cannot grant system information/,
    );
  }
});

Deno.test("denoPermissionFlags() grants only listed env names, and then no --deny-env", () => {
  const flags = denoPermissionFlags({
    read: [],
    write: [],
    net: [],
    env: ["GH_TOKEN"],
  });
  assert.ok(flags.includes("--allow-env=GH_TOKEN"));
  assert.ok(!flags.includes("--deny-env"));
  assert.ok(!flags.includes("--allow-env"), "never the whole environment");
});

Deno.test("denoPermissionFlags() gives bare --allow-net only for net: 'all'", () => {
  assert.ok(
    denoPermissionFlags({ read: [], write: [], net: "all" }).includes(
      "--allow-net",
    ),
  );
  assert.ok(
    !denoPermissionFlags({ read: [], write: [], net: [] }).some((f) =>
      f.startsWith("--allow-net")
    ),
  );
});

Deno.test("denoPermissionFlags() lists the grants, without duplicates", () => {
  const flags = denoPermissionFlags({
    ...GRANTS,
    read: [...GRANTS.read, "/scratch"],
  });
  assert.deepEqual(flags, [
    "--no-prompt",
    "--allow-read=/inputs/a,/scratch",
    "--allow-write=/scratch",
    "--allow-net=api.github.com,example.com:443",
    "--deny-env",
    "--deny-run",
    "--deny-ffi",
    "--deny-sys",
  ]);
});

Deno.test("denoPermissionFlags() omits empty lists (Deno refuses an empty --allow-read=)", () => {
  const flags = denoPermissionFlags({ read: [], write: [], net: [] });
  assert.deepEqual(flags, [
    "--no-prompt",
    "--deny-env",
    "--deny-run",
    "--deny-ffi",
    "--deny-sys",
  ]);
  assert.ok(!flags.some((f) => f.startsWith("--allow-")));
});

Deno.test("denoPermissionFlags() refuses a grant with a comma (it would split into two grants)", () => {
  for (
    const grants of [
      { read: ["/inputs/a,/etc"], write: [], net: [] },
      { read: [], write: ["/scratch,/"], net: [] },
      { read: [], write: [], net: ["example.com,169.254.169.254"] },
    ]
  ) {
    assert.throws(
      () => denoPermissionFlags(grants),
      (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.match(
          error.message,
          /^Cannot grant (read|write|net) access to '/,
        );
        return true;
      },
    );
  }
});

Deno.test("denoPermissionFlags() refuses an empty or NUL-containing grant", () => {
  for (const item of ["", "/a\0b"]) {
    assert.throws(
      () => denoPermissionFlags({ read: [item], write: [], net: [] }),
      TypeError,
    );
  }
});
