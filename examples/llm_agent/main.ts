/**
 * `deno task example:agent "<task>"`: runs the agent loop once and prints
 * the answer. Tool calls and their results go to stderr as they happen.
 *
 * Environment: `OPENAI_API_KEY` (required), `OPENAI_BASE_URL` (default
 * `https://api.openai.com`; any OpenAI-compatible server), `OPENAI_MODEL`
 * (default `gpt-4o-mini`), `AGENT_MAX_STEPS` (default 8).
 *
 * @module
 */

import { PolicyError } from "../../mod.ts";
import { type AgentEvent, runAgent } from "./agent.ts";
import { ModelApiError } from "./model_client.ts";

function show(event: AgentEvent): void {
  if (event.type === "tool") {
    const { run } = event;
    console.error(`--- step ${event.step}: run_code ---\n${run.code ?? ""}`);
    console.error(`--- result ---\n${run.content}\n`);
  }
}

if (import.meta.main) {
  const apiKey = Deno.env.get("OPENAI_API_KEY");
  const task = Deno.args.join(" ").trim();
  if (!apiKey || !task) {
    console.error(
      'Usage: OPENAI_API_KEY=... deno task example:agent "<task>"\n' +
        "Optional: OPENAI_BASE_URL, OPENAI_MODEL, AGENT_MAX_STEPS",
    );
    Deno.exit(2);
  }
  try {
    const result = await runAgent({
      baseUrl: Deno.env.get("OPENAI_BASE_URL") ?? "https://api.openai.com",
      apiKey,
      model: Deno.env.get("OPENAI_MODEL") ?? "gpt-4o-mini",
      maxSteps: Number(Deno.env.get("AGENT_MAX_STEPS") ?? "8"),
      task,
      onEvent: show,
    });
    if (result.status === "max-steps") {
      console.error(`No answer after ${result.steps} steps.`);
      Deno.exit(1);
    }
    console.log(result.answer);
    Deno.exit(0);
  } catch (error) {
    if (error instanceof ModelApiError || error instanceof PolicyError) {
      console.error(`llm_agent: ${error.message}`);
      Deno.exit(1);
    }
    throw error;
  }
}
