/**
 * What a script's source shows about the permissions it uses, read from
 * its literal calls only (nothing is run): whether it listens (a server's
 * `--allow-net` is for its own address, not for some API host) and on
 * which address, the hosts it fetches, the variables, files and programs
 * it names. This turns a fix into the project's own command
 * (`--allow-net=0.0.0.0:8000`), and tells a harmless `deno eval
 * 'console.log(1)'` from one that fetches or spawns.
 *
 * A value found here is a start, not a proof: code can build names at run
 * time. Recording a run (`airlock audit --learn`) gives the exact list.
 *
 * @module
 */

/** What a script's literal calls show. */
export interface SourceFacts {
  /** It starts a server (Deno.serve, app.listen, Fresh's start/dev...). */
  listens: boolean;
  /** The address it listens on, as far as the source says. */
  hostname: string | null;
  /** The port, as far as the source says. */
  port: number | null;
  /** A variable the port is read from (`Deno.env.get("PORT") ?? 8000`). */
  portEnv: string | null;
  /** Hosts of literal URLs it fetches or opens sockets to. */
  hosts: string[];
  /** Environment variables it reads by name. */
  env: string[];
  /** Literal paths it reads. */
  reads: string[];
  /** Literal paths it writes. */
  writes: string[];
  /** Literal programs it runs. */
  runs: string[];
  /**
   * The kinds it also uses with names built at run time
   * (`Deno.readTextFile(path)`, `fetch(url)`): a list of its literals
   * alone would make those calls fail.
   */
  built: ("read" | "write" | "net" | "env" | "run")[];
  /** Permission-gated APIs it calls (for `deno eval`'s code). */
  apis: string[];
  /** Of those, the ones that run or load other code (subprocess, import). */
  codeApis: string[];
}

/** `Deno.*` members no permission guards: using them is harmless. */
const FREE_DENO = new Set([
  "version",
  "build",
  "args",
  "noColor",
  "pid",
  "ppid",
  "exit",
  "exitCode",
  "inspect",
  "memoryUsage",
  "stdout",
  "stderr",
  "stdin",
  "consoleSize",
  "mainModule",
  "errors",
  "customInspect",
]);
const CODE_APIS = new Set([
  "Deno.Command",
  "Deno.run",
  "Deno.dlopen",
  "child_process",
  "import()",
  "require()",
  "eval()",
  "Function()",
  "Worker",
]);

/** The `Deno.*` calls that read or write the path they are given. */
const READS = "readTextFile|readFile|open|readDir|stat|lstat|realPath";
const WRITES = "writeTextFile|writeFile|mkdir|remove|create";

/**
 * Reads a script's source for the permissions its literal calls use.
 *
 * @param source The script's text.
 * @returns The facts (empty lists when nothing literal is found).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { sourceFacts } from "./source.ts";
 * const facts = sourceFacts(
 *   'const port = Number(Deno.env.get("PORT") ?? 8000);\n' +
 *     'Deno.serve({ port }, () => fetch("https://api.github.com/zen"));',
 * );
 * assert.equal(facts.listens, true);
 * assert.equal(facts.port, 8000);
 * assert.equal(facts.portEnv, "PORT");
 * assert.deepEqual(facts.hosts, ["api.github.com"]);
 * assert.deepEqual(facts.env, ["PORT"]);
 * ```
 */
