/**
 * `deno task example:server`: serves the `run_code` tool on loopback until
 * SIGINT or SIGTERM, then closes every conversation's sandbox.
 *
 * Configuration (environment):
 * - `PORT` (default 8788), `LISTEN_HOST` (default 127.0.0.1; the server has no
 *   authentication, keep it on loopback);
 * - `API_HOST`: the one host sandboxes may call (default: none, no network);
 * - `API_HEADER` (default `Authorization`) and `API_HEADER_VALUE` (default
 *   `Bearer ${env:API_TOKEN}`): the header the injector adds toward
 *   `API_HOST`, with `${env:NAME}` read from this process's environment;
 * - `IDLE_MINUTES` (default 15): idle conversations are closed after this.
 *
 * @module
 */

import { PolicyError } from "../../mod.ts";
import { type AgentServerOptions, createAgentServer } from "./server.ts";

function options(
  env: (name: string) => string | undefined,
): AgentServerOptions {
  const host = env("API_HOST");
  const idle = Number(env("IDLE_MINUTES") ?? "15");
  if (!(idle > 0)) throw new Error("IDLE_MINUTES must be a positive number");
  return {
    idleMs: idle * 60_000,
    ...(host
      ? {
        api: {
          host,
          header: env("API_HEADER") ?? "Authorization",
          value: env("API_HEADER_VALUE") ?? "Bearer ${env:API_TOKEN}",
        },
      }
      : {}),
  };
}

if (import.meta.main) {
  const env = (name: string) => Deno.env.get(name);
  let server;
  try {
    server = await createAgentServer(options(env));
  } catch (error) {
    const hint = error instanceof PolicyError
      ? "\n(set the variable the header value names, e.g. API_TOKEN)"
      : "";
    console.error(`agent_server: ${(error as Error).message}${hint}`);
    Deno.exit(2);
  }
  const http = Deno.serve({
    hostname: env("LISTEN_HOST") ?? "127.0.0.1",
    port: Number(env("PORT") ?? "8788"),
    onListen: ({ hostname, port }) =>
      console.log(
        `run_code tool on http://${hostname}:${port}/tools/run_code (API: ${
          env("API_HOST") ?? "none"
        })`,
      ),
  }, server.app.fetch);
  const stop = Promise.withResolvers<void>();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => stop.resolve());
  }
  await stop.promise;
  await server.close();
  await http.shutdown();
  Deno.exit(0);
}
