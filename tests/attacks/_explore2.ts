import { canonicalHost } from "../../injector/host_pattern.ts";
const u = new URL("other.attack.test:443");
console.log(u.protocol, JSON.stringify(u.hostname), u.pathname);
try {
  console.log(canonicalHost(u.hostname));
} catch (e) {
  console.log("throws", (e as Error).message);
}
