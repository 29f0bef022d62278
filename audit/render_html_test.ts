import assert from "node:assert/strict";
import type { AuditReport } from "./report.ts";
import type { AuditEvent } from "../harness/run_result.ts";
import { escapeHtml, renderAuditHtml } from "./render_html.ts";

const fixture: AuditReport = JSON.parse(
  await Deno.readTextFile(
    new URL("../tests/fixtures/audit_report.json", import.meta.url),
  ),
);

const CHROMIUM = "/usr/bin/chromium";
const chromiumAvailable = await Deno.stat(CHROMIUM).then(
  (info) => info.isFile,
  () => false,
);

const ATTACK = `<script>alert(1)</script>"'><img src=x onerror=alert(2)>&amp;`;
const ATTACK_ESCAPED =
  "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&gt;&lt;img src=x onerror=alert(2)&gt;&amp;amp;";

/** A report whose every program-controlled string is an attack. */
function hostileReport(): AuditReport {
  const time = "2025-06-12T09:41:07.123Z";
  const events: AuditEvent[] = [
    {
      time,
      source: "broker",
      kind: "permission",
      sandboxId: "s",
      runId: "r",
      permission: "read",
      value: `/inputs/${ATTACK}`,
      decision: "deny",
      reason: `read access to '/inputs/${ATTACK}' is not granted`,
      count: 1,
      firstTime: time,
      lastTime: time,
    },
    {
      time,
      source: "injector",
      kind: "request",
      sandboxId: "s",
      method: "GET",
      scheme: "https",
      host: `${ATTACK}.example`,
      port: 443,
      path: `/${ATTACK}`,
      decision: "deny",
      rule: ATTACK,
      reason: ATTACK,
      injected: [],
      placeholders: [],
      status: 403,
      bytesOut: 0,
      bytesIn: 0,
      durationMs: 1,
    },
    { time, source: "harness", kind: ATTACK, note: ATTACK },
  ];
  return {
    program: ATTACK,
    generatedAt: ATTACK,
    learn: false,
    run: {
      exitCode: 1,
      reason: ATTACK,
      durationMs: 5,
      completed: false,
      summary: ATTACK,
    },
    output: {
      stdout: { text: ATTACK, length: ATTACK.length, omitted: 0 },
      stderr: { text: ATTACK, length: ATTACK.length, omitted: 0 },
    },
    events,
    entries: [{
      kind: "read",
      value: `/inputs/${ATTACK}`,
      hostValue: `./data/${ATTACK}`,
      decision: "deny",
      reason: ATTACK,
      count: 1,
      time,
    }],
    summary: { read: { allowed: 0, denied: 1 } },
    minimalFlags: [`--allow-read=./data/${ATTACK}`],
    denoCommand: `deno run --allow-read=./data/${ATTACK} ${ATTACK}`,
    workingDirectory: ATTACK,
    refused: [{
      kind: "net",
      value: ATTACK,
      cause: "refused",
      reason: ATTACK,
      sensitive: ATTACK,
      count: 2,
    }],
    callouts: [{ kind: "env", value: ATTACK, why: ATTACK }],
    flagNotes: [ATTACK],
    policySnippet: { inputs: [`./data/${ATTACK}`] },
  };
}

/** The `<tr>` start tags of the timeline body. */
function timelineRows(html: string): string[] {
  const body = html.slice(html.indexOf("<tbody>"), html.indexOf("</tbody>"));
  return body.match(/<tr [^>]*>/g) ?? [];
}

function isDenied(event: AuditEvent): boolean {
  return event.decision === "deny" || event.decision === "error";
}

async function sha256Base64(text: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(text),
  );
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

Deno.test("escapeHtml() escapes the five HTML-special characters", () => {
  assert.equal(
    escapeHtml(`<a href="x" title='y'>&</a>`),
    "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;",
  );
  assert.equal(escapeHtml("&lt;"), "&amp;lt;");
  assert.equal(escapeHtml("/inputs/data.csv"), "/inputs/data.csv");
});

