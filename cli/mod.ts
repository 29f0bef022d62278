/**
 * The `airlock` command: one entry point for every front door on the
 * command line.
 *
 * ```sh
 * deno install -g -A -n airlock jsr:@airlock/airlock/cli
 * airlock run hello.ts
 * airlock run --allow-net api.github.com \
 *   --inject 'api.github.com:Authorization=Bearer ${env:GITHUB_TOKEN}' agent.ts
 * airlock audit --learn script.ts
 * airlock audit-flags .
 * airlock serve --config server.jsonc
 * airlock doctor --fix
 * airlock demo
 * ```
 *
 * Each subcommand's module is loaded only when it is asked for, so
 * `airlock run` never pays for the HTTP server or the flag audit. Relative
 * paths are relative to the directory the command was started in; under
 * this checkout's own `deno task`, which runs in the checkout, that is the
 * directory `deno task` was started from (`INIT_CWD`).
 *
 * The harness needs `--allow-all` (it manages sandboxes through `/proc` and
 * spawns bubblewrap), which is why the install line passes `-A`.
 *
 * @example Dispatching a subcommand
 * ```ts
 * import assert from "node:assert/strict";
 * import { main, VERSION } from "./mod.ts";
 * assert.match(VERSION, /^\d+\.\d+\.\d+/);
 * assert.equal(await main(["--version"]), 0);
 * ```
 *
 * @module
 */

import config from "../deno.json" with { type: "json" };
import { closestWord } from "./_args.ts";

/** The package's version (from deno.json). */
export const VERSION: string = config.version;

/** A subcommand: what it is for, and how to load and stop it. */
interface Command {
  summary: string;
  main(argv: string[]): Promise<number>;
  /** Whether it may have started the bundler's sandbox (stop it at exit). */
  bundles: boolean;
}

const COMMANDS: Record<string, Command> = {
  run: {
    summary: "run a program in an ephemeral sandbox",
    main: async (argv) => (await import("./run.ts")).main(argv),
    bundles: true,
  },
  audit: {
    summary: "run a program, report every permission check and request",
    main: async (argv) => (await import("./audit.ts")).main(argv),
    bundles: true,
  },
  "audit-flags": {
    summary: "rate the --allow-* grants of a project's deno commands",
    main: async (argv) => (await import("./audit_flags.ts")).main(argv),
    bundles: false,
  },
  serve: {
    summary: "serve the HTTP API (tokens, ceilings, a config file)",
    main: async (argv) => (await import("../http/serve.ts")).main(argv),
    bundles: true,
  },
  doctor: {
    summary: "check that this host can run sandboxes (--fix installs)",
    main: async (argv) => (await import("./doctor.ts")).main(argv),
    bundles: true,
  },
  demo: {
    summary: "the prompt-injection demo, offline on loopback",
    main: async (argv) => (await import("../examples/demo/demo.ts")).main(argv),
    bundles: true,
  },
};

/** The top-level help. */
export const HELP =
  `airlock ${VERSION}: run generated Deno code in a bubblewrap sandbox; secrets stay outside

Usage:
  airlock <command> [options]     (airlock <command> --help for its options)

Commands:
${
    Object.entries(COMMANDS).map(([name, c]) =>
      `  ${name.padEnd(13)}${c.summary}`
    )
      .join("\n")
  }

Options:
  -h, --help     show this help
  -V, --version  print the version

Relative paths are relative to the current directory. The harness needs
'deno run -A' (it spawns bubblewrap and manages sandboxes through /proc).

Examples:
  airlock run hello.ts
  airlock run --timeout 5s --input ./data.csv script.ts -- --verbose
  airlock audit --learn --json agent.ts > trail.json
  airlock audit-flags . --fail-on high
  airlock serve --config server.jsonc
`;

/**
 * The directory relative paths resolve against: where the user started the
 * command. Under this checkout's own `deno task`, Deno runs the task in the
 * checkout and keeps the user's directory in `INIT_CWD`; anywhere else
 * (the installed command, or a task of the user's own project, whose paths
 * are relative to that project) it is the current directory.
 *
 * @param cwd The process's working directory.
 * @param initCwd `INIT_CWD`, if set.
 * @param checkout This package's root, when it runs from a local checkout.
 * @returns The directory to resolve paths against.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { userDirectory } from "./mod.ts";
 * assert.equal(userDirectory("/src/airlock", "/home/me/project", "/src/airlock"), "/home/me/project");
 * assert.equal(userDirectory("/home/me/project", "/home/me", "/src/airlock"), "/home/me/project");
 * assert.equal(userDirectory("/home/me/project", undefined, null), "/home/me/project");
 * ```
 */
export function userDirectory(
  cwd: string,
  initCwd: string | undefined,
  checkout: string | null,
): string {
  const trim = (path: string) => path.replace(/\/+$/, "") || "/";
  if (initCwd && checkout !== null && trim(cwd) === trim(checkout)) {
    return initCwd;
  }
  return cwd;
}

/** This package's root directory when it runs from files, else null. */
function checkoutRoot(): string | null {
  const url = new URL("..", import.meta.url);
  return url.protocol === "file:" ? decodeURIComponent(url.pathname) : null;
}

/**
 * Runs the `airlock` command.
 *
 * @param argv The arguments (`run hello.ts`).
 * @returns The exit code.
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "-h" || name === "--help") {
    console.log(HELP);
    return name === undefined ? 125 : 0;
  }
  if (name === "-V" || name === "--version") {
    console.log(`airlock ${VERSION} (deno ${Deno.version.deno})`);
    return 0;
  }
  if (name === "help") {
    const topic = rest[0];
    if (topic === undefined) {
      console.log(HELP);
      return 0;
    }
    return await main([topic, "--help"]);
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined) {
    const guess = closestWord(name, Object.keys(COMMANDS));
    console.error(
      `airlock: Unknown command '${name}'${
        guess ? `: did you mean '${guess}'?` : ""
      }\nCommands: ${Object.keys(COMMANDS).join(", ")}. Run 'airlock --help'.`,
    );
    return 125;
  }
  try {
    const base = userDirectory(
      Deno.cwd(),
      Deno.env.get("INIT_CWD"),
      checkoutRoot(),
    );
    Deno.chdir(base);
  } catch {
    // No env permission or the directory is gone: the command reports what
    // it cannot open, against the directory it has.
  }
  return await command.main(rest);
}

/**
 * Stops what a command may leave running (the bundler's sandbox), then
 * exits with `code`.
 *
 * @param name The subcommand that ran.
 * @param code Its exit code.
 */
async function exit(name: string | undefined, code: number): Promise<never> {
  const command = name !== undefined && Object.hasOwn(COMMANDS, name)
    ? COMMANDS[name]
    : undefined;
  if (command?.bundles) {
    const { stopBundler } = await import("../harness/bundle/bundle.ts");
    await stopBundler();
  }
  Deno.exit(code);
}

if (import.meta.main) {
  await exit(Deno.args[0], await main(Deno.args));
}
