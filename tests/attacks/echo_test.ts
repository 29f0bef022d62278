/**
 * Echo laundering: the program makes an allowed upstream hand the injected
 * credential back in a form the echo guard might not recognise. A "mirror"
 * upstream answers every request with the Authorization value it received,
 * encoded and placed the way the request path says (so the program picks
 * the encoding, as it could with a real reflecting endpoint): JSON and
 * JavaScript escapes, HTML and XML character references, percent-encoding
 * of any subset, quoted-printable with soft line breaks, mixed per
 * character, base64 of Basic credentials with escaped `+/=`; in the body, a
 * header value, a header name; or under a Content-Encoding framing the
 * guard cannot check. A second batch injects the credential as a literal
 * policy value (as `--inject "h:Authorization=Bearer $TOKEN"` does after
 * shell expansion), not a `${secret:…}` reference. The runner scans every
 * byte the program printed for the canaries in every encoding it knows.
 *
 * Out of reach by design, and so not here: transformations an upstream
 * applies on purpose (hex, reversal, encryption, one byte per response);
 * SECURITY.md says why.
 */

import assert from "node:assert/strict";
import zlib from "node:zlib";
import {
  basePolicy,
  Corpus,
  type Fixtures,
  HOSTS,
  INJECT,
  INJECTED_CANARY,
  MARKER,
  valueOf,
} from "./_corpus.ts";

/** Answers with the credential, encoded as the path says. */
const MIRROR = "mirror.attack.test";
/** The same, injecting a literal (not referenced) credential. */
const LITERAL_MIRROR = "literal.attack.test";
/** The literal Basic credential's host. */
const BASIC_MIRROR = "basic.attack.test";

const hex = (c: string, width: number) =>
  c.charCodeAt(0).toString(16).padStart(width, "0");

/** Encoders of the echoed value, by name (each written by hand). */
const ENCODE: Record<string, (value: string) => string> = {
  // Every non-alphanumeric char as \uXXXX, upper-case hex.
  "json-upper": (v) =>
    v.replace(/[^A-Za-z0-9]/g, (c) => `\\u${hex(c, 4).toUpperCase()}`),
  // Every char as \uXXXX, hex case alternating.
  "json-every": (v) =>
    [...v].map((c, i) => `\\u${i % 2 ? hex(c, 4).toUpperCase() : hex(c, 4)}`)
      .join(""),
  // JavaScript source escapes: \xHH and \u{H}.
  "js-source": (v) =>
    v.replace(/[+ ]/g, (c) => `\\x${hex(c, 2)}`).replace(
      /\//g,
      (c) => `\\u{${hex(c, 1)}}`,
    ),
  // Zero-padded decimal character references.
  "html-decimal": (v) =>
    v.replace(/[^A-Za-z0-9]/g, (c) => `&#000${c.charCodeAt(0)};`),
  // Upper-case hexadecimal references, as some XML writers emit.
  "xml-hex": (v) =>
    v.replace(/[^A-Za-z0-9]/g, (c) => `&#X${hex(c, 2).toUpperCase()};`),
  // HTML5 named references.
  "html-named": (v) =>
    v.replaceAll("+", "&plus;").replaceAll("/", "&sol;").replaceAll(
      " ",
      "&#32;",
    ),
  // Python's urllib.parse.quote(): "/" kept, upper-case hex.
  "python-quote": (v) =>
    v.replace(/[^A-Za-z0-9/_.~-]/g, (c) => `%${hex(c, 2).toUpperCase()}`),
  // Every byte percent-encoded, lower-case hex.
  "percent-every": (v) => [...v].map((c) => `%${hex(c, 2)}`).join(""),
  // JavaScript's escape() for the specials: %uXXXX.
  "js-escape": (v) =>
    v.replace(/[^A-Za-z0-9]/g, (c) => `%u${hex(c, 4).toUpperCase()}`),
  // Quoted-printable: specials as =XX, a soft line break after every
  // fifth unit (never inside an =XX, as an encoder keeps lines short).
  "quoted-printable": (v) =>
    [...v].map((c, i) =>
      (/[A-Za-z0-9]/.test(c) ? c : `=${hex(c, 2).toUpperCase()}`) +
      (i % 5 === 4 ? "=\r\n" : "")
    ).join(""),
  // A different family for each special char.
  "mixed": (v) => {
    let i = 0;
    return v.replace(/[^A-Za-z0-9]/g, (c) => {
      const forms = [
        `\\u${hex(c, 4)}`,
        `&#x${hex(c, 2)};`,
        `%${hex(c, 2).toUpperCase()}`,
      ];
      return forms[i++ % forms.length]!;
    });
  },
  // Basic credentials built from the value, their +/= escaped (JSON style).
  "basic-escaped": (v) =>
    btoa(`agent:${v}`).replaceAll("+", "\\u002b").replaceAll("/", "&#47;")
      .replaceAll("=", "%3d"),
};

