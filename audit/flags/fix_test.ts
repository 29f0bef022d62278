import assert from "node:assert/strict";
import { auditText, type ProjectFiles } from "./mod.ts";

/** A project in memory: file name → text, under /p. */
function project(files: Record<string, string>, file: string): ProjectFiles {
  return {
    root: "/p",
    file: `/p/${file}`,
    read: (path) => files[path.replace(/^\/p\//, "")] ?? null,
  };
}

/** The fix of the finding with `flag` in a deno.json task. */
function fixOf(
  command: string,
  flag: string,
  files: Record<string, string> = {},
): string | undefined {
  const text = JSON.stringify({ tasks: { t: command } });
  return auditText(text, "deno.json", {
    project: project({ ...files, "deno.json": text }, "deno.json"),
  }).find((f) => f.flag === flag)?.suggestion;
}

Deno.test("fixFor() never proposes a value it rates risky, even when the script names it (a script cannot talk the audit into its own attack)", () => {
  const hostile = `
    await Deno.readTextFile("/root/.ssh/id_rsa");
    await Deno.readTextFile("./data.json");
    await fetch("http://169.254.169.254/latest/meta-data/");
    await fetch("https://api.github.com/zen");
    Deno.env.get("AWS_SECRET_ACCESS_KEY"); Deno.env.get("PORT");
    await Deno.writeTextFile("./src/main.ts", "pwned");
    await Deno.writeTextFile("./out/report.txt", "ok");
    new Deno.Command("bash"); new Deno.Command("git");
  `;
  const files = { "x.ts": hostile };
  const run =
    "deno run --allow-read --allow-net --allow-env --allow-write --allow-run --no-prompt x.ts";
  const read = fixOf(run, "--allow-read", files)!;
  assert.match(read, /--allow-read=\.\/data\.json /);
  assert.match(read, /not proposed \(risky\): \/root\/\.ssh\/id_rsa$/);
  const net = fixOf(run, "--allow-net", files)!;
  assert.match(net, /--allow-net=api\.github\.com /);
  assert.match(net, /not proposed \(risky\): 169\.254\.169\.254$/);
  const env = fixOf(run, "--allow-env", files)!;
  assert.match(env, /--allow-env=PORT /);
  assert.match(env, /not proposed \(risky\): AWS_SECRET_ACCESS_KEY$/);
  const write = fixOf(run, "--allow-write", files)!;
  assert.match(write, /--allow-write=\.\/out\/report\.txt /);
  assert.match(write, /not proposed \(risky\): \.\/src\/main\.ts$/);
  // A name built at run time is not among the literals: the fix says so.
  assert.match(
    fixOf(run, "--allow-read", {
      "x.ts": `${hostile}\nawait Deno.readTextFile(Deno.args[0]);`,
    })!,
    /--allow-read=\.\/data\.json --allow-net .*; add the paths its code builds at run time; not proposed/,
  );
  assert.doesNotMatch(read, /builds at run time/);
  const spawn = fixOf(run, "--allow-run", files)!;
  assert.match(spawn, /--allow-run=git /);
  assert.match(spawn, /not proposed \(risky\): bash$/);
  for (const fix of [read, net, env, write, spawn]) {
    const proposed = fix.split("; not proposed")[0]!;
    assert.doesNotMatch(proposed, /\.ssh|169\.254|AWS_SECRET|src\/main|bash/);
  }
});

Deno.test("fixFor() rewrites the project's own command: the flag replaced in place, a short flag taken out of its cluster", () => {
  assert.equal(
    fixOf("deno run -RN --no-prompt main.ts", "-R (in -RN)"),
    "list the paths main.ts reads: deno run -N --allow-read=<paths it reads> --no-prompt main.ts",
  );
  assert.equal(
    fixOf("deno run -RW=./out --no-prompt main.ts", "-R (in -RW=./out)"),
    "list the paths main.ts reads: deno run -W=./out --allow-read=<paths it reads> --no-prompt main.ts",
  );
  // A listed grant with a risky entry: that entry dropped, the rest kept.
  assert.equal(
    fixOf(
      "deno run --allow-read=~/.ssh,./data --no-prompt main.ts",
      "--allow-read=~/.ssh,./data",
    ),
    "drop ~/.ssh: deno run --allow-read=./data --no-prompt main.ts",
  );
  // An interpreter in the run list: dropped, and where that step goes.
  assert.equal(
    fixOf(
      "deno run --allow-run=git,bash --no-prompt main.ts",
      "--allow-run=git,bash",
    ),
    "drop bash (it runs any code with no sandbox; if the program needs it, do that step outside Deno): deno run --allow-run=git --no-prompt main.ts",
  );
  assert.equal(
    fixOf("deno run --allow-hrtime --no-prompt main.ts", "--allow-hrtime"),
    "delete the flag: deno run --no-prompt main.ts",
  );
  // Quotes and variables of the task survive the rewrite.
  assert.equal(
    fixOf(
      `deno run --allow-env --no-prompt main.ts "$HOME" 'a b'`,
      "--allow-env",
    ),
    `list the variables main.ts reads: deno run --allow-env=<variables it reads> --no-prompt main.ts "$HOME" 'a b'`,
  );
  // The tests, not a script, are what deno test runs.
  assert.equal(
    fixOf("deno test --allow-net --no-prompt", "--allow-net"),
    "list the hosts the tests reach: deno test --allow-net=<hosts they reach> --no-prompt",
  );
});

Deno.test("fixFor() gives a server its listening address: deno serve, the script's Deno.serve, a Dockerfile's ENV PORT", () => {
  assert.equal(
    fixOf(
      "deno serve --allow-net --port 3000 --no-prompt main.ts",
      "--allow-net",
    ),
    "deno serve listens (0.0.0.0:3000): deno serve --allow-net=0.0.0.0:3000 --port 3000 --no-prompt main.ts; add any host it calls",
  );
  const main =
    'Deno.serve({ port: Number(Deno.env.get("PORT") ?? 8000) }, () => new Response("ok"));';
  assert.equal(
    fixOf("deno run --allow-net --no-prompt main.ts", "--allow-net", {
      "main.ts": main,
    }),
    "main.ts listens (0.0.0.0:8000): deno run --allow-net=0.0.0.0:8000 --no-prompt main.ts; add any host it calls",
  );
  const dockerfile =
    'FROM denoland/deno\nENV PORT=9090\nCMD ["run", "--allow-net", "--allow-env", "main.ts"]\n';
  const findings = auditText(dockerfile, "Dockerfile", {
    project: project({ "main.ts": main, Dockerfile: dockerfile }, "Dockerfile"),
  });
  assert.deepEqual(findings.map((f) => f.suggestion), [
    'main.ts listens (0.0.0.0:9090): CMD ["run", "--allow-net=0.0.0.0:9090", "--allow-env", "main.ts"]; add any host it calls',
    'main.ts reads PORT: CMD ["run", "--allow-net", "--allow-env=PORT", "main.ts"]',
  ]);
  // A script the audit cannot read, started to serve on one port: docker
  // run -p's container port, a CMD's EXPOSE; not a build-time RUN's.
  const [published] = auditText(
    "docker run -p 127.0.0.1:8080:1993/tcp denoland/deno run --allow-net /app/main.ts",
    "run.sh",
  );
  assert.equal(
    published?.suggestion,
    "/app/main.ts listens (0.0.0.0:1993): docker run -p 127.0.0.1:8080:1993/tcp denoland/deno run --allow-net=0.0.0.0:1993 /app/main.ts; add any host it calls",
  );
  const image = auditText(
    'FROM denoland/deno\nEXPOSE 1993\nRUN deno run --allow-net fetch.ts\nCMD ["run", "--allow-net", "main.ts"]\n',
    "Dockerfile",
  );
  assert.deepEqual(image.map((f) => `${f.line} ${f.suggestion}`), [
    "3 list the hosts fetch.ts reaches: deno run --allow-net=<hosts it reaches> fetch.ts",
    '4 main.ts listens (0.0.0.0:1993): CMD ["run", "--allow-net=0.0.0.0:1993", "main.ts"]; add any host it calls',
  ]);
  // The listening message replaces the "any host" example.
  const net = auditText(dockerfile, "Dockerfile", {
    project: project({ "main.ts": main }, "Dockerfile"),
  })[0]!;
  assert.match(
    net.message,
    /^main\.ts listens, but this grant also lets it reach any host/,
  );
});

Deno.test("fixFor() for -A: the recorded run's flags for a local script, a pinned version for an unpinned remote one", () => {
  assert.equal(
    fixOf("deno run -A --no-prompt tools/gen.ts", "-A"),
    "record what tools/gen.ts uses: airlock audit --learn --json tools/gen.ts > trail.json, then airlock audit-flags --trail trail.json gives this command's exact flags",
  );
  // The program's arguments are part of what the run must learn.
  assert.equal(
    fixOf(`deno run -A --no-prompt tools/gen.ts --out "$DIR" 'a b'`, "-A"),
    `record what tools/gen.ts uses: airlock audit --learn --json tools/gen.ts -- --out "$DIR" 'a b' > trail.json, then airlock audit-flags --trail trail.json gives this command's exact flags`,
  );
  assert.equal(
    fixOf("deno run -A https://deno.land/x/tool/cli.ts build", "-A"),
    "run a pinned version with only the grants it needs: deno run <--allow-* flags> https://deno.land/x/tool@<version>/cli.ts build",
  );
  assert.equal(
    fixOf("deno test -A --no-prompt", "-A"),
    "grant only what the tests need: deno test <--allow-* flags> --no-prompt (or give each test its own with Deno.test({ permissions }))",
  );
  // A #! line's script is its own file.
  const tool =
    "#!/usr/bin/env -S deno run -A\nDeno.serve(() => new Response(''));\n";
  const [shebang] = auditText(tool, "serve.ts", {
    project: project({ "serve.ts": tool }, "serve.ts"),
  });
  assert.equal(
    shebang?.suggestion,
    "record what serve.ts uses: airlock audit --learn --json serve.ts > trail.json, then airlock audit-flags --trail trail.json gives this command's exact flags; it listens on 0.0.0.0:8000 (--allow-net=0.0.0.0:8000)",
  );
});
