/**
 * Deno Deploy's resources in the `@deno/sandbox`-compatible API: `Client`
 * (the management API), `Volume` and `Snapshot`. None exists locally; the
 * classes are exported so that imports keep working, and using one throws
 * an `AirlockUnsupportedError` naming it.
 *
 * @module
 */

import { rejectUnsupported, unsupported } from "./errors.ts";

const DEPLOY_ONLY =
  "it manages Deno Deploy resources (apps, volumes, snapshots), which do not exist locally";

/**
 * Deno Deploy's management API: unsupported locally.
 *
 * @example Usage
 * ```ts
 * import { AirlockUnsupportedError, Client } from "./mod.ts";
 * import assert from "node:assert/strict";
 * assert.throws(() => new Client(), AirlockUnsupportedError);
 * ```
 */
export class Client {
  /**
   * Throws: there is no Deno Deploy locally.
   *
   * @param _options Ignored.
   */
  constructor(_options?: unknown) {
    unsupported("new Client()", DEPLOY_ONLY);
  }
}

/**
 * Deno Deploy volumes: unsupported locally (read-only host directories are
 * airlock's `inputs`).
 *
 * @example Usage
 * ```ts
 * import { AirlockUnsupportedError, Volume } from "./mod.ts";
 * import assert from "node:assert/strict";
 * await assert.rejects(Volume.create(), AirlockUnsupportedError);
 * ```
 */
export class Volume {
  /**
   * Throws: there is no Deno Deploy locally.
   *
   * @param _init Ignored.
   */
  constructor(_init?: unknown) {
    unsupported("new Volume()", DEPLOY_ONLY);
  }
  /**
   * Rejects: there is no Deno Deploy locally.
   *
   * @param _options Ignored.
   * @returns Never: rejects.
   */
  static create(_options?: unknown): Promise<Volume> {
    return rejectUnsupported("Volume.create()", DEPLOY_ONLY);
  }
  /**
   * Rejects: there is no Deno Deploy locally.
   *
   * @param _id Ignored.
   * @param _options Ignored.
   * @returns Never: rejects.
   */
  static get(_id?: unknown, _options?: unknown): Promise<Volume | null> {
    return rejectUnsupported("Volume.get()", DEPLOY_ONLY);
  }
}

/**
 * Deno Deploy snapshots: unsupported locally.
 *
 * @example Usage
 * ```ts
 * import { AirlockUnsupportedError, Snapshot } from "./mod.ts";
 * import assert from "node:assert/strict";
 * await assert.rejects(Snapshot.get("id"), AirlockUnsupportedError);
 * ```
 */
export class Snapshot {
  /**
   * Throws: there is no Deno Deploy locally.
   *
   * @param _init Ignored.
   */
  constructor(_init?: unknown) {
    unsupported("new Snapshot()", DEPLOY_ONLY);
  }
  /**
   * Rejects: there is no Deno Deploy locally.
   *
   * @param _id Ignored.
   * @param _options Ignored.
   * @returns Never: rejects.
   */
  static create(_id?: unknown, _options?: unknown): Promise<Snapshot> {
    return rejectUnsupported("Snapshot.create()", DEPLOY_ONLY);
  }
  /**
   * Rejects: there is no Deno Deploy locally.
   *
   * @param _id Ignored.
   * @param _options Ignored.
   * @returns Never: rejects.
   */
  static get(_id?: unknown, _options?: unknown): Promise<Snapshot | null> {
    return rejectUnsupported("Snapshot.get()", DEPLOY_ONLY);
  }
}