const authOf = (head: string) =>
  head.match(/\r\nauthorization: *([^\r]*)/i)?.[1] ?? "";
/** The `sid` cookie's value, as a cookie-echoing endpoint returns it. */
const sidOf = (head: string) =>
  head.match(/\r\ncookie: *(?:[^\r]*; *)?sid=([^;\r]*)/i)?.[1] ?? "";
const pathOf = (head: string) => head.split(" ")[1] ?? "/";

/** A whole raw response (UTF-8 text, or bytes). */
function response(
  headers: string[],
  body: string | Uint8Array,
  status = "200 OK",
): Uint8Array {
  const bytes = typeof body === "string"
    ? new TextEncoder().encode(body)
    : body;
  const head = new TextEncoder().encode(
    `HTTP/1.1 ${status}\r\n${headers.map((h) => `${h}\r\n`).join("")}` +
      `Content-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`,
  );
  const out = new Uint8Array(head.length + bytes.length);
  out.set(head);
  out.set(bytes, head.length);
  return out;
}

/**
 * The mirror: `/body/<encoding>`, `/header/<encoding>`, `/name/<encoding>`
 * (the value percent-encoded into a field name), `/two-codings`,
 * `/coding-list`, `/coding-is-credential`. Under `/token/` it echoes only
 * the credential after the scheme word, under `/decoded/` that credential
 * base64-decoded (Basic's `user:password`), under `/cookie/` the value of
 * the `sid` cookie.
 */
function mirror(head: string): Uint8Array {
  const path = pathOf(head);
  const auth = authOf(head);
  const [, part = "", where = "", name = ""] =
    /^\/(?:(token|decoded|cookie)\/)?([a-z-]+)\/?([a-z-]*)/.exec(path) ?? [];
  const credential = auth.replace(/^\S+ /, "");
  const value = part === "cookie"
    ? sidOf(head)
    : part === "token"
    ? credential
    : part === "decoded"
    ? new TextDecoder().decode(
      Uint8Array.from(atob(credential), (c) => c.charCodeAt(0)),
    )
    : auth;
  const encode = ENCODE[name] ?? ((v: string) => v);
  switch (where) {
    case "body":
      return response(
        ["Content-Type: text/plain"],
        `{"you sent":"${encode(value)}"}`,
      );
    case "header":
      return response(
        [`X-Mirror: ${encode(value).replaceAll("=\r\n", "")}`],
        "see header",
      );
    case "name":
      return response(
        [`X-Mirror-${ENCODE["percent-every"]!(value)}: 1`, "X-Kept: 1"],
        "see names",
      );
    case "two-codings":
      // Which line wins? The program inflates the raw gzip itself.
      return response(
        ["Content-Encoding: identity", "Content-Encoding: gzip"],
        new Uint8Array(zlib.gzipSync(`auth=${value}`)),
      );
    case "coding-list":
      return response(
        ["Content-Encoding: gzip, identity"],
        new Uint8Array(zlib.gzipSync(`auth=${value}`)),
      );
    case "coding-is-credential":
      return response([`Content-Encoding: ${value}`], "x");
    default:
      return response([], "unknown mirror path", "404 Not Found");
  }
}

const corpus = new Corpus("echo", {
  setup: async (fx) => {
    for (const name of [MIRROR, LITERAL_MIRROR, BASIC_MIRROR]) {
      fx.credentialed.add(name);
      await fx.ups.addRaw(name, mirror);
    }
  },
});

/** The base policy plus extra hosts. */
function withHosts(
  fx: Fixtures,
  extra: Record<string, unknown>,
): ReturnType<typeof basePolicy> {
  const base = basePolicy(fx);
  const network = base.network as { allow: Record<string, unknown> };
  return {
    ...base,
    network: { allow: { ...network.allow, ...extra } },
  } as ReturnType<typeof basePolicy>;
}

corpus.batch("main", { policy: (fx) => withHosts(fx, { [MIRROR]: INJECT }) });
corpus.batch("literal", {
  policy: (fx) =>
    withHosts(fx, {
      // Literal values, as the CLI's --inject gets them after the shell
      // expanded $TOKEN: no ${secret:…} reference anywhere.
      [LITERAL_MIRROR]: [{
        transform: [{
          headers: {
            authorization: `Bearer ${INJECTED_CANARY}`,
            cookie: `lang=en; sid=${INJECTED_CANARY}; seen=1`,
          },
        }],
      }],
      [BASIC_MIRROR]: [{
        transform: [{
          headers: { authorization: `Basic ${btoa(`ci:${INJECTED_CANARY}`)}` },
        }],
      }],
    }),
});

