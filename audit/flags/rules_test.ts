import assert from "node:assert/strict";
import { auditText, type ProjectFiles } from "./mod.ts";

function project(files: Record<string, string>, file: string): ProjectFiles {
  return {
    root: "/p",
    file: `/p/${file}`,
    read: (path) => files[path.replace(/^\/p\//, "")] ?? null,
  };
}

const remote = (findings: ReturnType<typeof auditText>) =>
  findings.filter((f) => f.id === "remote-unpinned").map((f) =>
    `${f.severity} ${f.flag}`
  );

Deno.test("rateSite() reports an unpinned remote script apart from a local one, as bad as what it is granted", () => {
  const sh = (line: string) => remote(auditText(line, "run.sh"));
  assert.deepEqual(sh("deno run -A https://lume.land/init.ts"), [
    "high https://lume.land/init.ts",
  ]);
  assert.deepEqual(sh("deno run --allow-net=api.x.dev jsr:@x/tool"), [
    "medium jsr:@x/tool",
  ]);
  assert.deepEqual(sh("deno run https://deno.land/std/examples/welcome.ts"), [
    "low https://deno.land/std/examples/welcome.ts",
  ]);
  // Pinned, local, or checked against a lockfile: no such finding.
  assert.deepEqual(
    sh("deno run -A https://deno.land/x/lume@v2.3.3/cli.ts"),
    [],
  );
  assert.deepEqual(sh("deno run -A main.ts"), []);
  assert.deepEqual(
    sh("deno run -A --frozen https://deno.land/x/lume/cli.ts"),
    [],
  );
  assert.deepEqual(
    sh("deno install -g -A -n lume https://deno.land/x/lume/cli.ts"),
    [
      "high https://deno.land/x/lume/cli.ts",
    ],
  );
  // -A on a remote script says where the code comes from.
  const [all] = auditText("deno run -A https://lume.land/init.ts", "run.sh");
  assert.match(
    all!.message,
    /^every permission, for code fetched from lume\.land at run time with no pin/,
  );
  const [local] = auditText("deno run -A main.ts", "run.sh");
  assert.match(local!.message, /^every permission: read ~\/\.ssh/);
});

Deno.test("rateSite() takes a deno.lock entry as the pin, unless the config turns the lock off", () => {
  const url = "https://deno.land/x/lume/cli.ts";
  const line = `deno run -A ${url}`;
  const lock = JSON.stringify({ version: "4", remote: { [url]: "abc123" } });
  const check = (files: Record<string, string>) =>
    remote(auditText(line, "scripts/site.sh", {
      project: project(files, "scripts/site.sh"),
    }));
  assert.deepEqual(check({ "deno.lock": lock }), []);
  assert.deepEqual(
    check({ "deno.lock": lock, "deno.json": '{ "lock": false }' }),
    [
      `high ${url}`,
    ],
  );
  assert.deepEqual(check({ "deno.lock": JSON.stringify({ remote: {} }) }), [
    `high ${url}`,
  ]);
  assert.deepEqual(
    check({
      "deno.lock": JSON.stringify({ specifiers: { "jsr:@x/tool": "1.0.0" } }),
    }),
    [`high ${url}`],
  );
  // A README's reader runs the command in their own directory: no lock.
  assert.deepEqual(
    remote(auditText("```sh\n" + line + "\n```\n", "README.md", {
      project: project({ "deno.lock": lock }, "README.md"),
    })),
    [`high ${url}`],
  );
});

Deno.test("rateSite() reads a deno.json task's script next to the config, and an absolute container path inside the project", () => {
  const main = "Deno.serve({ port: 7000 }, () => new Response(''));";
  const text = JSON.stringify({
    tasks: { start: "deno run --allow-net --no-prompt main.ts" },
  });
  const [net] = auditText(text, "app/deno.json", {
    project: project({ "app/main.ts": main, "main.ts": "" }, "app/deno.json"),
  });
  assert.match(net!.suggestion, /0\.0\.0\.0:7000/);
  const docker =
    'FROM denoland/deno\nCMD ["run", "--allow-net", "/app/main.ts"]';
  const [cmd] = auditText(docker, "Dockerfile", {
    project: project({ "main.ts": main }, "Dockerfile"),
  });
  assert.match(cmd!.suggestion, /--allow-net=0\.0\.0\.0:7000/);
  // Without the project, the fix is a slot in the same command.
  const [bare] = auditText(text, "deno.json");
  assert.equal(
    bare!.suggestion,
    "list the hosts main.ts reaches: deno run --allow-net=<hosts it reaches> --no-prompt main.ts",
  );
});
