/**
 * Where deno sits in one simple command: only in command position. `deno`
 * as an argument (`adduser deno --ingroup deno`, `chown deno:deno`,
 * `which deno`, `gosu deno ...` where it is a user name) is not a deno
 * command. In front of it may stand variable assignments and the
 * programs that run the rest of their arguments as a command (`env`,
 * `sudo`, `exec`, `timeout 10s`, `gosu USER`, `tini --`, `npx`...), a
 * shell's `-c` script, or `docker run` of a Deno image, whose entrypoint
 * is deno (`docker run denoland/deno run -N main.ts`).
 *
 * @module
 */

import { basename } from "node:path";

/** How a simple command launches deno, if it does. */
export type Launch =
  /**
   * Deno's words start at `at`: `words[at]` is deno itself, or, when
   * `implied`, the first of deno's arguments (an image's entrypoint).
   */
  | {
    kind: "deno";
    at: number;
    implied: boolean;
    /** Container ports `docker run -p` publishes: where the program listens. */
    published?: number[];
  }
  /** A shell runs `script` (`sh -c 'deno run ...'`): read it as shell. */
  | { kind: "shell"; script: string; at: number };

/** A word that names the deno binary (`deno`, `/usr/bin/deno`, `deno@2.9.6`). */
export const DENO_WORD = /^(?:\S*\/)?deno(?:\.exe)?(?:@[\w.^~<>=-]+)?$/;
const SHELLS = /^(?:ba|z|da|k|fi|c|tc|a)?sh$/;
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*=/;

/**
 * Deno's subcommands: an image whose entrypoint dispatches to deno
 * (denoland/deno's `docker-entrypoint.sh`) runs `deno ARGS` when the first
 * argument is one of these or an option.
 */
export const DENO_SUBCOMMANDS = new Set(
  ("add approve-scripts audit bench bundle cache check clean compile " +
    "completions coverage deploy doc eval fmt help info init install jupyter " +
    "lint lsp outdated publish remove repl run serve task test types " +
    "uninstall update upgrade vendor x").split(" "),
);

/**
 * Programs that run their arguments as a command: the options that take
 * a value (so the value is not taken for the command), and how many
 * positional words come before the command (`timeout 10s`, `gosu USER`).
 */
const WRAPPERS: Record<string, { values: string; positionals?: number }> = {
  exec: { values: "a" },
  command: { values: "" },
  builtin: { values: "" },
  nohup: { values: "" },
  time: { values: "fo" },
  nice: { values: "n --adjustment" },
  ionice: { values: "c n p --class --classdata" },
  stdbuf: { values: "i o e --input --output --error" },
  env: { values: "u C --unset --chdir" },
  sudo: {
    values: "u g h p C D R T U --user --group --host --prompt --chdir",
  },
  doas: { values: "u C" },
  timeout: { values: "s k --signal --kill-after", positionals: 1 },
  gosu: { values: "", positionals: 1 },
  "su-exec": { values: "", positionals: 1 },
  "s6-setuidgid": { values: "", positionals: 1 },
  setuser: { values: "", positionals: 1 },
  chpst: { values: "u U e / n l L m d o p f c r t" },
  runuser: { values: "u g G --user --group --supp-group" },
  tini: { values: "p e" },
  "dumb-init": { values: "r --rewrite" },
  catatonit: { values: "" },
  xargs: { values: "I n P L s d E a --max-args --max-procs --delimiter" },
  npx: { values: "p --package" },
  bunx: { values: "p --package" },
  pnpx: { values: "" },
  "xvfb-run": { values: "a n s f e p --server-args --server-num" },
};
/** Wrappers with a subcommand word first (`pnpm exec`, `doppler run`). */
const SUB_WRAPPERS: Record<string, string> = {
  pnpm: "exec dlx",
  yarn: "exec dlx",
  doppler: "run",
  op: "run",
  infisical: "run",
  dotenvx: "run",
};

/** Options of `docker run`/`exec` that take a value. */
const DOCKER_VALUES = new Set(
  ("a e l m p u v w --add-host --attach --cpus --cpu-shares --device --dns " +
    "--entrypoint --env --env-file --expose --gpus --group-add --health-cmd " +
    "--hostname -h --label --log-driver --log-opt --memory --mount --name " +
    "--network --platform --publish --pull --restart --runtime --security-opt " +
    "--shm-size --stop-signal --tmpfs --ulimit --user --volume --volumes-from " +
    "--workdir --cidfile --cap-add --cap-drop --ipc --pid --uts --detach-keys")
    .split(" ").map((o) => o.startsWith("-") ? o : `-${o}`),
);

/**
 * Whether an image runs deno as its entrypoint: the official images
 * (`denoland/deno`, any tag but the entrypoint-less `bin`), the older
 * `hayd/*deno*` ones, and a local build named `deno`.
 *
 * @param image The image reference as written (`denoland/deno:alpine-2.0.0`).
 * @returns True for a Deno image.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isDenoImage } from "./launch.ts";
 * assert.equal(isDenoImage("docker.io/denoland/deno:2.0.2"), true);
 * assert.equal(isDenoImage("denoland/deno:bin-2.0.2"), false);
 * assert.equal(isDenoImage("node:22"), false);
 * ```
 */
