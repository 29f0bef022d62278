import { Sandbox } from "../../mod.ts";
const code = Deno.args[0] || await Deno.readTextFile("/tmp/explore_code.js");
await using s = await Sandbox.create({
  policy: JSON.parse(Deno.args[1] ?? '{"scratch": true}'),
});
const r = await s.run({ code });
console.log(
  r.reason,
  r.exitCode,
  "\nSTDOUT:",
  r.stdout,
  "\nSTDERR:",
  r.stderr.slice(0, 3000),
);
for (const e of r.audit) {
  console.log(
    e.source === "broker"
      ? `B ${e.permission} ${e.value} ${e.decision}`
      : JSON.stringify(e),
  );
}
