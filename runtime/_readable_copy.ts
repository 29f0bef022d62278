/**
 * Makes host files (the Deno binary, libraries) readable by sandbox uids.
 * Sandboxes run as their own unprivileged host uid, and bwrap opens its mount
 * sources as that uid: a Deno installed under /root (npx's cache) cannot be
 * mounted. Such files are copied once into a root-owned cache directory.
 *
 * @module
 */

/**
 * Whether every directory on the way to `path` is traversable by "others"
 * and the file itself readable and executable by them.
 *
 * @param path An absolute, resolved path.
 * @returns True when any uid can open it.
 *
 * @example Usage
 * ```ts
 * import { readableByAnyone } from "./_readable_copy.ts";
 * console.log(readableByAnyone("/bin/sh"));
 * ```
 */
export function readableByAnyone(path: string): boolean {
  try {
    const mode = Deno.statSync(path).mode ?? 0;
    if ((mode & 0o005) !== 0o005) return false;
    const parts = path.split("/").filter(Boolean);
    for (let i = parts.length - 1; i >= 0; i--) {
      const dir = "/" + parts.slice(0, i).join("/");
      if (((Deno.statSync(dir).mode ?? 0) & 0o001) === 0) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns `path` if anyone can read it, else a copy in a cache directory
 * under `cacheParent` that anyone can read (but only the harness's user can
 * write: a cache another local user could pre-create is refused).
 *
 * @param path The file.
 * @param cacheParent Where the cache directory lives (e.g. /var/tmp).
 * @returns A path readable by sandbox uids.
 * @throws {Error} If the cache directory exists with unsafe ownership/mode.
 *
 * @example Usage
 * ```ts ignore
 * import { readableCopy } from "./_readable_copy.ts";
 * console.log(await readableCopy("/root/.npm/_npx/x/deno", "/var/tmp"));
 * ```
 */
export async function readableCopy(
  path: string,
  cacheParent: string,
): Promise<string> {
  if (readableByAnyone(path)) return path;
  const info = await Deno.stat(path);
  const key = await digest(
    `${path}\0${info.size}\0${info.mtime?.getTime() ?? 0}`,
  );
  const uid = Deno.uid();
  const cache = `${cacheParent}/airlock-bin-${uid}`;
  await Deno.mkdir(cache, { mode: 0o755 }).catch((error) => {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  });
  const cacheInfo = await Deno.lstat(cache);
  // Another local user could pre-create the directory in a shared /tmp and
  // plant a binary there that every sandbox would then run.
  if (
    !cacheInfo.isDirectory || cacheInfo.uid !== uid ||
    ((cacheInfo.mode ?? 0) & 0o022) !== 0
  ) {
    throw new Error(
      `Cannot use the binary cache '${cache}' as it is not a directory owned by uid ${uid} and writable only by it: remove it`,
    );
  }
  await Deno.chmod(cache, 0o755);
  const name = path.slice(path.lastIndexOf("/") + 1);
  const target = `${cache}/${key.slice(0, 16)}-${name}`;
  try {
    await Deno.stat(target);
    return target;
  } catch {
    // not cached yet
  }
  const temp = `${target}.${crypto.randomUUID()}.tmp`;
  await Deno.copyFile(path, temp);
  await Deno.chmod(temp, 0o755);
  await Deno.rename(temp, target);
  return target;
}

async function digest(text: string): Promise<string> {
  const hash = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(text),
  );
  return Array.from(
    new Uint8Array(hash),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}
