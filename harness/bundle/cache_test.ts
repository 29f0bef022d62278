import assert from "node:assert/strict";
import { BundleCache, type DepsChecker, emptyDeps } from "./cache.ts";
import { BundleError, type BundleOptions, bundleProgram } from "./bundle.ts";
import { NpmPackages } from "./npm_packages.ts";

/** Answers nothing: for entries without dependencies. */
const NOTHING: DepsChecker = {
  has: () => Promise.resolve(false),
  read: () => Promise.resolve(undefined),
  package: () => Promise.reject(new Error("no packages")),
};

/** Bundles with a private cache; returns the bundle and the cache's counts. */
function cached(cache: BundleCache, options: BundleOptions = {}) {
  return async (source: Parameters<typeof bundleProgram>[0]) => {
    const js = await bundleProgram(source, { ...options, cache });
    return { js, ...cache.stats };
  };
}

/**
 * A package cache laid out as `deno install` leaves it (one directory per
 * version, the marker written last), holding `tiny@<version>` whose
 * default export names its version. Offline: nothing is installed.
 */
async function fakeNpmCache(): Promise<{
  dir: string;
  add(version: string): Promise<void>;
}> {
  const dir = await Deno.makeTempDir({
    dir: "/var/tmp",
    prefix: "airlock-cache-test-",
  });
  await Deno.chmod(dir, 0o755);
  const add = async (version: string) => {
    const install = `${dir}/tiny@${version}`;
    const pkg =
      `${install}/node_modules/.deno/tiny@${version}/node_modules/tiny`;
    await Deno.mkdir(pkg, { recursive: true });
    await Deno.writeTextFile(
      `${pkg}/package.json`,
      JSON.stringify({ name: "tiny", version, main: "index.js" }),
    );
    await Deno.writeTextFile(
      `${pkg}/index.js`,
      `module.exports = "tiny ${version}";`,
    );
    await Deno.symlink(
      `.deno/tiny@${version}/node_modules/tiny`,
      `${install}/node_modules/tiny`,
    );
    await Deno.writeTextFile(
      `${install}/.airlock-installed`,
      `tiny@${version}`,
    );
  };
  return { dir, add };
}

const TINY = 'import tiny from "tiny";\nconsole.log(tiny);\n';

Deno.test("BundleCache serves a hit only while every recorded answer is the same", async () => {
  const cache = new BundleCache();
  const deps = emptyDeps();
  deps.files.set("/lib.ts", "0".repeat(64));
  deps.files.set("/util", false);
  cache.set("k", "js", deps);
  let util = false;
  const checker: DepsChecker = {
    has: (path) => Promise.resolve(path === "/util" ? util : true),
    read: () => Promise.resolve("changed"),
    package: () => Promise.reject(new Error("none")),
  };
  // The content hash differs: a miss, and the stale entry is gone.
  assert.equal(await cache.get("k", checker), null);
  assert.equal(cache.stats.entries, 0);

  cache.set("k", "js", {
    files: new Map([["/util", false]]),
    packages: new Map(),
  });
  assert.equal(await cache.get("k", checker), "js");
  util = true; // a file appeared where the bundler found none
  assert.equal(await cache.get("k", checker), null);
  assert.deepEqual(
    { hits: cache.stats.hits, misses: cache.stats.misses },
    { hits: 1, misses: 2 },
  );
});

Deno.test("BundleCache drops the least recently used entries past its byte bound", async () => {
  const cache = new BundleCache({ maxBytes: 3_500 });
  const js = "x".repeat(400); // 800 bytes as kept
  for (const key of ["a", "b", "c", "d"]) cache.set(key, js, emptyDeps());
  assert.equal(await cache.get("a", NOTHING), js); // a is now the newest
  cache.set("e", js, emptyDeps()); // past 3,500: b goes, not a
  assert.equal(await cache.get("b", NOTHING), null);
  assert.equal(await cache.get("a", NOTHING), js);
  assert.ok(cache.stats.bytes <= 3_500);
  // One bundle larger than a quarter of the cache is not kept at all.
  cache.set("big", "y".repeat(600), emptyDeps());
  assert.equal(await cache.get("big", NOTHING), null);
  assert.throws(() => new BundleCache({ maxBytes: -1 }), RangeError);
});

Deno.test("BundleCache.key() is the same for equal parts in any key order, different for any change", async () => {
  const a = await BundleCache.key({ source: { code: "1" }, scope: "" });
  const b = await BundleCache.key({ scope: "", source: { code: "1" } });
  assert.equal(a, b);
  assert.notEqual(
    a,
    await BundleCache.key({ source: { code: "2" }, scope: "" }),
  );
  assert.notEqual(
    a,
    await BundleCache.key({ source: { code: "1" }, scope: "t" }),
  );
});

