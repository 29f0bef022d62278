import assert from "node:assert/strict";
import { isPublicSuffix, publicSuffixUnder } from "./_public_suffix.ts";

Deno.test("isPublicSuffix() knows the ICANN and the private section", () => {
  for (
    const name of [
      "com",
      "co.uk",
      "com.au",
      "vercel.app",
      "github.io",
      "s3.amazonaws.com",
      "herokuapp.com",
      "workers.dev",
      "xn--55qx5d.cn",
      "foo.ck", // by the wildcard rule "*.ck"
    ]
  ) {
    assert.equal(isPublicSuffix(name), true, name);
  }
  for (
    const name of [
      "example.com",
      "github.com",
      "amazonaws.com",
      "myapp.vercel.app",
      "www.ck", // the exception "!www.ck"
      "corp.internal",
    ]
  ) {
    assert.equal(isPublicSuffix(name), false, name);
  }
});

Deno.test("publicSuffixUnder() finds the suffix a wildcard reaches, at or below the name", () => {
  assert.equal(publicSuffixUnder("vercel.app"), "vercel.app");
  assert.equal(publicSuffixUnder("co.uk"), "co.uk");
  // Below: amazonaws.com is Amazon's, but s3.amazonaws.com (and more) is
  // everyone's.
  assert.match(publicSuffixUnder("amazonaws.com") ?? "", /\.amazonaws\.com$/);
  assert.match(publicSuffixUnder("windows.net") ?? "", /\.windows\.net$/);
  for (
    const name of [
      "example.com",
      "github.com",
      "myapp.vercel.app",
      "a.b.example.co.uk",
      "city.kawasaki.jp",
      "corp.internal",
      "_dmarc.example.com",
    ]
  ) {
    assert.equal(publicSuffixUnder(name), null, name);
  }
});