interface Fetched {
  status: number;
  airlockError: string | null;
  headers: Record<string, string>;
  body: string;
}

const fetchCode = (url: string) =>
  `return await fetchText(${JSON.stringify(url)});`;

/** The mirror really received the credential (positive control). */
function assertSent(fx: Fixtures, host: string, path: string, auth: string) {
  const seen = fx.ups.get(host).seen.filter((s) => s.path === path);
  assert.equal(seen.length, 1, `${host}${path} requests: ${seen.length}`);
  assert.deepEqual(
    seen[0]!.headers.filter(([n]) => n === "authorization").map(([, v]) => v),
    [auth],
  );
}

const echoAudit = (host: string, path: string) => ({
  injector: {
    kind: "secret-echo" as const,
    host,
    path,
    decisions: ["allow" as const],
  },
});

let id = 0;
const nextId = () => `ec-${String(++id).padStart(3, "0")}`;

// ---- escaped echoes of a referenced credential, in the body ------------
for (const name of Object.keys(ENCODE)) {
  const path = `/body/${name}`;
  corpus.add({
    id: nextId(),
    title: `read the injected credential back ${name}-encoded in a body`,
    code: fetchCode(`https://${MIRROR}${path}`),
    expect: (v) => {
      const got = valueOf<Fetched>(v);
      assert.equal(got.status, 200);
      assert.ok(got.body.includes(MARKER), got.body);
      assertSent(v.fx, MIRROR, path, `Bearer ${INJECTED_CANARY}`);
    },
    audit: echoAudit(MIRROR, path),
  });
}

// ---- in a header value, in a header name, the bare token ---------------
for (const name of ["json-upper", "xml-hex", "python-quote", "mixed"]) {
  const path = `/header/${name}`;
  corpus.add({
    id: nextId(),
    title:
      `read the injected credential back ${name}-encoded in a header value`,
    code: fetchCode(`https://${MIRROR}${path}`),
    expect: (v) => {
      const got = valueOf<Fetched>(v);
      assert.equal(got.status, 200);
      assert.ok(
        (got.headers["x-mirror"] ?? "").includes(MARKER),
        got.headers["x-mirror"],
      );
      assertSent(v.fx, MIRROR, path, `Bearer ${INJECTED_CANARY}`);
    },
    audit: echoAudit(MIRROR, path),
  });
}
corpus.add({
  id: nextId(),
  title:
    "read the injected credential back percent-encoded in a response header name",
  code: fetchCode(`https://${MIRROR}/name/percent-every`),
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    assert.equal(got.status, 200);
    assert.equal(got.headers["x-kept"], "1");
    assert.deepEqual(
      Object.keys(got.headers).filter((n) => n.startsWith("x-mirror")),
      [],
    );
  },
  audit: echoAudit(MIRROR, "/name/percent-every"),
});
for (const name of ["html-decimal", "quoted-printable"]) {
  const path = `/token/body/${name}`;
  corpus.add({
    id: nextId(),
    title: `read only the token after "Bearer", ${name}-encoded`,
    code: fetchCode(`https://${MIRROR}${path}`),
    expect: (v) => {
      const got = valueOf<Fetched>(v);
      // (A soft line break after the token's last unit stays.)
      assert.match(got.body, /^\{"you sent":"\[airlock:redacted\](=\r\n)?"\}$/);
    },
    audit: echoAudit(MIRROR, path),
  });
}

// ---- framing the guard cannot check ------------------------------------
for (
  const [path, title] of [
    [
      "/two-codings",
      "two Content-Encoding lines (identity, then gzip) around a gzipped echo, to inflate in the program",
    ],
    ["/coding-list", "a Content-Encoding list (gzip, identity)"],
    [
      "/coding-is-credential",
      "the credential as the Content-Encoding value, to read it back from the error",
    ],
  ] as const
) {
  corpus.add({
    id: nextId(),
    title: `read the credential through ${title}`,
    code: `const r = await fetch("https://${MIRROR}${path}");
      const bytes = new Uint8Array(await r.arrayBuffer());
      let inflated = null;
      try { inflated = __dec.decode(await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).arrayBuffer()); } catch {}
      return { status: r.status, error: r.headers.get("x-airlock-error"), headers: Object.fromEntries(r.headers), text: __dec.decode(bytes), inflated };`,
    expect: (v) => {
      const got = valueOf<
        {
          status: number;
          error: string | null;
          text: string;
          inflated: string | null;
        }
      >(v);
      assert.equal(got.status, 502, JSON.stringify(got));
      assert.equal(got.error, "upstream-error");
      assert.match(got.text, /unsupported content-encoding/);
      assert.equal(got.inflated, null);
      assertSent(v.fx, MIRROR, path, `Bearer ${INJECTED_CANARY}`);
    },
    audit: { injector: { host: MIRROR, path, status: 502 } },
  });
}

