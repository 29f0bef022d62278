/**
 * Which targets of a permission audit are sensitive: what a prompt
 * injection goes for (keys, cloud credentials, `.env` files, the cloud
 * metadata service) and where code plants itself to run again (cron, shell
 * profiles, systemd units, git hooks). A report never proposes a grant of a
 * withheld target, and calls out every sensitive one it proposes.
 *
 * @module
 */

import { AddressGuard } from "../injector/address_guard.ts";
import { canonicalHost, hostKind } from "../injector/canonical_host.ts";

/** How a report treats a sensitive target. */
export interface Sensitivity {
  /**
   * `withhold`: never proposed (a program that truly needs it gets it by
   * hand, after a look); `warn`: proposed, with the warning beside it.
   */
  action: "withhold" | "warn";
  /** Why, in a few words ("an SSH private key"). */
  why: string;
}

/** Path rules, first match wins: [test on the normal path, action, why]. */
const PATH_RULES: readonly [RegExp, Sensitivity["action"], string][] = [
  [/(?:^|\/)\.ssh(?:\/|$)/, "withhold", "SSH keys and configuration"],
  [
    /(?:^|\/)id_(?:rsa|dsa|ecdsa|ed25519)(?:_sk)?(?:\.pub)?$/,
    "withhold",
    "an SSH private key",
  ],
  [
    /(?:^|\/)\.(?:aws|azure|kube|docker|gnupg|password-store)(?:\/|$)/,
    "withhold",
    "cloud, cluster or signing credentials",
  ],
  [
    /(?:^|\/)\.config\/(?:gcloud|gh|hub|doctl|op)(?:\/|$)/,
    "withhold",
    "cloud or forge credentials",
  ],
  [
    /(?:^|\/)\.(?:netrc|npmrc|pypirc|pgpass|git-credentials|vault-token)$/,
    "withhold",
    "stored credentials",
  ],
  [
    /(?:^|\/)[^/]*\.(?:pem|key|p12|pfx|jks|keystore)$/,
    "withhold",
    "a private key or certificate store",
  ],
  [
    /^\/etc\/(?:g?shadow|sudoers)(?:\.d)?(?:\/|$)/,
    "withhold",
    "system credentials",
  ],
  [
    /^\/(?:etc\/cron|etc\/crontab$|var\/spool\/cron)/,
    "withhold",
    "cron (code that runs on a schedule)",
  ],
  [
    /(?:^|\/)\.(?:bashrc|bash_profile|bash_login|profile|zshrc|zprofile|zshenv|zlogin|kshrc|cshrc|tcshrc)$/,
    "withhold",
    "a shell profile (code that runs in every new shell)",
  ],
  [
    /^\/etc\/(?:profile|bash\.bashrc|zsh\/|environment$)/,
    "withhold",
    "a system shell profile (code that runs in every new shell)",
  ],
  [
    /(?:^|\/)\.config\/(?:fish|autostart|systemd)(?:\/|$)|^\/etc\/systemd(?:\/|$)/,
    "withhold",
    "startup configuration (code that runs at login or boot)",
  ],
  [/(?:^|\/)\.git\/hooks(?:\/|$)/, "withhold", "git hooks (code git runs)"],
  [
    /^\/(?:var\/)?run\/(?:docker|containerd|podman)[^/]*\.sock$|^\/(?:var\/)?run\/(?:docker|containerd|podman)\//,
    "withhold",
    "a container engine's socket (root on the host)",
  ],
  [/^\/(?:var\/)?run\/secrets(?:\/|$)/, "withhold", "mounted secrets"],
  [
    /^\/proc\/[^/]+\/(?:environ|mem|maps|cmdline|fd)(?:\/|$)/,
    "withhold",
    "another process's memory or environment",
  ],
  [
    /(?:^|\/)\.env(?:\.[^/]*)?$/,
    "warn",
    "an environment file (usually holds secrets)",
  ],
];

