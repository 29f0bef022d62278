/**
 * `airlock audit [options] <file> [-- args...]`: runs a program in the
 * sandbox and reports every permission check and request it made, what was
 * refused and why, the minimal `deno run` flags that would let the same run
 * pass, and the matching airlock policy.
 *
 * @module
 */

import { parseCommandLine } from "./_args.ts";
import { buildAuditReport, type PathMapping } from "../audit/report.ts";
import { renderAuditHtml } from "../audit/render_html.ts";
import { renderAuditText } from "../audit/render_text.ts";
import { parsePolicy } from "../harness/policy.ts";
import { Sandbox } from "../harness/sandbox.ts";
import { SANDBOX_PATHS } from "../runtime/launcher.ts";
import { SANDBOX_RUN_TMP, SANDBOX_TMP } from "../harness/_run/prepare.ts";
import {
  buildPolicy,
  readSandboxFlags,
  reportError,
  SANDBOX_FLAGS,
  SANDBOX_FLAGS_HELP,
  UsageError,
} from "./_options.ts";

const HELP =
  `airlock audit: what a program tries, what it needs, what it was refused

Usage:
  airlock audit [options] <file.ts> [-- program args...]

Runs the program once in a sandbox with a permission broker and the injector
recording everything, then prints a report: every permission check and
request grouped by kind, the denied ones with their reasons, the minimal flags
for plain 'deno run', and an airlock policy snippet granting the same.

Mode:
  --learn                run in a throwaway learning sandbox instead: reads,
                         writes, env and network are allowed-and-recorded; the
                         program sees a writable throwaway copy of your
                         directory at its own path (.git and node_modules
                         read-only; your files are never changed); no secret
                         is loaded; network requests are recorded and
                         answered locally (nothing is sent); other programs
                         are never run (each attempt is recorded)

${SANDBOX_FLAGS_HELP}

Output:
  --json                 print the report as JSON (stdout)
  --html FILE            also write a self-contained HTML report to FILE
  --no-color             no colours in the terminal report
  -h, --help             show this help

The report says how the program ended: when it failed or was cut short,
the result is partial (it shows what the program tried before it stopped).
The proposed flags never grant a refused or sensitive target (keys,
credentials, cron, shell profiles, cloud metadata): those are listed under
"Refused, not granted". Run the proposed command from the directory shown.

Exit codes: 0 when the report was produced (whatever the program did),
125 bad usage or policy, 126 sandbox could not start, 127 program refused.

Examples:
  airlock audit script.ts
  airlock audit --learn --json script.ts > trail.json
  airlock audit --policy policy.jsonc --html report.html agent.ts
`;

/**
 * Runs the audit CLI.
 *
 * @param argv Command-line arguments.
 * @returns The exit code.
 */
export async function main(argv: string[]): Promise<number> {
  let sandbox: Sandbox | undefined;
  const startDir = Deno.cwd();
  try {
    // Files on the command line, learn mode's mirror and the proposed
    // command's relative paths all mean the user's directory: the current
    // one (cli/mod.ts has moved there from this checkout under its own
    // `deno task`; an INIT_CWD inherited from an outer task of the user's
    // own project is not where the user stands).
    const { values, positionals } = parseCommandLine(
      argv,
      {
        ...SANDBOX_FLAGS,
        learn: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        html: { type: "string" },
        "no-color": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      "airlock audit",
      true,
    );
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const [program, ...programArgs] = positionals;
    if (!program || program === "-") {
      throw new UsageError(
        "Missing the program file to audit (stdin is not supported here)",
      );
    }
    const flags = readSandboxFlags(values);
    const policy = parsePolicy(await buildPolicy(flags));
    const cwd = Deno.cwd();
    sandbox = await Sandbox.create({
      policy,
      // One run: no process waits for a next one (each would copy the
      // directory again).
      ...(values.learn ? { learn: { mirror: cwd }, warm: false } : {}),
    });
    const result = await sandbox.run({ path: program, args: programArgs });
    const paths: PathMapping[] = [
      ...policy.inputs.map((i) => ({ sandbox: i.target, host: i.source })),
      // Files the program writes to its scratch cwd land in the cwd of a
      // plain `deno run`.
      ...(policy.scratch
        ? [{ sandbox: SANDBOX_PATHS.scratch, host: cwd }]
        : []),
      ...(values.learn ? [{ sandbox: cwd, host: cwd }] : []),
      // The sandbox's TMPDIR is the host's temp directory to a plain
      // `deno run` (Deno.makeTempDir asks to write the directory itself).
      { sandbox: SANDBOX_TMP, host: hostTmpDir() },
      { sandbox: SANDBOX_RUN_TMP, host: hostTmpDir() },
    ];
    const report = buildAuditReport(result, {
      program,
      learn: values.learn,
      paths,
      relativeTo: cwd,
      policy,
    });
    if (values.html) {
      await Deno.writeTextFile(values.html, renderAuditHtml(report));
    }
    if (values.json) {
      console.log(JSON.stringify(report, null, 2));
    } else {
      const tty = Deno.stdout.isTerminal();
      const color = !values["no-color"] && !Deno.noColor && tty;
      const width = tty ? Math.max(40, Deno.consoleSize().columns) : 100;
      const text = renderAuditText(report, { color, width });
      await Deno.stdout.write(new TextEncoder().encode(text));
      if (values.html) console.log(`HTML report: ${values.html}`);
    }
    return 0;
  } catch (error) {
    return reportError(error);
  } finally {
    await sandbox?.close();
    if (Deno.cwd() !== startDir) Deno.chdir(startDir);
  }
}

/** The temp directory a plain `deno run` here would use. */
function hostTmpDir(): string {
  const tmp = Deno.env.get("TMPDIR");
  return tmp && tmp.startsWith("/") ? tmp.replace(/\/+$/, "") || "/" : "/tmp";
}

if (import.meta.main) {
  const code = await main(Deno.args);
  const { stopBundler } = await import("../harness/bundle/bundle.ts");
  await stopBundler();
  Deno.exit(code);
}
