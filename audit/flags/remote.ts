/**
 * Scripts fetched at run time (`deno run -A https://…/main.ts`,
 * `jsr:@scope/pkg`, `npm:pkg`): where from, and whether what runs is
 * pinned. An unpinned script is whatever its host serves on the day it
 * runs: a new release, or a compromised account's, gets the command's
 * grants with no review. A version in the URL on a registry whose
 * versions are immutable (deno.land/x, jsr, npm, esm.sh, jsDelivr, unpkg)
 * or a commit hash pins it; a branch, a tag, `@latest` or a range does
 * not.
 *
 * @module
 */

/** A remote script, and whether what runs is pinned. */
export interface RemoteScript {
  /** The host (or `npm`, `jsr.io`) the code comes from. */
  host: string;
  /** Pinned to one immutable version or commit. */
  pinned: boolean;
  /** Why it is not pinned ("no version", "version range '^1'"). */
  why: string;
  /** The same specifier with a version slot, to show the fix. */
  pinnedForm: string;
}

const EXACT = /^v?\d+\.\d+\.\d+(?:[-+][\w.+-]+)?$/;
const COMMIT = /^[0-9a-f]{40}$/;

/**
 * Reads a script specifier: null for a local file.
 *
 * @param spec The script as written.
 * @returns Where it comes from and whether it is pinned, or null.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { remoteScript } from "./remote.ts";
 * assert.equal(remoteScript("https://deno.land/x/lume/cli.ts")?.pinned, false);
 * assert.equal(remoteScript("https://deno.land/x/lume@v2.3.3/cli.ts")?.pinned, true);
 * assert.equal(remoteScript("jsr:@std/http/file-server")?.why, "no version");
 * assert.equal(remoteScript("./main.ts"), null);
 * ```
 */
export function remoteScript(spec: string): RemoteScript | null {
  const registry = spec.match(
    /^(npm|jsr):\/?((?:@[^/@]+\/)?[^/@]+)(?:@([^/]*))?(\/.*)?$/,
  );
  if (registry) {
    const [, scheme, name, version, path = ""] = registry;
    return versioned(
      scheme === "npm" ? "npm" : "jsr.io",
      version,
      `${scheme}:${name}@<version>${path}`,
    );
  }
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    return null;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return null;
  const host = url.hostname;
  const segments = url.pathname.split("/").filter((s) => s !== "");
  const at = (segment: string | undefined) => segment?.split("@")[1];
  const slot = (index: number, name: string) =>
    `${url.origin}/${
      [
        ...segments.slice(0, index),
        `${name}@<version>`,
        ...segments.slice(index + 1),
      ]
        .join("/")
    }`;
  if (host === "deno.land") {
    if (segments[0] === "x") {
      const name = segments[1]?.split("@")[0] ?? "";
      return versioned(host, at(segments[1]), slot(1, name));
    }
    const name = segments[0]?.split("@")[0] ?? "";
    return versioned(host, at(segments[0]), slot(0, name));
  }
  if (host === "jsr.io") {
    const version = segments[2];
    return version && EXACT.test(version)
      ? { host, pinned: true, why: "", pinnedForm: spec }
      : {
        host,
        pinned: false,
        why: "no version",
        pinnedForm: `${url.origin}/${
          segments.slice(0, 2).join("/")
        }/<version>/${segments.slice(2).join("/")}`,
      };
  }
  if (host === "raw.githubusercontent.com" || host === "github.com") {
    const ref = host === "github.com" ? segments[3] : segments[2];
    if (ref && COMMIT.test(ref)) {
      return { host, pinned: true, why: "", pinnedForm: spec };
    }
    const index = host === "github.com" ? 3 : 2;
    const form = `${url.origin}/${
      [...segments.slice(0, index), "<commit>", ...segments.slice(index + 1)]
        .join("/")
    }`;
    return {
      host,
      pinned: false,
      why: ref ? `branch or tag '${ref}' (it can move)` : "no commit",
      pinnedForm: form,
    };
  }
  if (host === "gist.githubusercontent.com") {
    const pinned = segments.some((s) => COMMIT.test(s));
    return {
      host,
      pinned,
      why: pinned ? "" : "no revision",
      pinnedForm: spec,
    };
  }
  // esm.sh, jsDelivr, unpkg and others: a package@version segment, a
  // commit, or a version anywhere in the path.
  const version = segments.map((s) => s.split("@").slice(1).join("@"))
    .find((v) => v !== "");
  if (version !== undefined) {
    return versioned(host, version, spec.replace(`@${version}`, "@<version>"));
  }
  const pinned = segments.some((s) => COMMIT.test(s) || EXACT.test(s));
  return {
    host,
    pinned,
    why: pinned ? "" : "no version",
    pinnedForm: `${url.origin}/<a versioned path>`,
  };
}

function versioned(
  host: string,
  version: string | undefined,
  pinnedForm: string,
): RemoteScript {
  if (version === undefined || version === "") {
    return { host, pinned: false, why: "no version", pinnedForm };
  }
  if (EXACT.test(version)) {
    return { host, pinned: true, why: "", pinnedForm };
  }
  return {
    host,
    pinned: false,
    why: `version range '${version}'`,
    pinnedForm,
  };
}