export function sourceFacts(source: string): SourceFacts {
  const code = withoutComments(source);
  const all = (pattern: RegExp) =>
    unique([...code.matchAll(pattern)].map((m) => m[1]!));
  const listens =
    /\bDeno\s*\.\s*(?:serve(?:Http)?|listen(?:Tls)?)\s*\(/.test(code) ||
    /\.listen\s*\(\s*[{\w]/.test(code) ||
    /\.listen\s*\(\s*\)/.test(code) ||
    // Fresh 1.x: start(manifest) in main.ts, dev() in dev.ts.
    (/["']\$fresh\/(?:server|dev)\.ts["']/.test(code) &&
      /\b(?:start|dev)\s*\(/.test(code)) ||
    // std's old serve(handler, { port }).
    (/\/http\/server\.ts["']/.test(code) && /\bserve\s*\(/.test(code));
  const envDefault = code.match(
    /Deno\s*\.\s*env\s*\.\s*get\(\s*["'](\w+)["']\s*\)\s*(?:\?\?|\|\|)\s*["']?(\d{2,5})\b/,
  );
  const portEnv = envDefault?.[1] ??
    code.match(/Deno\s*\.\s*env\s*\.\s*get\(\s*["'](PORT)["']/)?.[1] ?? null;
  const literalPort = code.match(/\bport\s*:\s*(\d{2,5})\b/)?.[1] ??
    code.match(/\.listen\s*\(\s*(\d{2,5})\b/)?.[1] ??
    envDefault?.[2] ??
    code.match(/\b(?:const|let|var)\s+PORT\s*=\s*(\d{2,5})\b/)?.[1] ??
    null;
  const hostname = code.match(/\bhostname\s*:\s*["']([^"']+)["']/)?.[1] ??
    null;
  const env = all(
    /\bDeno\s*\.\s*env\s*\.\s*(?:get|has)\(\s*["']([\w.-]+)["']/g,
  );
  env.push(...all(/\bprocess\s*\.\s*env\s*\.\s*([A-Za-z_]\w*)/g));
  const pathArg = (names: string) =>
    all(
      new RegExp(
        `\\bDeno\\s*\\.\\s*(?:${names})(?:Sync)?\\(\\s*["']([^"'\`$]+)["']`,
        "g",
      ),
    );
  const reads = [
    ...pathArg(READS),
    ...all(/\bfsRoot\s*:\s*["']([^"']+)["']/g),
  ];
  const writes = pathArg(WRITES);
  const runs = all(/\bnew\s+Deno\s*\.\s*Command\(\s*["']([^"']+)["']/g);
  if (/\bnew\s+Deno\s*\.\s*Command\(\s*Deno\s*\.\s*execPath\(\)/.test(code)) {
    runs.push("deno");
  }
  const hosts = all(
    /\b(?:fetch|WebSocket|EventSource)\s*\(\s*["'`](?:https?|wss?):\/\/([^/"'`$?#\s]+)/g,
  );
  const apis = gatedApis(code);
  // A first argument that is not one plain string literal is built at run
  // time (a variable, a template with ${...}, a concatenation).
  const notLiteral = String
    .raw`\(\s*(?!["'][^"'\`$]*["']\s*[,)]|\`[^\`$]*\`\s*[,)])[^)\s]`;
  const calls = (names: string) =>
    new RegExp(String.raw`\bDeno\s*\.\s*(?:${names})(?:Sync)?` + notLiteral)
      .test(code);
  const built: SourceFacts["built"] = [];
  if (calls(READS)) built.push("read");
  if (calls(WRITES)) built.push("write");
  if (
    new RegExp(String.raw`\b(?:fetch|WebSocket|EventSource)` + notLiteral)
      .test(code)
  ) built.push("net");
  if (
    new RegExp(String.raw`\bDeno\s*\.\s*env\s*\.\s*(?:get|has)` + notLiteral)
      .test(code) || /\bDeno\s*\.\s*env\s*\.\s*toObject\s*\(/.test(code)
  ) built.push("env");
  if (
    new RegExp(String.raw`\bnew\s+Deno\s*\.\s*Command` + notLiteral).test(code)
  ) {
    built.push("run");
  }
  return {
    listens,
    hostname,
    port: literalPort === null ? null : Number(literalPort),
    portEnv,
    hosts,
    env: unique(env),
    reads: unique(reads),
    writes,
    runs: unique(runs),
    built,
    apis,
    codeApis: apis.filter((a) => CODE_APIS.has(a)),
  };
}

/** The permission-gated APIs a piece of code calls, by name. */
function gatedApis(code: string): string[] {
  const found: string[] = [];
  for (const m of code.matchAll(/\bDeno\s*\.\s*([A-Za-z_$][\w$]*)/g)) {
    if (!FREE_DENO.has(m[1]!)) found.push(`Deno.${m[1]}`);
  }
  if (/\bDeno\s*\[/.test(code)) found.push("Deno[...]");
  const globals: [RegExp, string][] = [
    [/\bfetch\s*\(/, "fetch"],
    [/\bimport\s*\(/, "import()"],
    [/\brequire\s*\(/, "require()"],
    [/\beval\s*\(/, "eval()"],
    [/\bFunction\s*\(/, "Function()"],
    [/\bnew\s+Worker\b/, "Worker"],
    [/\bWebSocket\b/, "WebSocket"],
    [/\bprocess\s*\./, "process"],
    [/child_process/, "child_process"],
    [/\bnode:(?:fs|net|http|https|os|dgram|tls)\b/, "node: built-ins"],
    [/\b(?:import|from)\s*["'](?:https?:|npm:|jsr:)/, "import()"],
  ];
  for (const [pattern, name] of globals) {
    if (pattern.test(code)) found.push(name);
  }
  return unique(found);
}

/** The code with comments blanked (strings kept), so a comment names nothing. */
function withoutComments(source: string): string {
  return source.replace(
    /("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`)|\/\/[^\n]*|\/\*[\s\S]*?\*\//g,
    (_match, string: string | undefined) => string ?? " ",
  );
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
