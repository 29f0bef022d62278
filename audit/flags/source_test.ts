import assert from "node:assert/strict";
import { sourceFacts } from "./source.ts";

Deno.test("sourceFacts() recognises servers and where they listen", () => {
  const cases: [string, boolean, string | null, number | null][] = [
    ["Deno.serve((_req) => new Response('hi'));", true, null, null],
    ["Deno.serve({ port: 1993 }, handler);", true, null, 1993],
    [
      'await app.listen({ hostname: "127.0.0.1", port: 8000 });',
      true,
      "127.0.0.1",
      8000,
    ],
    ["app.listen(3000);", true, null, 3000],
    ["const listener = Deno.listen({ port: 4000 });", true, null, 4000],
    [
      'import { start } from "$fresh/server.ts";\nawait start(manifest, config);',
      true,
      null,
      null,
    ],
    [
      'import { serve } from "https://deno.land/std@0.140.0/http/server.ts";\nserve(handler, { port: 8080 });',
      true,
      null,
      8080,
    ],
    ["const PORT = 9000;\nDeno.serve({ port: PORT }, h);", true, null, 9000],
    // Not servers: a listen event handler, a client, a comment.
    ['app.addEventListener("listen", () => {});', false, null, null],
    ['await fetch("https://api.github.com");', false, null, null],
    ["// Deno.serve(handler) in a comment", false, null, null],
  ];
  for (const [code, listens, hostname, port] of cases) {
    const facts = sourceFacts(code);
    assert.equal(facts.listens, listens, code);
    assert.equal(facts.hostname, hostname, code);
    assert.equal(facts.port, port, code);
  }
  const env = sourceFacts(
    'const port = Number(Deno.env.get("PORT") ?? 8000);\nDeno.serve({ port }, h);',
  );
  assert.equal(env.portEnv, "PORT");
  assert.equal(env.port, 8000);
});

Deno.test("sourceFacts() lists literal hosts, variables, paths and programs, and nothing built at run time", () => {
  const facts = sourceFacts(`
    const a = await fetch("https://api.github.com/zen");
    const b = new WebSocket("wss://stream.example.org:8443/feed");
    const c = await fetch(\`https://\${host}/x\`);
    const token = Deno.env.get("GITHUB_TOKEN");
    const cfg = await Deno.readTextFile("./config.json");
    const any = await Deno.readTextFile(path);
    await Deno.writeTextFile("out/report.txt", cfg);
    await new Deno.Command("git", { args: ["status"] }).output();
    // fetch("https://commented.example")
  `);
  assert.deepEqual(facts.hosts, ["api.github.com", "stream.example.org:8443"]);
  assert.deepEqual(facts.env, ["GITHUB_TOKEN"]);
  assert.deepEqual(facts.reads, ["./config.json"]);
  assert.deepEqual(facts.writes, ["out/report.txt"]);
  assert.deepEqual(facts.runs, ["git"]);
  assert.equal(facts.listens, false);
  // What is built at run time is named by kind, so a fix can say so.
  assert.deepEqual(facts.built, ["read", "net"]);
  assert.deepEqual(
    sourceFacts(`
      await Deno.writeTextFile("out/" + name, x);
      Deno.env.get(key); new Deno.Command(tool);
      await fetch(new URL("/x", base));
    `).built,
    ["write", "net", "env", "run"],
  );
  assert.deepEqual(sourceFacts("Deno.env.toObject()").built, ["env"]);
  // Control: literal calls only (and calls with no argument) build nothing.
  assert.deepEqual(
    sourceFacts(`
      await Deno.readTextFile("./a.json", { signal });
      await Deno.writeTextFile(\`out.txt\`, "x");
      await fetch("https://api.github.com/zen"); Deno.env.get("PORT");
      new Deno.Command("git", { args }); Deno.openKv(path);
    `).built,
    [],
  );
});

Deno.test("sourceFacts() names the gated APIs code calls, and which of them run other code", () => {
  const free = sourceFacts("console.log(Deno.version.deno, Deno.args, 1 + 1)");
  assert.deepEqual(free.apis, []);
  const fs = sourceFacts("console.log(await Deno.readTextFile('x'))");
  assert.deepEqual(fs.apis, ["Deno.readTextFile"]);
  assert.deepEqual(fs.codeApis, []);
  const spawn = sourceFacts("new Deno.Command('sh').spawn(); await fetch(u)");
  assert.deepEqual(spawn.apis, ["Deno.Command", "fetch"]);
  assert.deepEqual(spawn.codeApis, ["Deno.Command"]);
  assert.deepEqual(sourceFacts("await import('https://x.dev/a.ts')").codeApis, [
    "import()",
  ]);
  // A string that only mentions an API is no call.
  assert.deepEqual(sourceFacts("console.log('// not a comment')").apis, []);
});
