/**
 * `airlock doctor [--fix] [--quiet] [--json]`: checks that this host can run
 * airlock sandboxes and prints each missing piece with the exact fix.
 * `--fix` installs missing Debian packages when run as root.
 *
 * @module
 */

import { parseCommandLine, UsageError } from "./_args.ts";
import { EXIT_CODES } from "./exit_codes.ts";
import { findOnPath } from "../runtime/host_tools.ts";

/** The result of one check. */
interface Check {
  name: string;
  ok: boolean;
  /** Required for any run (vs. only for some features). */
  required: boolean;
  detail: string;
  fix?: string;
  /** Debian package that provides it, for --fix. */
  apt?: string;
}

const EXPECTED_DENO = "2.9.6";
const SEARCH_PATH =
  "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

async function capture(
  cmd: string,
  args: string[],
  as: { uid: number; gid: number } | Record<never, never> = {},
): Promise<{ ok: boolean; out: string }> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      clearEnv: true,
      env: { PATH: SEARCH_PATH, LC_ALL: "C" },
      // A check run as the sandbox's uid could not enter a working
      // directory only its owner may (a checkout under a 0700 home).
      cwd: "/",
      stdout: "piped",
      stderr: "piped",
      ...as,
    }).output();
    const text = new TextDecoder().decode(out.stdout) +
      new TextDecoder().decode(out.stderr);
    return { ok: out.success, out: text.trim() };
  } catch (error) {
    return { ok: false, out: (error as Error).message };
  }
}

function isRoot(): boolean {
  try {
    return Deno.uid() === 0;
  } catch {
    return false;
  }
}

async function tool(
  name: string,
  apt: string,
  required: boolean,
  why: string,
): Promise<Check> {
  const path = findOnPath(name, SEARCH_PATH);
  if (!path) {
    return {
      name,
      ok: false,
      required,
      detail: `not installed (${why})`,
      fix: `apt-get install -y ${apt}`,
      apt,
    };
  }
  const version = name === "bwrap"
    ? (await capture(path, ["--version"])).out.split("\n")[0]
    : name === "socat"
    ? (await capture(path, ["-V"])).out.match(/socat version \S+/)?.[0]
    : "";
  return {
    name,
    ok: true,
    required,
    detail: `${path}${version ? ` (${version})` : ""}`,
  };
}

async function runChecks(): Promise<Check[]> {
  const checks: Check[] = [];
  const denoOk = Deno.version.deno === EXPECTED_DENO;
  checks.push({
    name: "deno",
    ok: denoOk,
    required: false,
    detail: `${Deno.version.deno} at ${Deno.execPath()}${
      denoOk ? "" : ` (tested with ${EXPECTED_DENO})`
    }`,
    fix: `npm install -g deno@${EXPECTED_DENO}`,
  });
  checks.push(await tool("bwrap", "bubblewrap", true, "the sandbox itself"));
  checks.push(await tool("prlimit", "util-linux", true, "resource limits"));
  checks.push();
  checks.push(await tool("ldd", "libc-bin", true, "finding Deno's libraries"));
  checks.push(
    await tool("socat", "socat", false, "network egress through the injector"),
  );
  checks.push({
    name: "architecture",
    ok: Deno.build.arch === "x86_64" && Deno.build.os === "linux",
    required: true,
    detail:
      `${Deno.build.os}/${Deno.build.arch} (the seccomp filter is written for linux/x86_64)`,
  });
  const bwrap = findOnPath("bwrap", SEARCH_PATH);
  if (bwrap) {
    const userns = await capture(bwrap, [
      "--unshare-all",
      "--unshare-user",
      "--ro-bind",
      "/",
      "/",
      "/bin/true",
    ]);
    checks.push({
      name: "user namespaces",
      ok: userns.ok,
      required: true,
      detail: userns.ok ? "bwrap can create them" : userns.out,
      fix:
        "sysctl -w kernel.unprivileged_userns_clone=1 (or run in a VM/container that allows user namespaces)",
    });
    if (isRoot()) {
      const drop = await capture(bwrap, [
        "--unshare-all",
        "--unshare-user",
        "--ro-bind",
        "/",
        "/",
        "/bin/true",
      ], { uid: 2_000_000_000, gid: 2_000_000_000 });
      checks.push({
        name: "per-sandbox uid",
        ok: drop.ok,
        required: true,
        detail: drop.ok
          ? "bwrap works as an unprivileged host uid (process caps are enforced)"
          : drop.out,
        fix:
          "allow unprivileged user namespaces (kernel.unprivileged_userns_clone=1, or AppArmor's kernel.apparmor_restrict_unprivileged_userns=0)",
      });
    } else {
      checks.push({
        name: "per-sandbox uid",
        ok: false,
        required: false,
        detail:
          "harness is not root: sandboxes share its uid and the process cap is not enforced",
        fix:
          "run the harness as root (e.g. in a container) for per-sandbox uids",
      });
    }
  }
  checks.push(await scratchQuotaCheck());
  const cgroup = await capture("sh", [
    "-c",
    "cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null",
  ]);
  checks.push({
    name: "cgroup v2",
    ok: true,
    required: false,
    detail: cgroup.out
      ? `controllers: ${cgroup.out} (not used yet: limits are rlimits)`
      : "not available (not needed: limits are rlimits)",
  });
  return checks;
}