export function isDenoImage(image: string): boolean {
  const m = image.toLowerCase().match(
    // [registry/]name[:tag][@digest]; a registry has a dot, a port or is localhost.
    /^(?:(?:[\w-]+\.[\w.-]+|[\w.-]+:\d+|localhost)\/)?((?:[\w.-]+\/)*[\w.-]+)(?::([^@]+))?(?:@sha256:[0-9a-f]+)?$/,
  );
  if (!m) return false;
  const name = m[1]!;
  const tag = m[2] ?? "";
  if (/^bin(?:-|$)/.test(tag)) return false;
  return /^(?:denoland\/deno|deno|lucacasonato\/deno|hayd\/(?:[\w]+-)?deno)$/
    .test(name);
}

/**
 * Finds deno in command position in one simple command.
 *
 * @param words The command's words, quotes removed.
 * @returns Where deno's words start, a shell script to read, or null.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { launchOf } from "./launch.ts";
 * assert.deepEqual(launchOf(["sudo", "-u", "deno", "deno", "run", "x.ts"]), {
 *   kind: "deno",
 *   at: 3,
 *   implied: false,
 * });
 * assert.equal(launchOf(["adduser", "deno", "--ingroup", "deno"]), null);
 * assert.deepEqual(launchOf(["docker", "run", "--rm", "denoland/deno", "eval", "1"]), {
 *   kind: "deno",
 *   at: 4,
 *   implied: true,
 * });
 * ```
 */
export function launchOf(words: readonly string[]): Launch | null {
  let i = 0;
  for (let guard = 0; guard < 32 && i < words.length; guard++) {
    while (i < words.length && ASSIGNMENT.test(words[i]!)) i++;
    const word = words[i];
    if (word === undefined) return null;
    if (DENO_WORD.test(word)) return { kind: "deno", at: i, implied: false };
    const name = basename(word);
    if (SHELLS.test(name)) {
      // `sh -c SCRIPT`, `bash -lc SCRIPT`; `sh script.sh` runs a file.
      for (let j = i + 1; j < words.length && words[j]!.startsWith("-"); j++) {
        if (/^-[a-z]*c[a-z]*$/.test(words[j]!) && words[j + 1] !== undefined) {
          return { kind: "shell", script: words[j + 1]!, at: j + 1 };
        }
      }
      return null;
    }
    if (name === "docker" || name === "podman") return dockerLaunch(words, i);
    const sub = SUB_WRAPPERS[name];
    if (sub !== undefined) {
      if (!sub.split(" ").includes(words[i + 1] ?? "")) return null;
      const dashes = words.indexOf("--", i + 2);
      i = dashes !== -1 ? dashes + 1 : skipOptions(words, i + 2, new Set());
      continue;
    }
    const wrapper = Object.hasOwn(WRAPPERS, name) ? WRAPPERS[name] : undefined;
    if (wrapper === undefined) return null;
    if (name === "exec" || name === "command") {
      // `command -v deno` asks where deno is; it does not run it.
      if (/^-[a-z]*[vV]/.test(words[i + 1] ?? "")) return null;
    }
    const values = new Set(
      wrapper.values.split(" ").filter((v) => v !== "").map((v) =>
        v.startsWith("-") ? v : `-${v}`
      ),
    );
    i = skipOptions(words, i + 1, values) + (wrapper.positionals ?? 0);
  }
  return null;
}

/** Index of the first word after the options at `from` (and a `--`). */
function skipOptions(
  words: readonly string[],
  from: number,
  values: ReadonlySet<string>,
): number {
  let i = from;
  while (i < words.length) {
    const w = words[i]!;
    if (w === "--") return i + 1;
    if (ASSIGNMENT.test(w)) {
      i++;
      continue;
    }
    if (!w.startsWith("-") || w === "-") return i;
    i += values.has(w) ? 2 : 1;
  }
  return i;
}

/**
 * `docker run [options] IMAGE [args]` (and `container run`, `exec`): for a
 * Deno image, args starting with a subcommand or an option go to deno.
 */
function dockerLaunch(words: readonly string[], at: number): Launch | null {
  let i = at + 1;
  if (words[i] === "container") i++;
  const verb = words[i];
  if (verb !== "run" && verb !== "exec") return null;
  let entrypoint: string | null = null;
  const published: number[] = [];
  for (i++; i < words.length; i++) {
    const w = words[i]!;
    if (!w.startsWith("-")) break;
    if (w === "--entrypoint") entrypoint = words[i + 1] ?? null;
    else if (w.startsWith("--entrypoint=")) entrypoint = w.slice(13);
    const publish = w === "-p" || w === "--publish"
      ? words[i + 1]
      : w.match(/^--publish=(.+)$/)?.[1];
    // [ip:][hostPort:]containerPort[/proto]: the container's port.
    const port = publish?.match(/(?:^|:)(\d{1,5})(?:\/(?:tcp|udp))?$/)?.[1];
    if (port !== undefined) published.push(Number(port));
    if (DOCKER_VALUES.has(w)) i++;
  }
  const target = words[i];
  if (target === undefined) return null;
  const args = i + 1;
  const first = words[args];
  if (first === undefined) return null;
  const denoFirst = entrypoint !== null
    ? DENO_WORD.test(entrypoint)
    : verb === "run" && isDenoImage(target) &&
      (DENO_SUBCOMMANDS.has(first) || first.startsWith("-"));
  if (denoFirst) {
    return published.length > 0
      ? { kind: "deno", at: args, implied: true, published }
      : { kind: "deno", at: args, implied: true };
  }
  if (entrypoint !== null) return null;
  const rest = launchOf(words.slice(args));
  if (rest === null) return null;
  return rest.kind === "deno" && published.length > 0
    ? { ...rest, at: rest.at + args, published }
    : { ...rest, at: rest.at + args };
}
