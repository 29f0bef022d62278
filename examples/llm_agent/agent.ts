/**
 * The agent loop: send the conversation with a `run_code` tool to an
 * OpenAI-compatible Chat Completions API; when the model calls the tool, run
 * the code in an airlock sandbox and send the result back as a tool message;
 * stop at the model's first answer without tool calls, or after `maxSteps`
 * model calls.
 *
 * Trust split: this process (trusted) holds the API key and calls the model
 * directly. Generated code runs in one sandbox per agent run (its `/scratch`
 * kept between tool calls) that can reach only the model API's host, with
 * the key added by airlock's injector outside the sandbox. The key is in no
 * byte the sandbox can read, and so in no tool message.
 *
 * @module
 */

import { Sandbox } from "../../mod.ts";
import {
  ChatClient,
  type ChatClientOptions,
  type ChatMessage,
  type ChatReply,
} from "./model_client.ts";
import {
  RUN_CODE_TOOL,
  runToolCall,
  sandboxPolicy,
  type SandboxPolicyOptions,
  type ToolRun,
} from "./run_code_tool.ts";

/** The default system prompt. */
export const SYSTEM_PROMPT =
  "You are a careful assistant. When a question needs computation or checking, call the run_code tool with a Deno TypeScript program that prints what you need, read its output, and then answer. Keep the final answer short.";

/** Something that happened during a run of the agent. */
export type AgentEvent =
  | { type: "model"; step: number; reply: ChatReply }
  | { type: "tool"; step: number; run: ToolRun };

/** Options for {@linkcode runAgent}. */
export interface AgentOptions extends ChatClientOptions {
  /** The user's task. */
  task: string;
  /** The system prompt; default {@linkcode SYSTEM_PROMPT}. */
  system?: string;
  /** Most model calls; default 8. */
  maxSteps?: number;
  /** Sandbox settings (model access, limits, upstream mapping). */
  sandbox?: Omit<SandboxPolicyOptions, "baseUrl">;
  /** Where sandbox workspaces go; default `$TMPDIR`. */
  tmpDir?: string;
  /** Receives each model reply and each tool run as it happens. */
  onEvent?: (event: AgentEvent) => void;
}

/** How a run of the agent ended. */
export interface AgentResult {
  /** `answer`: the model answered; `max-steps`: it was still calling tools. */
  status: "answer" | "max-steps";
  /** The final answer (null for `max-steps`). */
  answer: string | null;
  /** Model calls made. */
  steps: number;
  /** The whole conversation, tool messages included. */
  messages: ChatMessage[];
}

/**
 * Runs the agent loop to an answer.
 *
 * @param options Model API, task and limits.
 * @returns The answer and the conversation.
 * @throws {ModelApiError} When the model API fails.
 * @throws {PolicyError} When the sandbox policy is invalid.
 *
 * @example Usage
 * ```ts ignore
 * import { runAgent } from "./agent.ts";
 * const result = await runAgent({
 *   baseUrl: "https://api.openai.com",
 *   apiKey: Deno.env.get("OPENAI_API_KEY")!,
 *   model: "gpt-4o-mini",
 *   task: "What is the 30th Fibonacci number?",
 * });
 * console.log(result.answer);
 * ```
 */
export async function runAgent(options: AgentOptions): Promise<AgentResult> {
  const client = new ChatClient(options);
  const maxSteps = options.maxSteps ?? 8;
  const messages: ChatMessage[] = [
    { role: "system", content: options.system ?? SYSTEM_PROMPT },
    { role: "user", content: options.task },
  ];
  const { policy, secrets } = sandboxPolicy(
    { ...options.sandbox, baseUrl: options.baseUrl },
    options.apiKey,
  );
  // Made at the first tool call: a model that answers directly costs none.
  let sandbox: Promise<Sandbox> | undefined;
  const sandboxNow = () =>
    sandbox ??= Sandbox.create({
      policy,
      secrets,
      ...(options.tmpDir ? { tmpDir: options.tmpDir } : {}),
    });
  try {
    for (let step = 1; step <= maxSteps; step++) {
      const reply = await client.complete(messages, [RUN_CODE_TOOL]);
      options.onEvent?.({ type: "model", step, reply });
      messages.push(reply.message);
      const calls = reply.message.tool_calls ?? [];
      if (calls.length === 0) {
        return {
          status: "answer",
          answer: reply.message.content ?? "",
          steps: step,
          messages,
        };
      }
      for (const call of calls) {
        const run = await runToolCall(await sandboxNow(), call);
        options.onEvent?.({ type: "tool", step, run });
        messages.push({
          role: "tool",
          tool_call_id: call.id,
          content: run.content,
        });
      }
    }
    return { status: "max-steps", answer: null, steps: maxSteps, messages };
  } finally {
    await (await sandbox?.catch(() => undefined))?.close();
  }
}
