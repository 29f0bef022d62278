/**
 * `GET`, `PUT` and `DELETE /sandboxes/:id/files/*`: the sandbox's scratch
 * directory as files, through its `SandboxFs` (which never follows a link
 * and is refused while a run is live). Errors name `/scratch/<path>`, never
 * the host path.
 *
 * @module
 */

import { type Context, Hono } from "hono";
import { SandboxFsError } from "../../harness/sandbox_fs.ts";
import { type AppEnv, type AppState, lookup } from "../_context.ts";
import { ApiError } from "../_errors.ts";

/**
 * The scratch file routes, for `app.route("/", fileRoutes(state))`.
 *
 * @param state The server's state (app.ts).
 * @returns A hono app with the routes, for the directory and below it.
 *
 * @example Usage
 * ```ts ignore
 * import { fileRoutes } from "./files.ts";
 * app.route("/", fileRoutes(state));
 * ```
 */
export function fileRoutes(state: AppState): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const files = (c: Context<AppEnv>) => scratchFile(state, c);

  for (const route of ["/sandboxes/:id/files", "/sandboxes/:id/files/*"]) {
    app.get(route, async (c) => {
      const { fs, path } = files(c);
      if (c.req.query("list") === "1") {
        const entries = await fsCall("list", path, () => fs.readDir(path));
        return c.json({ path: `/scratch/${path}`, entries });
      }
      const bytes = await fsCall("read", path, () => fs.readFile(path));
      return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
        "content-type": "application/octet-stream",
      });
    });
    app.put(route, async (c) => {
      const { fs, path } = files(c);
      if (path === "") {
        throw new ApiError(400, "fs_refused", "Cannot write to the directory");
      }
      const data = new Uint8Array(await c.req.arrayBuffer());
      await fsCall("write", path, async () => {
        const parent = path.split("/").slice(0, -1).join("/");
        if (parent !== "") await fs.mkdir(parent, { recursive: true });
        await fs.writeFile(path, data);
      });
      return c.body(null, 204);
    });
    app.delete(route, async (c) => {
      const { fs, path } = files(c);
      const recursive = c.req.query("recursive") === "1";
      await fsCall("remove", path, () => fs.remove(path, { recursive }));
      return c.body(null, 204);
    });
  }

  return app;
}

/**
 * The scratch directory of the caller's sandbox and the path in the URL
 * (decoded, relative to /scratch), or the answer why not: no scratch, or
 * a run is live.
 */
function scratchFile(state: AppState, c: Context<AppEnv>) {
  const entry = lookup(state, c);
  if (entry.sandbox.scratchPath === null) {
    throw new ApiError(
      409,
      "no_scratch",
      `Sandbox '${entry.sandbox.id}' has no scratch directory: create it with policy { "scratch": true }`,
    );
  }
  if (entry.sandbox.running) {
    throw new ApiError(
      409,
      "sandbox_busy",
      `Cannot use the files of sandbox '${entry.sandbox.id}' while a run is live: wait for it to end`,
    );
  }
  // ["", "sandboxes", id, "files", ...path]
  const segments = new URL(c.req.url).pathname.split("/").slice(4);
  let path: string;
  try {
    path = segments.map(decodeURIComponent).filter(Boolean).join("/");
  } catch {
    throw new ApiError(400, "invalid_request", "The file path is not valid");
  }
  return { fs: entry.sandbox.fs, path };
}

/** Runs a scratch file operation, answering errors without host paths. */
async function fsCall<T>(
  op: string,
  path: string,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof SandboxFsError) {
      throw new ApiError(400, "fs_refused", error.message);
    }
    const code = (error as { code?: unknown }).code;
    const shown = `/scratch/${path}`;
    if (code === "ENOENT") {
      throw new ApiError(
        404,
        "not_found",
        `Cannot ${op} '${shown}': no such file or directory`,
      );
    }
    const why: Record<string, string> = {
      EISDIR: "it is a directory (list it with ?list=1)",
      ENOTDIR: "a component is not a directory",
      ENOTEMPTY: "the directory is not empty (add ?recursive=1)",
      EEXIST: "it already exists",
    };
    if (typeof code === "string" && code in why) {
      throw new ApiError(
        400,
        "fs_refused",
        `Cannot ${op} '${shown}': ${why[code]}`,
      );
    }
    throw error;
  }
}