Deno.test("bundleProgram() with a cache returns the identical bundle on a hit, and misses on any changed file", async () => {
  const cache = new BundleCache();
  const bundle = cached(cache);
  const files = {
    "main.ts": 'import { x } from "./lib.ts";\nconsole.log(x);\n',
    "lib.ts": "export const x: number = 1;\n",
  };
  const first = await bundle({ files, entry: "main.ts" });
  assert.equal(first.misses, 1);
  const second = await bundle({ files, entry: "main.ts" });
  assert.equal(second.js, first.js);
  assert.equal(second.hits, 1);
  // One character in an imported file: another program, another bundle.
  const changed = await bundle({
    files: { ...files, "lib.ts": "export const x: number = 2;\n" },
    entry: "main.ts",
  });
  assert.equal(changed.misses, 2);
  assert.notEqual(changed.js, first.js);
  assert.match(changed.js, /x = 2/);
  // Inline code without imports goes the same way.
  const code = await bundle({ code: "console.log(1 as number);" });
  assert.equal(
    (await bundle({ code: "console.log(1 as number);" })).js,
    code.js,
  );
  assert.notEqual(
    (await bundle({ code: "console.log(2 as number);" })).js,
    code.js,
  );
});

Deno.test("bundleProgram() with a cache checks a program on disk again: an edited, a new or a removed file misses", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airlock-cache-test-" });
  try {
    await Deno.writeTextFile(
      `${dir}/main.ts`,
      'import { x } from "./util";\nconsole.log(x);\n',
    );
    await Deno.writeTextFile(`${dir}/util.ts`, 'export const x = "util.ts";\n');
    const cache = new BundleCache();
    const bundle = cached(cache);
    const first = await bundle({ path: `${dir}/main.ts` });
    assert.match(first.js, /"util\.ts"/);
    assert.equal((await bundle({ path: `${dir}/main.ts` })).js, first.js);
    assert.equal(cache.stats.hits, 1);

    await Deno.writeTextFile(`${dir}/util.ts`, 'export const x = "edited";\n');
    const edited = await bundle({ path: `${dir}/main.ts` });
    assert.equal(edited.misses, 2);
    assert.match(edited.js, /"edited"/);

    // "./util" was tried as "util" before "util.ts": a file by that name
    // now wins the import, so the old bundle must not be served.
    await Deno.writeTextFile(`${dir}/util`, 'export const x = "util";\n');
    const shadowed = await bundle({ path: `${dir}/main.ts` });
    assert.equal(shadowed.misses, 3);
    assert.match(shadowed.js, /"util"/);

    await Deno.remove(`${dir}/util`);
    await Deno.remove(`${dir}/util.ts`);
    await assert.rejects(
      bundleProgram({ path: `${dir}/main.ts` }, { cache }),
      BundleError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bundleProgram() with a cache misses when another package version is installed, the allowlist or the scope differs", async () => {
  const npmCache = await fakeNpmCache();
  try {
    await npmCache.add("1.0.0");
    const cache = new BundleCache();
    const npm = new NpmPackages({ allow: ["tiny"], cacheDir: npmCache.dir });
    const bundle = cached(cache, { npm });
    const first = await bundle({ code: TINY });
    assert.match(first.js, /tiny 1\.0\.0/);
    assert.equal((await bundle({ code: TINY })).js, first.js);
    assert.equal(cache.stats.hits, 1);

    // A newer install satisfies the import better: the program now gets it.
    await npmCache.add("1.1.0");
    const newer = await bundle({ code: TINY });
    assert.equal(newer.misses, 2);
    assert.match(newer.js, /tiny 1\.1\.0/);

    // Other bundler options, another key: a range pinned by the policy...
    const pinned = new NpmPackages({
      allow: ["tiny@1.0.0"],
      cacheDir: npmCache.dir,
    });
    const old = await cached(cache, { npm: pinned })({ code: TINY });
    assert.equal(old.misses, 3);
    assert.match(old.js, /tiny 1\.0\.0/);
    // ...another scope (a tenant of its own) never shares the entry...
    const other = await cached(cache, { npm, cacheScope: "tenant-b" })({
      code: TINY,
    });
    assert.equal(other.misses, 4);
    assert.equal(other.js, newer.js);
    // ...and a policy without the package is refused, never served.
    const refusals: string[] = [];
    await assert.rejects(
      bundleProgram({ code: TINY }, {
        cache,
        npm: new NpmPackages({ allow: ["other"], cacheDir: npmCache.dir }),
        onRefused: (r) => refusals.push(r.specifier),
      }),
      /not in the policy's npm allowlist/,
    );
    assert.deepEqual(refusals, ["tiny"]);
  } finally {
    await Deno.remove(npmCache.dir, { recursive: true });
  }
});

Deno.test("bundleProgram() with a cache does not keep a refused program: each attempt is refused and reported", async () => {
  const cache = new BundleCache();
  const refusals: string[] = [];
  for (let i = 0; i < 2; i++) {
    await assert.rejects(
      bundleProgram(
        { code: 'import x from "npm:left-pad";\nconsole.log(x);' },
        {
          cache,
          onRefused: (r) => refusals.push(r.specifier),
        },
      ),
      BundleError,
    );
  }
  assert.deepEqual(refusals, ["npm:left-pad", "npm:left-pad"]);
  assert.equal(cache.stats.entries, 0);
});

Deno.test("bundleProgram() with cache: null bundles every time", async () => {
  const js = await bundleProgram({ code: "console.log(3)" }, { cache: null });
  assert.match(js, /console\.log\(3\)/);
});
