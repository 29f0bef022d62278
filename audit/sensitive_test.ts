import assert from "node:assert/strict";
import { sensitiveEnv, sensitiveHost, sensitivePath } from "./sensitive.ts";

Deno.test("sensitivePath() withholds keys, credentials, cron, profiles and startup files", () => {
  for (
    const path of [
      "/root/.ssh/id_rsa",
      "/home/me/.ssh/config",
      "./deploy/id_ed25519",
      "/root/.aws/credentials",
      "/home/me/.kube/config",
      "/home/me/.config/gcloud/application_default_credentials.json",
      "/root/.netrc",
      "./certs/server.key",
      "/etc/shadow",
      "/etc/sudoers.d/x",
      "/etc/cron.d/x",
      "/etc/crontab",
      "/var/spool/cron/crontabs/root",
      "/root/.bashrc",
      "./.zshrc",
      "/etc/profile.d/x.sh",
      "/home/me/.config/systemd/user/x.service",
      "./.git/hooks/pre-commit",
      "/var/run/docker.sock",
      "/proc/1/environ",
      "/",
    ]
  ) {
    assert.equal(sensitivePath(path)?.action, "withhold", path);
  }
});

Deno.test("sensitivePath() warns about .env files and leaves ordinary paths alone", () => {
  assert.equal(sensitivePath("./.env")?.action, "warn");
  assert.equal(sensitivePath("/srv/app/.env.production")?.action, "warn");
  for (
    const path of [
      "./out",
      "./out/result.txt",
      "./data/in.csv",
      "/tmp/x",
      "./environment.ts",
      "./keys.json",
      "/etc/hosts",
    ]
  ) {
    assert.equal(sensitivePath(path), null, path);
  }
});

Deno.test("sensitiveHost() withholds metadata services in any spelling and link-local addresses", () => {
  for (
    const target of [
      "169.254.169.254:80",
      "169.254.169.254",
      "2852039166:80", // 169.254.169.254 as one number
      "0xa9fea9fe:80",
      "[fd00:ec2::254]:80",
      "metadata.google.internal:80",
      "100.100.100.200:80",
      "169.254.170.2:80", // ECS task credentials
    ]
  ) {
    assert.equal(sensitiveHost(target)?.action, "withhold", target);
  }
  for (
    const target of [
      "api.example.com:443",
      "127.0.0.1:8080",
      "10.0.0.5:5432",
      "billing-debug.external.dev:443",
    ]
  ) {
    assert.equal(sensitiveHost(target), null, target);
  }
});

Deno.test("sensitiveEnv() withholds the whole environment and warns about credential names", () => {
  assert.equal(sensitiveEnv(null)?.action, "withhold");
  for (
    const name of ["WEATHER_TOKEN", "API_KEY", "AWS_REGION", "DB_PASSWORD"]
  ) {
    assert.equal(sensitiveEnv(name)?.action, "warn", name);
  }
  for (const name of ["PORT", "HOME", "LOG_LEVEL", "SOME_UNSET_VAR"]) {
    assert.equal(sensitiveEnv(name), null, name);
  }
});
