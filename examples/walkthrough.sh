#!/usr/bin/env bash
# A program calls an HTTPS API with a token it never sees. Everything stays on
# 127.0.0.1: api.example.test is a local server, mapped with --connect-to.
# Needs airlock (see Install), deno and openssl.
set -euo pipefail
DIR="$(mktemp -d)" && cd "$DIR"
export PORT="${PORT:-8443}"
export API_TOKEN="tok_$(openssl rand -hex 16)"

# 1. A certificate for api.example.test, and an API that wants the token.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout key.pem -out cert.pem -days 1 -subj /CN=api.example.test \
  -addext subjectAltName=DNS:api.example.test \
  -addext basicConstraints=critical,CA:FALSE 2>/dev/null
cat > api.ts <<'TS'
Deno.serve({
  port: Number(Deno.env.get("PORT")),
  cert: Deno.readTextFileSync("cert.pem"),
  key: Deno.readTextFileSync("key.pem"),
  onListen: () => Deno.writeTextFileSync("ready", ""),
}, (request) =>
  request.headers.get("authorization") === `Bearer ${Deno.env.get("API_TOKEN")}`
    ? new Response("hello, holder of the token\n")
    : new Response("who are you?\n", { status: 401 }));
TS
deno run --allow-net --allow-env=PORT,API_TOKEN --allow-read=. --allow-write=ready api.ts &
API=$!
trap 'kill $API; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do [ -e ready ] && break; sleep 0.1; done

# 2. The program: it calls the API, then looks for the token.
cat > snippet.ts <<'TS'
const response = await fetch("https://api.example.test/me");
console.log(response.status, (await response.text()).trim());
let seen = "no";
try {
  seen = Deno.env.get("API_TOKEN") === undefined ? "no" : "yes";
} catch {
  seen = "no (the environment is closed)";
}
console.log("does the program see API_TOKEN?", seen);
TS

# 3. Run it: the injector adds the header on the way out.
airlock run \
  --inject 'api.example.test:Authorization=Bearer ${env:API_TOKEN}' \
  --connect-to "api.example.test:443:127.0.0.1:$PORT" \
  --upstream-cacert cert.pem \
  snippet.ts
# 200 hello, holder of the token
# does the program see API_TOKEN? no
