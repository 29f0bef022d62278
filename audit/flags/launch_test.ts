import assert from "node:assert/strict";
import { isDenoImage, launchOf } from "./launch.ts";

const at = (line: string) => {
  const words = line.split(" ");
  const launch = launchOf(words);
  if (launch === null) return null;
  if (launch.kind === "shell") return `sh: ${launch.script}`;
  return (launch.implied ? "(deno) " : "") + words.slice(launch.at).join(" ");
};

Deno.test("launchOf() finds deno only in command position: as an argument, user or group name it is no command", () => {
  for (
    const line of [
      "adduser --uid 1000 --disabled-password deno --ingroup deno",
      "addgroup --gid 1000 deno",
      "useradd --uid 1993 --user-group deno",
      "chown deno:deno /deno-dir/",
      "which deno",
      "command -v deno",
      "echo deno run -A x.ts",
      "cp deno.json out/",
      "ln -s /usr/local/bin/deno /usr/bin/deno",
      "curl -fsSL https://deno.land/install.sh",
      "sh install.sh deno",
      "docker run --rm denoland/deno:2.0.2",
      "docker build -t deno .",
    ]
  ) {
    assert.equal(at(line), null, line);
  }
});

Deno.test("launchOf() sees through assignments and the programs that run their arguments", () => {
  const cases: [string, string][] = [
    ["deno run x.ts", "deno run x.ts"],
    ["DENO_DIR=/d TZ=UTC deno test", "deno test"],
    ["exec deno run x.ts", "deno run x.ts"],
    ["env -u HOME -S deno run x.ts", "deno run x.ts"],
    ["sudo -E -u deno deno run x.ts", "deno run x.ts"],
    ["gosu deno deno run x.ts", "deno run x.ts"],
    ["su-exec deno:deno deno run x.ts", "deno run x.ts"],
    ["timeout -s KILL 10s deno -A main.ts", "deno -A main.ts"],
    ["/tini -- deno run x.ts", "deno run x.ts"],
    ["dumb-init deno run x.ts", "deno run x.ts"],
    ["nohup nice -n 5 deno run x.ts", "deno run x.ts"],
    ["npx -y deno@2.9.6 run -W x.ts", "deno@2.9.6 run -W x.ts"],
    ["pnpm exec deno run x.ts", "deno run x.ts"],
    ["doppler run --project p -- deno run x.ts", "deno run x.ts"],
    ["xargs -n 1 deno check", "deno check"],
    ["bash -lc deno_run_x", "sh: deno_run_x"],
    ["/usr/bin/deno run x.ts", "/usr/bin/deno run x.ts"],
  ];
  for (const [line, expected] of cases) assert.equal(at(line), expected, line);
});

Deno.test("launchOf() reads docker run of a Deno image: arguments starting with a subcommand or an option go to deno", () => {
  const cases: [string, string | null][] = [
    [
      "docker run -it -p 1993:1993 -v $PWD:/app denoland/deno:2.0.2 run --allow-net /app/main.ts",
      "(deno) run --allow-net /app/main.ts",
    ],
    ["docker run --rm denoland/deno eval 1", "(deno) eval 1"],
    ["docker run -t deno:${{matrix.kind}} --version", "(deno) --version"],
    ["podman container run denoland/deno:alpine repl", "(deno) repl"],
    // The image's entrypoint runs a non-deno first argument as a command.
    ["docker run denoland/deno sh -c x", "sh: x"],
    ["docker run denoland/deno deno run x.ts", "deno run x.ts"],
    // --entrypoint replaces the image's.
    ["docker run --entrypoint deno node:22 run x.ts", "(deno) run x.ts"],
    ["docker run --entrypoint sh denoland/deno run x.ts", null],
    // Not a Deno image: only a deno in command position counts.
    ["docker run node:22 run x.ts", null],
    ["docker exec -it app deno test", "deno test"],
  ];
  for (const [line, expected] of cases) assert.equal(at(line), expected, line);
  // The container ports it publishes: where the program is meant to listen.
  const published = (line: string) => {
    const launch = launchOf(line.split(" "));
    return launch?.kind === "deno" ? launch.published : null;
  };
  assert.deepEqual(
    published(
      "docker run -p 8080:1993 --publish=9000/udp denoland/deno run x.ts",
    ),
    [1993, 9000],
  );
  assert.deepEqual(
    published("docker run -p 127.0.0.1:80:8000 img deno run x.ts"),
    [8000],
  );
  assert.equal(published("docker run denoland/deno run x.ts"), undefined);
});

Deno.test("isDenoImage() knows the official images, not the entrypoint-less bin one", () => {
  for (
    const image of [
      "denoland/deno",
      "denoland/deno:2.0.2",
      "denoland/deno:alpine-2.0.2",
      "denoland/deno:distroless",
      "docker.io/denoland/deno:debian",
      "ghcr.io/denoland/deno@sha256:0123abcd",
      "hayd/alpine-deno:1.0.0",
      "deno:alpine",
    ]
  ) {
    assert.equal(isDenoImage(image), true, image);
  }
  for (
    const image of [
      "denoland/deno:bin-2.0.2",
      "denoland/deno:bin",
      "node:22",
      "denoland/deployctl",
      "my/denoapp",
    ]
  ) {
    assert.equal(isDenoImage(image), false, image);
  }
});
