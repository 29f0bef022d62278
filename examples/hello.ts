// A first program for the sandbox: it prints what it can and cannot reach.
const attempts: [string, () => unknown][] = [
  ["read /etc/passwd", () => Deno.readTextFileSync("/etc/passwd")],
  ["read ~/.ssh/id_rsa", () => Deno.readTextFileSync("/root/.ssh/id_rsa")],
  ["read bwrap's environment", () => Deno.readTextFileSync("/proc/1/environ")],
  ["spawn a shell", () => new Deno.Command("sh").outputSync()],
  [
    "connect to 1.1.1.1:443",
    () => Deno.connect({ hostname: "1.1.1.1", port: 443 }),
  ],
];

console.log(`Hello from inside airlock (Deno ${Deno.version.deno})`);
// Readable, like any machine's environment: it holds only airlock's own
// variables (no secret of the harness is ever among them).
console.log(`  environment: ${Object.keys(Deno.env.toObject()).join(", ")}`);
for (const [what, attempt] of attempts) {
  try {
    await attempt();
    console.log(`  ${what}: ALLOWED (unexpected)`);
  } catch (error) {
    console.log(`  ${what}: refused (${(error as Error).name})`);
  }
}