Deno.test("renderAuditHtml() renders every program-controlled string as text, never as markup", () => {
  const html = renderAuditHtml(hostileReport());
  assert.ok(!html.includes("<script>alert"));
  assert.ok(!html.includes("<img"));
  assert.ok(!html.includes(`"'>`));
  assert.ok(html.includes(ATTACK_ESCAPED));
  // The page's own script is the only one.
  assert.equal(html.match(/<script/g)?.length, 1);
  // Attribute values cannot be broken out of either.
  for (const tag of html.match(/<[a-z][^>]*>/g) ?? []) {
    assert.ok(!/onerror|onload/i.test(tag), tag);
  }
});

Deno.test("renderAuditHtml() makes one timeline row per event, marked with its kind", () => {
  const html = renderAuditHtml(fixture);
  const rows = timelineRows(html);
  assert.equal(rows.length, fixture.events.length);
  for (const [i, event] of fixture.events.entries()) {
    const kind = event.source === "broker"
      ? event.permission
      : event.source === "injector"
      ? "egress"
      : "harness";
    assert.ok(rows[i]!.includes(`data-kind="${kind}"`), rows[i]);
  }
});

Deno.test("renderAuditHtml() gives denied rows class 'denied' and allowed rows class 'allowed'", () => {
  const rows = timelineRows(renderAuditHtml(fixture));
  for (const [i, event] of fixture.events.entries()) {
    const expected = event.source === "harness"
      ? "info"
      : isDenied(event)
      ? "denied"
      : "allowed";
    assert.ok(rows[i]!.startsWith(`<tr class="${expected}"`), rows[i]);
  }
  assert.equal(
    rows.filter((r) => r.includes('class="denied"')).length,
    fixture.events.filter((e) => e.source !== "harness" && isDenied(e)).length,
  );
  assert.match(
    renderAuditHtml(fixture),
    /tr\.denied \{ background: var\(--deny-bg\)/,
  );
});

Deno.test("renderAuditHtml() shows summary cards, the minimal flags and the policy", () => {
  const html = renderAuditHtml(fixture);
  assert.match(html, /<title>airlock audit: agent\.ts<\/title>/);
  for (
    const kind of [
      "read",
      "write",
      "net",
      "env",
      "run",
      "sys",
      "ffi",
      "import",
      "egress",
    ]
  ) {
    assert.match(
      html,
      new RegExp(`<div class="card[^"]*" data-kind="${kind}"><h3>${kind}</h3>`),
    );
  }
  assert.match(
    html,
    /data-kind="net"><h3>net<\/h3><div class="counts"><span class="ok"><span class="n">14<\/span>/,
  );
  assert.ok(
    html.includes(
      `<pre id="deno-command">${escapeHtml(fixture.denoCommand)}</pre>`,
    ),
  );
  assert.ok(
    html.includes(
      `<pre id="policy">${
        escapeHtml(JSON.stringify(fixture.policySnippet, null, 2))
      }</pre>`,
    ),
  );
});

Deno.test("renderAuditHtml() says how the run ended and that a failed run's report is partial", () => {
  const html = renderAuditHtml(fixture);
  assert.match(
    html,
    /<p class="outcome partial" id="outcome">The program failed: it exited with code 1 after 1\.83 s\. The result is partial/,
  );
  assert.match(html, /run <b>incomplete: exit code 1<\/b>/);
  const done = renderAuditHtml({
    ...fixture,
    run: { ...fixture.run, exitCode: 0, completed: true, summary: "ran" },
  });
  assert.match(done, /<p class="outcome" id="outcome">ran<\/p>/);
});

Deno.test("renderAuditHtml() lists refused targets apart from the proposed flags, sensitive ones tagged", () => {
  const html = renderAuditHtml(fixture);
  const list = html.slice(
    html.indexOf('<ul class="refused"'),
    html.indexOf("</ul>", html.indexOf('<ul class="refused"')),
  );
  for (const t of fixture.refused) {
    assert.ok(list.includes(escapeHtml(`${t.kind} ${t.value}`)), t.value);
  }
  assert.match(
    list,
    /read \/root\/\.ssh\/id_ed25519<\/code><span class="tag">sensitive: SSH keys/,
  );
  assert.match(
    html,
    /<h2 id="refused-title">Refused, not granted \(14\)<\/h2>/,
  );
  assert.match(
    html,
    /<p class="callout">⚠ <code>env GITHUB_TOKEN<\/code>: looks like a credential<\/p>/,
  );
  assert.match(html, /<p class="from">from <code>\/work\/agent<\/code>:<\/p>/);
});

Deno.test("renderAuditHtml() shows the injected header names per request and the program's output", () => {
  const html = renderAuditHtml(fixture);
  const rows = html.slice(html.indexOf("<tbody>"), html.indexOf("</tbody>"))
    .split("</tr>");
  const requests = rows.filter((r) => r.includes("/repos/denoland/"));
  assert.equal(requests.length, 2);
  for (const row of requests) {
    assert.match(
      row,
      /<span class="sub injected">injected authorization<\/span>/,
    );
  }
  assert.ok(
    html.includes(
      `<pre class="output" id="stdout">fetched 2 repositories\nwrote /scratch/issues.json\n</pre>`,
    ),
  );
  // The program's ESC and bidi override are visible escapes in the page.
  assert.ok(html.includes("\\x1b[2Jinjected\\u202eescape"));
  assert.ok(!html.includes("\x1b"));
});

Deno.test("renderAuditHtml() has a checkbox filter for each kind in the timeline", () => {
  const html = renderAuditHtml(fixture);
  const filters = [
    ...html.matchAll(/<input type="checkbox" checked data-filter="([a-z]+)">/g),
  ]
    .map((m) => m[1]);
  assert.deepEqual(filters, [
    "read",
    "write",
    "net",
    "env",
    "run",
    "sys",
    "ffi",
    "import",
    "egress",
    "harness",
  ]);
});

Deno.test("renderAuditHtml() loads nothing: a strict CSP and no external references", () => {
  const html = renderAuditHtml(fixture);
  const csp = html.match(
    /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/,
  )?.[1];
  assert.ok(csp);
  assert.match(
    csp,
    /^default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-[A-Za-z0-9+/=]+'; base-uri 'none'; form-action 'none'$/,
  );
  assert.doesNotMatch(
    html,
    /\b(src|href)=|url\(|@import|@font-face|https?:\/\//,
  );
});

Deno.test("renderAuditHtml() allows its own inline script by hash", async () => {
  const html = renderAuditHtml(fixture);
  const script = html.match(/<script>([\s\S]*)<\/script>/)![1]!;
  const hash = await sha256Base64(script);
  assert.ok(
    html.includes(`script-src 'sha256-${hash}'`),
    `Cannot run the page script as the CSP hash is stale: set SCRIPT_HASH to "sha256-${hash}"`,
  );
});

// Real browser: the page as Chromium builds and runs it.

async function chromium(dir: string, ...args: string[]): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command(CHROMIUM, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      `--user-data-dir=${dir}/profile`,
      ...args,
    ],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  assert.ok(success, new TextDecoder().decode(stderr));
  return new TextDecoder().decode(stdout);
}

async function withPage(
  html: string,
  fn: (dir: string, url: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "airlock_audit_html_" });
  try {
    await Deno.writeTextFile(`${dir}/report.html`, html);
    await fn(dir, `file://${dir}/report.html`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name:
    "renderAuditHtml() in Chromium (needs /usr/bin/chromium): denied rows and filters are in the DOM, no injected markup",
  ignore: !chromiumAvailable,
  fn: () =>
    withPage(renderAuditHtml(fixture), async (dir, url) => {
      const dom = await chromium(dir, "--dump-dom", url);
      const rows = timelineRows(dom);
      assert.equal(rows.length, fixture.events.length);
      assert.equal(
        rows.filter((r) => r.startsWith('<tr class="denied"')).length,
        fixture.events.filter((e) => e.source !== "harness" && isDenied(e))
          .length,
      );
      assert.ok(rows.every((r) => !r.includes("hidden")));
      assert.equal(
        dom.match(/<input type="checkbox"[^>]*data-filter=/g)?.length,
        10,
      );
      // The fixture's "<script>alert(1)</script>" file name is text in the DOM.
      assert.ok(
        dom.includes("/inputs/&lt;script&gt;alert(1)&lt;/script&gt;.md"),
      );
      assert.equal(dom.match(/<script/g)?.length, 1);
      // The page's script ran (the CSP hash matches).
      assert.ok(
        dom.includes(
          `${fixture.events.length} of ${fixture.events.length} events shown`,
        ),
      );
    }),
});

Deno.test({
  name:
    "renderAuditHtml() in Chromium (needs /usr/bin/chromium): ?hide=read,net starts with those rows hidden and boxes unchecked",
  ignore: !chromiumAvailable,
  fn: () =>
    withPage(renderAuditHtml(fixture), async (dir, url) => {
      const dom = await chromium(dir, "--dump-dom", `${url}?hide=read,net`);
      const rows = timelineRows(dom);
      assert.equal(rows.length, fixture.events.length);
      for (const row of rows) {
        const kind = row.match(/data-kind="([a-z]+)"/)![1]!;
        assert.equal(
          / hidden(="")?/.test(row),
          kind === "read" || kind === "net",
          row,
        );
      }
      for (const box of dom.match(/<input [^>]*>/g)!) {
        const kind = box.match(/data-filter="([a-z]+)"/)![1]!;
        assert.equal(
          / checked/.test(box),
          kind !== "read" && kind !== "net",
          box,
        );
      }
      const shown = rows.filter((r) => !r.includes("hidden")).length;
      assert.ok(dom.includes(`${shown} of ${rows.length} events shown`));
    }),
});

Deno.test({
  name:
    "renderAuditHtml() in Chromium (needs /usr/bin/chromium): the CSP stops a script a missed escape would let in",
  ignore: !chromiumAvailable,
  fn: async () => {
    // Simulates a renderer bug: raw markup from the program in the page.
    const html = renderAuditHtml(fixture).replace(
      "<main>",
      `<main><script>document.body.dataset.pwned = "1"</script><svg onload="document.body.dataset.pwned = '2'"></svg>`,
    );
    await withPage(html, async (dir, url) => {
      const dom = await chromium(dir, "--dump-dom", url);
      assert.ok(dom.includes("<svg"), "the injected markup is in the DOM");
      assert.ok(!dom.includes("data-pwned"), "the injected script ran");
      assert.ok(dom.includes("events shown"));
    });
  },
});

Deno.test({
  name:
    "renderAuditHtml() in Chromium (needs /usr/bin/chromium): takes a real screenshot",
  ignore: !chromiumAvailable,
  fn: () =>
    withPage(renderAuditHtml(fixture), async (dir, url) => {
      await chromium(
        dir,
        `--screenshot=${dir}/report.png`,
        "--window-size=1280,900",
        url,
      );
      const png = await Deno.readFile(`${dir}/report.png`);
      assert.deepEqual([...png.subarray(0, 8)], [
        0x89,
        0x50,
        0x4e,
        0x47,
        0x0d,
        0x0a,
        0x1a,
        0x0a,
      ]);
      assert.ok(png.length > 10 * 1024, `only ${png.length} bytes`);
      // IHDR: the size asked for.
      const view = new DataView(png.buffer, png.byteOffset);
      assert.deepEqual([view.getUint32(16), view.getUint32(20)], [1280, 900]);
    }),
});