/** How sandboxes' scratch quotas will be enforced here (a real trial mount). */
async function scratchQuotaCheck(): Promise<Check> {
  const { trialScratchFs } = await import("../runtime/scratch_volume.ts");
  const why = await trialScratchFs();
  if (why === null) {
    return {
      name: "scratch quota",
      ok: true,
      required: false,
      detail:
        "each scratch is a loop-mounted filesystem of its quota (writes past it fail with ENOSPC)",
    };
  }
  const noMkfs = !findOnPath("mkfs.ext4", SEARCH_PATH);
  return {
    name: "scratch quota",
    ok: false,
    required: false,
    detail:
      `measured by walking the scratch (files unlinked while held open escape it; see SECURITY.md): ${why}`,
    fix: noMkfs
      ? "apt-get install -y e2fsprogs"
      : "run the harness as root on a host with loop devices (/dev/loop-control)",
    ...(noMkfs ? { apt: "e2fsprogs" } : {}),
  };
}

async function sandboxSmokeTest(): Promise<Check> {
  try {
    const { run } = await import("../harness/sandbox.ts");
    const result = await run("console.log('sandbox ok')", {
      policy: { limits: { timeoutMs: 20_000 } },
    });
    const ok = result.success && result.stdout === "sandbox ok\n";
    return {
      name: "sandboxed run",
      ok,
      required: true,
      detail: ok
        ? `hello world ran in ${result.durationMs} ms`
        : `exit ${result.exitCode} (${result.reason}): ${
          result.stderr.trim().slice(0, 300)
        }`,
    };
  } catch (error) {
    return {
      name: "sandboxed run",
      ok: false,
      required: true,
      detail: (error as Error).message,
    };
  }
}

async function aptInstall(
  packages: string[],
  quietStdout: boolean,
): Promise<boolean> {
  console.error(`doctor: installing ${packages.join(" ")} with apt-get`);
  const env = { PATH: SEARCH_PATH, DEBIAN_FRONTEND: "noninteractive" };
  const step = async (args: string[]) =>
    (await new Deno.Command("apt-get", {
      args,
      env,
      // --json keeps stdout for the JSON document.
      stdout: quietStdout ? "null" : "inherit",
      stderr: "inherit",
    }).output()).success;
  return await step(["update", "-qq"]) &&
    await step(["install", "-y", "-qq", ...packages]);
}

/**
 * Runs the doctor.
 *
 * @param argv Command-line arguments.
 * @returns 0 when every required check passes.
 */
export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    const parsed = parseCommandLine(argv, {
      fix: { type: "boolean", default: false },
      quiet: { type: "boolean", short: "q", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    }, "airlock doctor");
    values = parsed.values;
    if (parsed.positionals.length > 0) {
      throw new UsageError(
        `Cannot use '${
          parsed.positionals[0]
        }': 'airlock doctor' takes no arguments`,
      );
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`airlock: ${error.message}\nRun with --help for usage.`);
    return EXIT_CODES.usage;
  }
  if (values.help) {
    console.log(`airlock doctor: check that this host can run sandboxes

Usage: airlock doctor [--fix] [--quiet] [--json]

  --fix     install missing Debian packages (bubblewrap, socat, util-linux)
            with apt-get when running as root; otherwise print the command
  --quiet   print only problems
  --json    print { ok, checks: [{ name, ok, required, detail, fix? }] }

Exit codes: 0 when every required check passes, 1 otherwise, 125 bad usage.`);
    return 0;
  }
  let checks = await runChecks();
  const missing = [
    ...new Set(checks.filter((c) => !c.ok && c.apt).map((c) => c.apt!)),
  ];
  if (values.fix && missing.length > 0) {
    if (isRoot() && findOnPath("apt-get", SEARCH_PATH)) {
      if (!(await aptInstall(missing, values.json))) {
        console.error(
          `doctor: apt-get failed; run it yourself: apt-get install -y ${
            missing.join(" ")
          }`,
        );
        return 1;
      }
      checks = await runChecks();
    } else {
      console.error(
        `doctor: missing packages; as root, run:\n  apt-get update && apt-get install -y ${
          missing.join(" ")
        }`,
      );
      return 1;
    }
  }
  if (checks.every((c) => c.ok || !c.required)) {
    checks.push(await sandboxSmokeTest());
  }
  const { stopBundler } = await import("../harness/bundle/bundle.ts");
  await stopBundler();
  const failed = checks.filter((c) => !c.ok && c.required);
  if (values.json) {
    const shown = checks.map(({ apt: _apt, ...check }) => check);
    console.log(
      JSON.stringify({ ok: failed.length === 0, checks: shown }, null, 2),
    );
    return failed.length > 0 ? 1 : 0;
  }
  for (const check of checks) {
    if (values.quiet && (check.ok || !check.required)) continue;
    const mark = check.ok ? "ok  " : check.required ? "FAIL" : "warn";
    console.log(`${mark}  ${check.name.padEnd(16)} ${check.detail}`);
    if (!check.ok && check.fix) console.log(`      fix: ${check.fix}`);
  }
  if (failed.length > 0 && !values.quiet) {
    console.log(`\n${failed.length} required check(s) failed.`);
  }
  return failed.length > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