/**
 * How sensitive a path is to read or write.
 *
 * @param path An absolute host path, or one relative to the program's
 *   directory (`./.env`).
 * @returns The sensitivity, or null.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { sensitivePath } from "./sensitive.ts";
 * assert.equal(sensitivePath("/root/.ssh/id_rsa")?.action, "withhold");
 * assert.equal(sensitivePath("./.env")?.action, "warn");
 * assert.equal(sensitivePath("./out/result.txt"), null);
 * ```
 */
export function sensitivePath(path: string): Sensitivity | null {
  const clean = path.replace(/\/+$/, "") || "/";
  if (clean === "/") {
    return { action: "withhold", why: "the whole filesystem" };
  }
  for (const [test, action, why] of PATH_RULES) {
    if (test.test(clean)) return { action, why };
  }
  return null;
}

/** Cloud metadata services by name: each answers with instance credentials. */
const METADATA_NAMES = new Set([
  "metadata",
  "metadata.google.internal",
  "metadata.goog",
  "instance-data",
  "instance-data.ec2.internal",
  "metadata.azure.internal",
  "metadata.tencentyun.com",
]);

const guard = new AddressGuard({ hostAddresses: [] });

/**
 * How sensitive a network target is: cloud metadata services (by address,
 * in any spelling, or by name) and link-local addresses are withheld.
 *
 * @param target `host:port`, `[v6]:port` or a bare host.
 * @returns The sensitivity, or null.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { sensitiveHost } from "./sensitive.ts";
 * assert.equal(sensitiveHost("169.254.169.254:80")?.action, "withhold");
 * assert.equal(sensitiveHost("2852039166:80")?.action, "withhold"); // the same address
 * assert.equal(sensitiveHost("api.example.com:443"), null);
 * ```
 */
export function sensitiveHost(target: string): Sensitivity | null {
  const host = hostPart(target);
  let canonical: string;
  try {
    canonical = canonicalHost(host);
  } catch {
    return null; // not a host at all: nothing a grant could name
  }
  if (METADATA_NAMES.has(canonical)) {
    return {
      action: "withhold",
      why: "a cloud metadata service (instance credentials)",
    };
  }
  const kind = hostKind(canonical);
  if (kind !== "ipv4" && kind !== "ipv6") return null;
  const verdict = guard.check(canonical.replace(/^\[|\]$/g, ""));
  if (verdict.allowed) return null;
  if (verdict.reason === "metadata") {
    return {
      action: "withhold",
      why: "a cloud metadata service (instance credentials)",
    };
  }
  if (verdict.reason === "link-local") {
    return {
      action: "withhold",
      why: "a link-local address (cloud agents and their credentials)",
    };
  }
  return null;
}

/**
 * How sensitive reading an environment variable is: the whole environment
 * is withheld (it holds every secret of the shell that runs the program);
 * a name that looks like a credential is proposed with a warning.
 *
 * @param name The variable, or null for the whole environment.
 * @returns The sensitivity, or null.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { sensitiveEnv } from "./sensitive.ts";
 * assert.equal(sensitiveEnv(null)?.action, "withhold");
 * assert.equal(sensitiveEnv("WEATHER_TOKEN")?.action, "warn");
 * assert.equal(sensitiveEnv("PORT"), null);
 * ```
 */
export function sensitiveEnv(name: string | null): Sensitivity | null {
  if (name === null) {
    return {
      action: "withhold",
      why: "the whole environment (every secret of the shell that runs it)",
    };
  }
  if (
    /TOKEN|KEY|SECRET|PASSW|CREDENTIAL|PRIVATE|AUTH|SESSION|COOKIE/i.test(
      name,
    ) || /^AWS_/i.test(name)
  ) {
    return { action: "warn", why: "looks like a credential" };
  }
  return null;
}

function hostPart(target: string): string {
  if (target.startsWith("[")) {
    const end = target.indexOf("]");
    return end === -1 ? target : target.slice(0, end + 1);
  }
  const colons = target.split(":").length - 1;
  if (colons === 1) return target.slice(0, target.indexOf(":"));
  return target; // a bare host or a bare IPv6 address
}