// ---- Connection naming Host and the injected header --------------------
corpus.add({
  id: nextId(),
  title:
    "list Host and Authorization in Connection so the forwarded request loses its Host (a shared upstream's default site would get the credential)",
  code:
    `return await rawProxy("GET /conn-hop HTTP/1.1\\r\\nHost: ${HOSTS.echo}\\r\\nConnection: Host, AUTHORIZATION, keep-alive\\r\\nconnection: x-gone\\r\\nX-Gone: 1\\r\\n\\r\\n", { connect: "${HOSTS.echo}:443", tls: "${HOSTS.echo}" });`,
  expect: (v) => {
    const got = valueOf<{ response: string }>(v);
    assert.match(got.response, /^HTTP\/1\.1 200 /, got.response.slice(0, 200));
    const seen = v.fx.ups.get(HOSTS.echo).seen.filter((s) =>
      s.path === "/conn-hop"
    );
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.host, HOSTS.echo);
    assert.deepEqual(
      seen[0]!.headers.filter(([n]) => n === "authorization").map(([, x]) => x),
      [`Bearer ${INJECTED_CANARY}`],
    );
    assert.ok(!seen[0]!.headers.some(([n]) => n === "x-gone"));
  },
  audit: {
    injector: {
      host: HOSTS.echo,
      path: "/conn-hop",
      injected: ["authorization"],
      decisions: ["allow"],
    },
  },
});

// ---- a literal credential ----------------------------------------------
for (const name of ["json-upper", "html-named", "percent-every"]) {
  const path = `/body/${name}`;
  corpus.add({
    id: nextId(),
    batch: "literal",
    title:
      `read back a credential the policy holds literally (not a reference), ${name}-encoded`,
    code: fetchCode(`https://${LITERAL_MIRROR}${path}`),
    expect: (v) => {
      const got = valueOf<Fetched>(v);
      // What is left is at most the scheme word, encoded ("Bearer\u0020").
      const left = got.body.replace(`{"you sent":"`, "").replace(
        `${MARKER}"}`,
        "",
      );
      assert.ok(left.length <= "Bearer ".length * 6, got.body);
      assert.ok(got.body.endsWith(`${MARKER}"}`), got.body);
      assertSent(v.fx, LITERAL_MIRROR, path, `Bearer ${INJECTED_CANARY}`);
    },
    audit: echoAudit(LITERAL_MIRROR, path),
  });
}
corpus.add({
  id: nextId(),
  batch: "literal",
  title:
    "read back one literal cookie's value on its own (as a cookie-echoing endpoint lists them), JSON-escaped",
  code: fetchCode(`https://${LITERAL_MIRROR}/cookie/body/json-upper`),
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    assert.equal(got.body, `{"you sent":"${MARKER}"}`);
    const seen = v.fx.ups.get(LITERAL_MIRROR).seen.filter((s) =>
      s.path === "/cookie/body/json-upper"
    );
    assert.deepEqual(
      seen[0]?.headers.filter(([n]) => n === "cookie").map(([, x]) => x),
      [`lang=en; sid=${INJECTED_CANARY}; seen=1`],
    );
  },
  audit: echoAudit(LITERAL_MIRROR, "/cookie/body/json-upper"),
});
corpus.add({
  id: nextId(),
  batch: "literal",
  title: "read back only the literal token after its scheme, in a header",
  code: fetchCode(`https://${LITERAL_MIRROR}/token/header/js-source`),
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    assert.equal(got.headers["x-mirror"], MARKER);
  },
  audit: echoAudit(LITERAL_MIRROR, "/token/header/js-source"),
});
corpus.add({
  id: nextId(),
  batch: "literal",
  title:
    "read back a literal Basic credential: its base64 percent-encoded, and the decoded user:password HTML-escaped",
  code:
    `const a = await fetchText("https://${BASIC_MIRROR}/token/body/python-quote");
    const b = await fetchText("https://${BASIC_MIRROR}/decoded/body/xml-hex");
    return { a, b };`,
  expect: (v) => {
    const got = valueOf<{ a: Fetched; b: Fetched }>(v);
    assert.equal(got.a.body, `{"you sent":"${MARKER}"}`);
    // "ci:" is not the secret; the password after it is.
    assert.match(
      got.b.body,
      /^\{"you sent":"(ci&#X3A;)?\[airlock:redacted\]"\}$/,
    );
  },
  audit: [
    echoAudit(BASIC_MIRROR, "/token/body/python-quote"),
    echoAudit(BASIC_MIRROR, "/decoded/body/xml-hex"),
  ],
});

corpus.register();
