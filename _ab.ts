import { Sandbox } from "./mod.ts";
const med = (a: number[]) =>
  [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
await using on = await Sandbox.create();
await using off = await Sandbox.create({
  policy: { audit: { permissions: false } },
});
const code = `console.log("hello, world")`;
Deno.writeTextFileSync("/tmp/exp/hw.js", code);
const t: Record<string, number[]> = { bare: [], broker: [], noBroker: [] };
for (let i = 0; i < 43; i++) {
  let s = performance.now();
  await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-config", "/tmp/exp/hw.js"],
    stdout: "null",
    env: { DENO_NO_UPDATE_CHECK: "1" },
  }).output();
  const bare = performance.now() - s;
  s = performance.now();
  await on.run({ code });
  const b = performance.now() - s;
  s = performance.now();
  await off.run({ code });
  const n = performance.now() - s;
  if (i >= 3) {
    t.bare!.push(bare);
    t.broker!.push(b);
    t.noBroker!.push(n);
  }
}
for (const [k, v] of Object.entries(t)) {
  console.log(k.padEnd(10), med(v).toFixed(1));
}
