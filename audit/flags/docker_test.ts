import assert from "node:assert/strict";
import { dockerfileSites } from "./docker.ts";

const sites = (text: string) =>
  dockerfileSites(text.split("\n"), 1, "docker").map((s) =>
    `${s.line}: ${s.words.join(" ")}`
  );

Deno.test("dockerfileSites() reads CMD on a Deno image as deno's arguments, and only the stage's last CMD", () => {
  assert.deepEqual(
    sites(
      'FROM denoland/deno:2.0.2\nCMD ["run", "-A", "old.ts"]\nCMD ["run", "--allow-net", "--allow-read", "--allow-env", "main.ts"]',
    ),
    ["3: deno run --allow-net --allow-read --allow-env main.ts"],
  );
  // A first argument that is no subcommand runs as a command (as the
  // image's docker-entrypoint.sh does).
  assert.deepEqual(
    sites('FROM denoland/deno\nCMD ["deno", "run", "-N", "x.ts"]'),
    ["2: deno run -N x.ts"],
  );
  assert.deepEqual(
    sites('FROM denoland/deno\nCMD ["sh", "-c", "deno test -R"]'),
    [
      "2: deno test -R",
    ],
  );
  // Shell form runs in sh -c.
  assert.deepEqual(sites("FROM denoland/deno\nCMD deno run -E main.ts"), [
    "2: deno run -E main.ts",
  ]);
  // Not a Deno image: CMD ["run", ...] is a program named run.
  assert.deepEqual(sites('FROM node:22\nCMD ["run", "-A", "main.ts"]'), []);
  // The bin image has no entrypoint.
  assert.deepEqual(
    sites('FROM denoland/deno:bin-2.0.2\nCMD ["run", "-A", "x.ts"]'),
    [],
  );
});

Deno.test("dockerfileSites() joins ENTRYPOINT and CMD, and reports the instruction that holds the flags", () => {
  assert.deepEqual(
    sites(
      'FROM debian\nENTRYPOINT ["deno"]\nCMD ["run", "--allow-net", "main.ts"]',
    ),
    ["3: deno run --allow-net main.ts"],
  );
  assert.deepEqual(
    sites(
      'FROM debian\nENTRYPOINT ["/tini", "--", "deno", "run", "--allow-net"]\nCMD ["main.ts"]',
    ),
    ["2: deno run --allow-net main.ts"],
  );
  // A shell-form ENTRYPOINT ignores CMD.
  assert.deepEqual(
    sites(
      'FROM denoland/deno\nENTRYPOINT deno run -R app.ts\nCMD ["run", "-A", "x.ts"]',
    ),
    ["2: deno run -R app.ts"],
  );
  // docker-entrypoint.sh dispatches to deno when the stage has deno.
  assert.deepEqual(
    sites(
      'FROM debian\nCOPY --from=bin /deno /usr/bin/deno\nENTRYPOINT ["/tini", "--", "docker-entrypoint.sh"]\nCMD ["eval", "1"]',
    ),
    ["4: deno eval 1"],
  );
  assert.deepEqual(
    sites(
      'FROM debian\nENTRYPOINT ["docker-entrypoint.sh"]\nCMD ["run", "x.ts"]',
    ),
    [],
  );
  // The fix is written in the instruction that holds the flag.
  const [site] = dockerfileSites(
    ["FROM debian", 'ENTRYPOINT ["deno"]', 'CMD ["run", "-RN", "main.ts"]'],
    1,
    "docker",
  );
  assert.equal(
    site!.rewrite(2, 3, ["-N", "--allow-read=./data"]),
    'CMD ["run", "-N", "--allow-read=./data", "main.ts"]',
  );
});

Deno.test("dockerfileSites() follows build stages: FROM an earlier stage inherits, ENTRYPOINT drops an inherited CMD", () => {
  const text = [
    "FROM denoland/deno:2.0.2 AS base",
    'CMD ["run", "--allow-net", "main.ts"]',
    "FROM base AS test",
    "RUN deno test -A",
    "FROM base AS prod",
    'ENTRYPOINT ["deno", "run", "-R"]',
    "FROM node:22 AS other",
    'CMD ["run", "-A", "x.ts"]',
  ].join("\n");
  assert.deepEqual(sites(text), [
    // base's own CMD; test inherits it without writing one (not repeated).
    "2: deno run --allow-net main.ts",
    "4: deno test -A",
    // prod's ENTRYPOINT resets the inherited CMD.
    "6: deno run -R",
  ]);
});

Deno.test("dockerfileSites() reads RUN in shell, exec and heredoc form, continuations and comments, and ignores instructions that only name deno", () => {
  const text = [
    "# syntax=docker/dockerfile:1",
    "FROM denoland/deno:2.0.2",
    "USER deno",
    "RUN addgroup --gid 1000 deno \\",
    "  && adduser --uid 1000 --disabled-password deno --ingroup deno \\",
    "  # a comment inside the continuation",
    "  && chown deno:deno /deno-dir/",
    "COPY --from=denoland/deno:bin-2.0.2 /deno /usr/local/bin/deno",
    "RUN --mount=type=cache,target=/deno-dir deno run -E gen.ts",
    'RUN ["deno", "run", "-W", "build.ts"]',
    "RUN <<EOF",
    "deno fmt --check",
    "deno run -N fetch.ts",
    "EOF",
    "HEALTHCHECK --interval=30s CMD deno eval 'fetch(\"http://localhost:8000\")'",
    'LABEL description="deno run -A x.ts"',
  ].join("\n");
  assert.deepEqual(sites(text), [
    "9: deno run -E gen.ts",
    "10: deno run -W build.ts",
    "12: deno fmt --check",
    "13: deno run -N fetch.ts",
    '15: deno eval fetch("http://localhost:8000")',
  ]);
  // `# escape=` changes the continuation character.
  assert.deepEqual(
    sites("# escape=`\nFROM denoland/deno\nRUN deno run `\n  -N x.ts"),
    ["3: deno run -N x.ts"],
  );
});

Deno.test("dockerfileSites() gives each command the ENV and EXPOSE in force", () => {
  const [site] = dockerfileSites(
    [
      "FROM denoland/deno",
      "ENV PORT=8080 MODE=prod",
      "ENV LEGACY value with spaces",
      "EXPOSE 8080/tcp 9229",
      'CMD ["run", "--allow-net", "main.ts"]',
    ],
    1,
    "docker",
  );
  assert.deepEqual(site?.env, {
    PORT: "8080",
    MODE: "prod",
    LEGACY: "value with spaces",
  });
  assert.deepEqual(site?.exposed, [8080, 9229]);
});
