/**
 * A minimal client for an OpenAI-compatible Chat Completions API
 * (`POST {baseUrl}/v1/chat/completions` with function tools). It runs on the
 * trusted side: it holds the API key and talks to the model directly.
 *
 * @module
 */

/** A function call the model asked for. */
export interface ToolCall {
  /** Id to answer with in the tool message. */
  id: string;
  /** Always "function". */
  type: "function";
  /** Which function, with its arguments as a JSON string. */
  function: { name: string; arguments: string };
}

/** One message of a conversation. */
export type ChatMessage =
  | { role: "system" | "user"; content: string }
  | { role: "assistant"; content: string | null; tool_calls?: ToolCall[] }
  | { role: "tool"; tool_call_id: string; content: string };

/** A function tool offered to the model (JSON Schema parameters). */
export interface ToolDefinition {
  /** Always "function". */
  type: "function";
  /** The function's name, description and parameter schema. */
  function: {
    name: string;
    description: string;
    parameters: Record<string, unknown>;
  };
}

/** The model's reply. */
export interface ChatReply {
  /** The assistant message (with `tool_calls` when it wants a tool). */
  message: Extract<ChatMessage, { role: "assistant" }>;
  /** `stop`, `tool_calls`, `length`, ... as the API reports it. */
  finishReason: string | null;
}

/** Options for {@linkcode ChatClient}. */
export interface ChatClientOptions {
  /** The API's base URL, e.g. `https://api.openai.com` (a trailing `/v1` is dropped). */
  baseUrl: string;
  /** The API key (sent as `Authorization: Bearer`). */
  apiKey: string;
  /** Model name, e.g. `gpt-4o-mini`. */
  model: string;
  /** A Deno HTTP client (proxy, extra CA certificates); default fetch's. */
  httpClient?: Deno.HttpClient;
  /** Longest wait for one reply; default 120 s. */
  timeoutMs?: number;
}

/** The model API refused a request or answered something unusable. */
export class ModelApiError extends Error {
  /** HTTP status, or null when there was no usable response. */
  readonly status: number | null;
  /**
   * @param message What went wrong.
   * @param status The HTTP status, if any.
   */
  constructor(message: string, status: number | null) {
    super(message);
    this.name = "ModelApiError";
    this.status = status;
  }
}

/**
 * Talks to one model.
 *
 * @example Usage
 * ```ts ignore
 * import { ChatClient } from "./model_client.ts";
 * const client = new ChatClient({
 *   baseUrl: "https://api.openai.com",
 *   apiKey: Deno.env.get("OPENAI_API_KEY")!,
 *   model: "gpt-4o-mini",
 * });
 * const reply = await client.complete([{ role: "user", content: "Hi" }], []);
 * console.log(reply.message.content);
 * ```
 */
export class ChatClient {
  /** The chat completions endpoint. */
  readonly endpoint: string;
  #options: ChatClientOptions;

  /** @param options Endpoint, key and model. */
  constructor(options: ChatClientOptions) {
    // `https://host/v1` (the OpenAI SDKs' convention) means `https://host`.
    const base = options.baseUrl.replace(/\/+$/, "").replace(/\/v1$/, "");
    this.endpoint = `${base}/v1/chat/completions`;
    this.#options = options;
  }

  /**
   * Sends the conversation and returns the model's next message.
   *
   * @param messages The conversation so far.
   * @param tools The tools the model may call.
   * @returns The reply.
   * @throws {ModelApiError} On a non-2xx status, a timeout or a malformed reply.
   */
  async complete(
    messages: readonly ChatMessage[],
    tools: readonly ToolDefinition[],
  ): Promise<ChatReply> {
    const abort = new AbortController();
    const timer = setTimeout(
      () => abort.abort(),
      this.#options.timeoutMs ?? 120_000,
    );
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.endpoint, {
        method: "POST",
        headers: {
          authorization: `Bearer ${this.#options.apiKey}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({
          model: this.#options.model,
          messages,
          ...(tools.length > 0 ? { tools, tool_choice: "auto" } : {}),
        }),
        signal: abort.signal,
        ...(this.#options.httpClient
          ? { client: this.#options.httpClient }
          : {}),
      });
      text = await response.text();
    } catch (error) {
      throw new ModelApiError(
        `Cannot reach the model API at ${this.endpoint}: ${
          abort.signal.aborted ? "no reply in time" : (error as Error).message
        }`,
        null,
      );
    } finally {
      clearTimeout(timer);
    }
    if (!response.ok) {
      throw new ModelApiError(
        `The model API answered ${response.status}: ${this.#excerpt(text)}`,
        response.status,
      );
    }
    return this.#parse(text, response.status);
  }

  #parse(text: string, status: number): ChatReply {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new ModelApiError(
        `The model API's reply is not JSON: ${this.#excerpt(text)}`,
        status,
      );
    }
    const choice = (body as { choices?: unknown[] })?.choices?.[0] as
      | { message?: ChatReply["message"]; finish_reason?: string | null }
      | undefined;
    const message = choice?.message;
    if (!message || message.role !== "assistant") {
      throw new ModelApiError(
        `The model API's reply has no assistant message: ${
          this.#excerpt(text)
        }`,
        status,
      );
    }
    return {
      message: {
        role: "assistant",
        content: message.content ?? null,
        ...(message.tool_calls?.length
          ? { tool_calls: message.tool_calls }
          : {}),
      },
      finishReason: choice?.finish_reason ?? null,
    };
  }

  /** A short excerpt of a reply for an error message, without the key. */
  #excerpt(text: string): string {
    const short = text.length > 500 ? `${text.slice(0, 500)}...` : text;
    return short.replaceAll(this.#options.apiKey, "[redacted]");
  }
}
