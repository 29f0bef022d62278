/**
 * The Public Suffix List (PSL), read from `tldts`'s bundled copy (no network
 * at run time): which names anyone can register a name under, such as
 * `co.uk`, `vercel.app`, `github.io` or `s3.amazonaws.com`.
 *
 * A wildcard allow entry over such a suffix (`*.vercel.app`) opens every
 * stranger's host under it, so host patterns ask {@linkcode publicSuffixUnder}
 * before accepting a wildcard. Both sections of the list count: the private
 * section (cloud and hosting platforms) is exactly where anyone can get a
 * name in seconds.
 *
 * `tldts` answers "what is the public suffix of this name" (its public API),
 * but not "is there a public suffix somewhere below this name" (a wildcard
 * `*.amazonaws.com` covers `s3.amazonaws.com`, hence every bucket): for that
 * this module walks the list's trie, which `tldts` ships as plain typed
 * arrays. The walk checks the data's shape when loaded and fails loudly if a
 * new version changed it (the unit tests pin known answers too).
 *
 * @module
 */

import { getPublicSuffix } from "tldts";
// @ts-types="tldts/dist/types/src/data/trie.d.ts"
import * as trie from "tldts/dist/cjs/src/data/trie.js";

const { nodeFlags, edgeStart, edgeLength, edgeChild, labelText, rulesRoot } =
  trie;

// Where each edge's label starts in labelText: the labels are stored one
// after another in edge order (tldts derives the same offsets at load).
const edgeOffset = new Uint32Array(edgeLength.length + 1);
for (let edge = 0; edge < edgeLength.length; edge++) {
  edgeOffset[edge + 1] = edgeOffset[edge]! + edgeLength[edge]!;
}
// A layout this walk does not understand must never read as "no suffix
// below": that would silently accept every wildcard (fail closed).
if (
  edgeStart.length !== nodeFlags.length + 1 ||
  edgeChild.length !== edgeLength.length ||
  edgeOffset[edgeLength.length] !== labelText.length ||
  !(rulesRoot >= 0 && rulesRoot < nodeFlags.length)
) {
  throw new Error(
    "Cannot load the Public Suffix List as the tldts trie has an unknown layout: pin the tldts version in import_map.json that _public_suffix.ts was written for",
  );
}

function labelOf(edge: number): string {
  return labelText.slice(edgeOffset[edge]!, edgeOffset[edge + 1]!);
}

function edgesOf(node: number): number[] {
  const edges: number[] = [];
  for (let edge = edgeStart[node]!; edge < edgeStart[node + 1]!; edge++) {
    edges.push(edge);
  }
  return edges;
}

// Each node's children by label, built on first use (the root has ~1,500).
const childrenByLabel = new Map<number, Map<string, number[]>>();

function childrenOf(node: number, label: string): number[] {
  let byLabel = childrenByLabel.get(node);
  if (!byLabel) {
    byLabel = new Map();
    for (const edge of edgesOf(node)) {
      const text = labelOf(edge);
      byLabel.set(text, [...(byLabel.get(text) ?? []), edgeChild[edge]!]);
    }
    childrenByLabel.set(node, byLabel);
  }
  // A "*" edge stands for any one label: follow it too.
  return [...(byLabel.get(label) ?? []), ...(byLabel.get("*") ?? [])];
}

/**
 * Says whether `domain` is itself a public suffix, counting the private
 * section (`vercel.app`) and wildcard rules (`*.ck` makes `foo.ck` one).
 *
 * @param domain A canonical domain name (lower case, punycode, no dot at
 *   the end).
 * @returns `true` if anyone can register names directly under `domain`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isPublicSuffix } from "./_public_suffix.ts";
 * assert.equal(isPublicSuffix("co.uk"), true);
 * assert.equal(isPublicSuffix("vercel.app"), true);
 * assert.equal(isPublicSuffix("example.com"), false);
 * ```
 */
export function isPublicSuffix(domain: string): boolean {
  // A name no rule lists is not a suffix itself (the list's implicit "*"
  // rule only makes an unknown last label one, and wildcards need two).
  return getPublicSuffix(domain, {
    allowPrivateDomains: true,
    allowIcannDomains: true,
    extractHostname: false,
    validateHostname: false,
    detectIp: false,
    mixedInputs: false,
  }) === domain;
}

/**
 * The public suffix a wildcard `*.<domain>` would reach into: `domain`
 * itself if it is one, else the first rule of the list below it, else
 * `null`. `*.co.uk` reaches `co.uk`; `*.amazonaws.com` reaches
 * `s3.amazonaws.com` and others; `*.myapp.vercel.app` reaches none.
 *
 * @param domain A canonical domain name.
 * @returns The suffix (a rule, maybe with a leading `*.`), or `null`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { publicSuffixUnder } from "./_public_suffix.ts";
 * assert.equal(publicSuffixUnder("github.io"), "github.io");
 * assert.equal(publicSuffixUnder("myname.github.io"), null);
 * assert.ok(publicSuffixUnder("amazonaws.com")?.endsWith(".amazonaws.com"));
 * ```
 */
export function publicSuffixUnder(domain: string): string | null {
  if (isPublicSuffix(domain)) return domain;
  // Walk the trie from the root, last label first.
  let nodes = [rulesRoot];
  for (const label of domain.split(".").reverse()) {
    nodes = nodes.flatMap((node) => childrenOf(node, label));
    if (nodes.length === 0) return null;
  }
  // Every path in the trie ends in a rule, so any edge below the node is a
  // public suffix below `domain`. Breadth first for the shortest example;
  // the smallest label at each depth so the message is stable.
  let level = nodes.map((node) => ({ node, name: domain }));
  while (level.length > 0) {
    const below: { node: number; name: string }[] = [];
    for (const { node, name } of level) {
      for (const edge of edgesOf(node)) {
        below.push({
          node: edgeChild[edge]!,
          name: `${labelOf(edge)}.${name}`,
        });
      }
    }
    below.sort((a, b) =>
      a.name.length - b.name.length || (a.name < b.name ? -1 : 1)
    );
    const rule = below.find(({ node }) => nodeFlags[node] !== 0);
    if (rule) return rule.name;
    level = below;
  }
  return null;
}
