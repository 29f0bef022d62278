/**
 * One airlock {@linkcode Sandbox} per conversation: created on first use,
 * shared by every later run of that conversation (so its `/scratch` files
 * persist between tool calls), used by one run at a time, and closed after
 * it has been idle for a while.
 *
 * @module
 */

import type { Sandbox } from "../../mod.ts";

/** Options for {@linkcode ConversationStore}. */
export interface ConversationStoreOptions {
  /** Makes the sandbox of a new conversation. */
  create: (conversationId: string) => Promise<Sandbox>;
  /** A conversation idle this long (no run live) is closed. */
  idleMs: number;
  /** Most conversations open at once. */
  maxConversations: number;
}

/** There are already `maxConversations` open conversations. */
export class TooManyConversationsError extends Error {
  /** @param max The limit that was reached. */
  constructor(max: number) {
    super(
      `Cannot open another conversation: ${max} are open (the server's limit); retry later or end one with DELETE /conversations/{id}`,
    );
    this.name = "TooManyConversationsError";
  }
}

/** The store was closed (the server is shutting down). */
export class StoreClosedError extends Error {
  constructor() {
    super("The server is shutting down: no new runs");
    this.name = "StoreClosedError";
  }
}

interface Conversation {
  sandbox: Promise<Sandbox>;
  /** Runs waiting or live. */
  pending: number;
  /** When the last run ended (or the conversation was opened). */
  lastUsed: number;
  /** The end of this conversation's queue of runs. */
  tail: Promise<unknown>;
}

/**
 * The open conversations, each with its own sandbox.
 *
 * @example Usage
 * ```ts ignore
 * import { Sandbox } from "../../mod.ts";
 * import { ConversationStore } from "./conversations.ts";
 * const store = new ConversationStore({
 *   create: () => Sandbox.create({ policy: { scratch: true } }),
 *   idleMs: 600_000,
 *   maxConversations: 32,
 * });
 * const result = await store.use("c1", (s) => s.run({ code: "console.log(1)" }));
 * await store.closeAll();
 * ```
 */
export class ConversationStore {
  #options: ConversationStoreOptions;
  #open = new Map<string, Conversation>();
  #sweeper: ReturnType<typeof setInterval>;
  #closed = false;

  /** @param options How sandboxes are made and when they expire. */
  constructor(options: ConversationStoreOptions) {
    this.#options = options;
    // Checking twice per idle period closes a conversation at most 1.5
    // idle periods after its last run.
    this.#sweeper = setInterval(
      () => void this.sweep(),
      Math.max(25, Math.min(options.idleMs / 2, 30_000)),
    );
    Deno.unrefTimer(this.#sweeper);
  }

  /** Ids of the open conversations. */
  get ids(): string[] {
    return [...this.#open.keys()];
  }

  /**
   * Runs `fn` with the conversation's sandbox, opening the conversation if
   * needed. Calls for one conversation run one after another, in order.
   *
   * @param id The conversation.
   * @param fn What to do with its sandbox.
   * @returns What `fn` returns.
   * @throws {TooManyConversationsError} When a new conversation is over the limit.
   */
  use<T>(id: string, fn: (sandbox: Sandbox) => Promise<T>): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new StoreClosedError());
    }
    let conversation = this.#open.get(id);
    if (!conversation) {
      if (this.#open.size >= this.#options.maxConversations) {
        return Promise.reject(
          new TooManyConversationsError(this.#options.maxConversations),
        );
      }
      const sandbox = this.#options.create(id);
      conversation = {
        sandbox,
        pending: 0,
        lastUsed: Date.now(),
        tail: Promise.resolve(),
      };
      this.#open.set(id, conversation);
      // A sandbox that could not be made is forgotten: the next call retries.
      const opened = conversation;
      sandbox.catch(() => {
        if (this.#open.get(id) === opened) this.#open.delete(id);
      });
    }
    const current = conversation;
    current.pending++;
    const result = current.tail.then(async () => fn(await current.sandbox))
      .finally(() => {
        current.pending--;
        current.lastUsed = Date.now();
      });
    current.tail = result.catch(() => {});
    return result;
  }

  /**
   * Closes one conversation now (killing its run, if any).
   *
   * @param id The conversation.
   * @returns Whether it was open.
   */
  async close(id: string): Promise<boolean> {
    const conversation = this.#open.get(id);
    if (!conversation) return false;
    this.#open.delete(id);
    await closeSandbox(conversation);
    return true;
  }

  /** Closes every conversation idle for longer than `idleMs`. */
  async sweep(): Promise<void> {
    const now = Date.now();
    const idle: Conversation[] = [];
    for (const [id, conversation] of this.#open) {
      if (
        conversation.pending === 0 &&
        now - conversation.lastUsed > this.#options.idleMs
      ) {
        this.#open.delete(id);
        idle.push(conversation);
      }
    }
    await Promise.all(idle.map(closeSandbox));
  }

  /** Stops expiry and closes every conversation. Idempotent. */
  async closeAll(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweeper);
    const all = [...this.#open.values()];
    this.#open.clear();
    await Promise.all(all.map(closeSandbox));
  }
}

async function closeSandbox(conversation: Conversation): Promise<void> {
  try {
    await (await conversation.sandbox).close();
  } catch {
    // It was never created: nothing to close.
  }
}
