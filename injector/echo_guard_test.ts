import assert from "node:assert/strict";
import {
  credentialForms,
  EchoRedactor,
  REDACTION_MARKER,
  redactString,
  secretVariants,
} from "./echo_guard.ts";
import { mulberry32 } from "../tests/kits/http1_fuzz.ts";

const utf8 = new TextEncoder();

function latin1(data: Uint8Array): string {
  let out = "";
  for (const b of data) out += String.fromCharCode(b);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Runs `data` through a fresh redactor cut at `cuts`. */
function redactStream(
  secrets: readonly string[],
  data: Uint8Array,
  cuts: readonly number[],
  marker?: string,
): { out: Uint8Array; count: number } {
  const redactor = marker === undefined
    ? new EchoRedactor(secrets)
    : new EchoRedactor(secrets, marker);
  const parts: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, data.length]) {
    parts.push(redactor.push(data.subarray(from, cut)).slice());
    from = cut;
  }
  parts.push(redactor.flush());
  return { out: concat(parts), count: redactor.redactions };
}

function base64(bytes: Uint8Array): string {
  return btoa(latin1(bytes));
}

const SECRET = "sk-live-0123456789abcdef";

// ---- secretVariants -------------------------------------------------------

Deno.test("secretVariants() gives the raw, form-encoded, decoded and base64 forms (escaped forms are decoded, not listed)", () => {
  const secret = "a/b c+d%2Be=fgh";
  const variants = secretVariants(secret);
  assert.equal(variants[0], secret);
  assert.ok(
    variants.includes("a/b+c+d%2Be=fgh"),
    "form encoding's + for space",
  );
  assert.ok(variants.includes("a/b c+d+e=fgh"), "the secret's own %2B decoded");
  assert.ok(variants.includes(base64(utf8.encode(secret)).slice(0, 20)));
  assert.ok(!variants.includes(JSON.stringify(secret).slice(1, -1) + "x"));
  assert.equal(new Set(variants).size, variants.length, "deduplicated");
});

Deno.test("secretVariants() base64 parts match the secret at every alignment", () => {
  const secret = "correct horse battery staple";
  const variants = secretVariants(secret);
  for (let prefix = 0; prefix < 6; prefix++) {
    for (let suffix = 0; suffix < 4; suffix++) {
      const encoded = base64(
        utf8.encode("x".repeat(prefix) + secret + "y".repeat(suffix)),
      );
      assert.ok(
        variants.some((v) => encoded.includes(v)),
        `prefix ${prefix} suffix ${suffix}`,
      );
      const url = encoded.replaceAll("+", "-").replaceAll("/", "_");
      assert.ok(
        variants.some((v) => url.includes(v)),
        `base64url, prefix ${prefix}`,
      );
    }
  }
});

Deno.test("secretVariants() drops variants shorter than 4 characters", () => {
  assert.deepEqual(secretVariants("abc"), []);
  assert.deepEqual(secretVariants(""), []);
  // "abcd" keeps its raw form; its base64 parts are under 8 characters.
  assert.deepEqual(secretVariants("abcd"), ["abcd"]);
});

// ---- EchoRedactor ---------------------------------------------------------

Deno.test("EchoRedactor replaces a secret split at every possible point", () => {
  const data = utf8.encode(`{"token": "${SECRET}", "again": "${SECRET}"}`);
  const expected =
    `{"token": "${REDACTION_MARKER}", "again": "${REDACTION_MARKER}"}`;
  for (let i = 0; i <= data.length; i++) {
    for (
      const j of [i, Math.min(data.length, i + 1), Math.min(data.length, i + 7)]
    ) {
      const { out, count } = redactStream([SECRET], data, [i, j]);
      assert.equal(latin1(out), expected, `cuts ${i}, ${j}`);
      assert.equal(count, 2);
    }
  }
});

Deno.test("EchoRedactor replaces a secret fed one byte at a time", () => {
  const data = utf8.encode(`a${SECRET}b${SECRET}`);
  const { out, count } = redactStream(
    [SECRET],
    data,
    Array.from(data, (_, i) => i),
  );
  assert.equal(latin1(out), `a${REDACTION_MARKER}b${REDACTION_MARKER}`);
  assert.equal(count, 2);
});

Deno.test("EchoRedactor replaces every occurrence of several secrets", () => {
  const secrets = ["first-secret-1", "second-secret-2", "third-3333"];
  const data = utf8.encode(
    "x first-secret-1 y third-3333 z second-secret-2 first-secret-1",
  );
  const { out, count } = redactStream(secrets, data, [5, 20, 33]);
  assert.equal(
    latin1(out),
    "x [R] y [R] z [R] [R]".replaceAll("[R]", REDACTION_MARKER),
  );
  assert.equal(count, 4);
});

Deno.test("EchoRedactor covers overlapping and adjacent occurrences with one marker", () => {
  assert.equal(
    latin1(redactStream(["abab"], utf8.encode("xababay"), [], "#").out),
    "x#ay",
  );
  assert.equal(
    latin1(redactStream(["abab"], utf8.encode("xabababy"), [], "#").out),
    "x#y",
    "overlapping",
  );
  assert.equal(
    latin1(redactStream(["abcd"], utf8.encode("abcdabcd"), [3], "#").out),
    "#",
    "adjacent",
  );
  assert.equal(
    latin1(redactStream(["abcd"], utf8.encode("abcd-abcd"), [6], "#").out),
    "#-#",
  );
  // One secret inside another: nothing of either survives.
  assert.equal(
    latin1(
      redactStream(
        ["token", "token-long"],
        utf8.encode("[token-long]"),
        [],
        "#",
      ).out,
    ),
    "[#]",
  );
  assert.equal(
    latin1(
      redactStream(["aaaa"], utf8.encode("b" + "a".repeat(1000) + "b"), [
        3,
        500,
      ], "#").out,
    ),
    "b#b",
  );
});

Deno.test("EchoRedactor output is the same for every way of splitting the stream", () => {
  const random = mulberry32(11);
  const pick = (alphabet: string, n: number) =>
    Array.from(
      { length: n },
      () => alphabet[Math.floor(random() * alphabet.length)],
    ).join("");
  for (let round = 0; round < 2000; round++) {
    const secrets = [pick("ab", 4 + Math.floor(random() * 3))];
    if (random() < 0.5) secrets.push(pick("abx", 4 + Math.floor(random() * 5)));
    const data = utf8.encode(pick("abx", Math.floor(random() * 40)));
    const whole = redactString(latin1(data), secrets, "#");
    const cuts: number[] = [];
    for (let at = 0; at < data.length; at += 1 + Math.floor(random() * 6)) {
      cuts.push(at);
    }
    const { out, count } = redactStream(secrets, data, cuts, "#");
    assert.equal(
      latin1(out),
      whole.text,
      JSON.stringify({ secrets, data: latin1(data), cuts }),
    );
    assert.equal(count, whole.count);
    for (const secret of secrets) assert.ok(!latin1(out).includes(secret));
  }
});

Deno.test("EchoRedactor redacts an httpbin /headers echo in raw, JSON, percent and base64 forms", () => {
  const secret = 'tok/en+"with\\specials"=';
  const basic = base64(utf8.encode(`user:${secret}`));
  const body = JSON.stringify(
    {
      headers: {
        Authorization: `Bearer ${secret}`,
        "X-Basic": `Basic ${basic}`,
        "X-Url": `https://a.example/cb?key=${encodeURIComponent(secret)}`,
      },
      args: { key: secret },
    },
    null,
    2,
  );
  assert.ok(
    body.includes(JSON.stringify(secret).slice(1, -1)),
    "the echo carries the JSON-escaped form",
  );
  const data = utf8.encode(body);
  const { out, count } = redactStream([secret], data, [100, 101, 250]);
  const text = latin1(out);
  assert.ok(count >= 4, `count ${count}`);
  assert.ok(!text.includes(secret));
  assert.ok(!text.includes(JSON.stringify(secret).slice(1, -1)));
  assert.ok(!text.includes(encodeURIComponent(secret)));
  // What is left of the Basic credentials is base64 of "user:" plus one
  // mixed char before the marker, and one mixed char plus padding after it.
  const left = /Basic ([^"]*)/.exec(text)![1]!;
  const [before, after, ...more] = left.split(REDACTION_MARKER);
  assert.deepEqual(more, []);
  assert.ok(before!.length <= 7 && basic.startsWith(before!), before);
  assert.ok(after!.length <= 4 && basic.endsWith(after!), after);
  assert.match(text, /"Authorization": "Bearer \[airlock:redacted\]"/);
});

Deno.test("EchoRedactor redacts a non-ASCII secret in a UTF-8 body", () => {
  const secret = "clé-secrète-ü";
  const data = utf8.encode(`<p>${secret}</p>`);
  assert.equal(
    new TextDecoder().decode(redactStream([secret], data, [6]).out),
    `<p>${REDACTION_MARKER}</p>`,
  );
});

Deno.test("EchoRedactor passes binary data through byte-exact", () => {
  const random = mulberry32(3);
  const data = Uint8Array.from(
    { length: 1 << 20 },
    () => Math.floor(random() * 256),
  );
  const cuts: number[] = [];
  for (let at = 0; at < data.length; at += 1 + Math.floor(random() * 70000)) {
    cuts.push(at);
  }
  const { out, count } = redactStream([SECRET, "another-secret"], data, cuts);
  assert.equal(count, 0);
  assert.deepEqual(out, data);
  // Every byte value, 0x80-0x9f included (which windows-1252 would remap).
  const all = Uint8Array.from({ length: 512 }, (_, i) => i & 0xff);
  assert.deepEqual(redactStream([SECRET], all, [100, 300]).out, all);
});

Deno.test("EchoRedactor changes only the secret's bytes inside binary data", () => {
  const random = mulberry32(4);
  const before = Uint8Array.from(
    { length: 5000 },
    () => Math.floor(random() * 256),
  );
  const after = Uint8Array.from(
    { length: 5000 },
    () => Math.floor(random() * 256),
  );
  const data = concat([before, utf8.encode(SECRET), after]);
  const { out, count } = redactStream([SECRET], data, [4990, 5010]);
  assert.equal(count, 1);
  assert.deepEqual(out, concat([before, utf8.encode(REDACTION_MARKER), after]));
});

Deno.test("EchoRedactor holds back a bounded tail and releases it as more bytes arrive", () => {
  const secret = "abcdefgh";
  const redactor = new EchoRedactor([secret], "#");
  const filler = "0123456789".repeat(100);
  const first = latin1(redactor.push(utf8.encode(filler)));
  // Enough of a longest form's worth of escaped bytes stays back (a secret
  // may start there, escaped), never the whole stream.
  assert.ok(
    first.length > 0 && first.length < filler.length,
    `${first.length}`,
  );
  assert.equal(first, filler.slice(0, first.length));
  const second = latin1(redactor.push(utf8.encode(filler)));
  assert.equal(
    first + second,
    (filler + filler).slice(0, first.length + second.length),
  );
  assert.ok(
    first.length + second.length >= filler.length,
    "the first push's tail is released",
  );
  assert.equal(
    first + second + latin1(redactor.push(utf8.encode("abcdefgh!"))) +
      latin1(redactor.flush()),
    filler + filler + "#!",
  );
  assert.equal(redactor.redactions, 1);
});

Deno.test("EchoRedactor passes a stream of small events on with only a short tail held back", () => {
  const secret = "sk-stream-0123456789abcdef";
  const redactor = new EchoRedactor([secret], "#");
  const longest = Math.max(...secretVariants(secret).map((v) => v.length));
  let sent = "";
  let released = "";
  for (let i = 0; i < 50; i++) {
    // A token stream: JSON events, escaped quotes and newlines included.
    const event = `data: {"delta":"token ${i} \\"quoted\\"\\n"}\n\n`;
    sent += event;
    released += latin1(redactor.push(utf8.encode(event)));
    assert.ok(
      sent.length - released.length <= longest + 24,
      `event ${i}: ${sent.length - released.length} bytes held back`,
    );
  }
  released += latin1(redactor.flush());
  assert.equal(released, sent);
  // An escape near the end holds back more (it may begin an escaped secret).
  const escaped = "x".repeat(2000) + "%2d"; // "-", which the secret holds
  const out = latin1(redactor.push(utf8.encode(escaped)));
  assert.ok(out.length < escaped.length - longest - 24, `${out.length}`);
  assert.equal(out + latin1(redactor.flush()), escaped);
});

Deno.test("EchoRedactor with no usable secret passes chunks through unchanged", () => {
  const redactor = new EchoRedactor(["abc"]);
  const chunk = utf8.encode("abc abc");
  assert.equal(redactor.push(chunk), chunk);
  assert.equal(redactor.flush().length, 0);
  assert.equal(redactor.redactions, 0);
});

Deno.test("EchoRedactor starts a new stream after flush()", () => {
  const redactor = new EchoRedactor(["abcdefgh"], "#");
  assert.equal(latin1(redactor.push(utf8.encode("x abcd"))), "");
  // The first stream ends with "abcd": it cannot join the next stream's "efgh".
  assert.equal(latin1(redactor.flush()), "x abcd");
  assert.equal(
    latin1(
      concat([redactor.push(utf8.encode("efgh abcdefgh")), redactor.flush()]),
    ),
    "efgh #",
  );
  assert.equal(latin1(redactor.flush()), "");
  assert.equal(redactor.redactions, 1);
});

Deno.test("EchoRedactor streams 20 MB with planted secrets (performance sanity)", () => {
  const size = 20 * 1024 * 1024;
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 2654435761) >>> 24;
  const planted = utf8.encode(SECRET);
  const every = 1 << 20;
  for (let at = 12345; at + planted.length < size; at += every) {
    data.set(planted, at);
  }
  const secrets = [
    SECRET,
    "ghp_0123456789abcdefghijklmnopqrstuvwxyz",
    "xoxb-1234-5678-abcdefgh",
  ];
  const redactor = new EchoRedactor(secrets);
  const started = performance.now();
  let length = 0;
  for (let at = 0; at < size; at += 65536) {
    length += redactor.push(data.subarray(at, at + 65536)).length;
  }
  length += redactor.flush().length;
  const ms = performance.now() - started;
  const planting = Math.ceil((size - 12345 - planted.length) / every);
  assert.equal(redactor.redactions, planting);
  assert.equal(
    length,
    size + planting * (REDACTION_MARKER.length - planted.length),
  );
  console.log(
    `  20 MB through EchoRedactor with 3 secrets: ${ms.toFixed(0)} ms (${
      (size / 1048576 / ms * 1000).toFixed(0)
    } MB/s)`,
  );
});

// ---- redactString ---------------------------------------------------------

Deno.test("redactString() redacts header values and counts occurrences", () => {
  assert.deepEqual(redactString(`Bearer ${SECRET}`, [SECRET]), {
    text: `Bearer ${REDACTION_MARKER}`,
    count: 1,
  });
  assert.deepEqual(redactString("k=a%2Fbcdef; j=a/bcdef", ["a/bcdef"], "***"), {
    text: "k=***; j=***",
    count: 2,
  });
  assert.deepEqual(redactString("nothing here", [SECRET]), {
    text: "nothing here",
    count: 0,
  });
  assert.deepEqual(redactString("abcabc", ["abc"]), {
    text: "abcabc",
    count: 0,
  });
});

Deno.test("redactString() finds a non-ASCII secret in a latin1 header value", () => {
  const secret = "pässwörd-123";
  const wire = latin1(utf8.encode(`Basic-ish ${secret}`)); // as parseResponseHead returns it
  assert.deepEqual(redactString(wire, [secret]), {
    text: `Basic-ish ${REDACTION_MARKER}`,
    count: 1,
  });
  assert.deepEqual(redactString(`x ${secret}`, [secret]), {
    text: `x ${REDACTION_MARKER}`,
    count: 1,
  });
});

Deno.test("redactString() refuses a marker with CR, LF or NUL (header injection)", () => {
  assert.throws(
    () => redactString("v", [SECRET], "x\r\nSet-Cookie: a"),
    TypeError,
  );
});

// ---- escaped echoes -------------------------------------------------------

/** One char of an echo written the way an encoder of `family` may write it. */
function escapeChar(
  c: string,
  family: "json" | "html" | "percent" | "qp",
  random: () => number,
): string {
  const code = c.charCodeAt(0);
  const hex = code.toString(16);
  const pick = <T>(options: T[]): T =>
    options[Math.floor(random() * options.length)]!;
  switch (family) {
    case "json":
      return pick([
        `\\u${hex.padStart(4, "0")}`,
        `\\u${hex.padStart(4, "0").toUpperCase()}`,
        `\\x${hex.padStart(2, "0")}`,
        `\\u{${hex}}`,
        ...(c === "/" ? ["\\/"] : []),
      ]);
    case "html":
      return pick([
        `&#${code};`,
        `&#00${code};`,
        `&#x${hex};`,
        `&#X${hex.toUpperCase()};`,
        ...({ "+": ["&plus;"], "/": ["&sol;"], "=": ["&equals;"] }[c] ?? []),
      ]);
    case "percent":
      return pick([`%${hex.toUpperCase()}`, `%${hex}`, `%u00${hex}`]);
    case "qp":
      return `=${hex.toUpperCase().padStart(2, "0")}`;
  }
}

Deno.test("EchoRedactor finds a secret with +, / and = under any mix of JSON, HTML, percent and quoted-printable escapes, split anywhere", () => {
  const random = mulberry32(21);
  const alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_.~:!$";
  const families = ["json", "html", "percent", "qp", "mixed"] as const;
  for (let round = 0; round < 600; round++) {
    const length = 12 + Math.floor(random() * 30);
    const secret = Array.from(
      { length },
      () => alphabet[Math.floor(random() * alphabet.length)],
    ).join("");
    const family = families[round % families.length]!;
    let echo = "";
    for (const c of secret) {
      const f = family === "mixed"
        ? (["json", "html", "percent"] as const)[Math.floor(random() * 3)]!
        : family;
      // Quoted-printable must escape "="; the others escape any subset.
      const escape = (f === "qp" && c === "=") || random() < 0.4;
      // A soft line break between two chars.
      if (f === "qp" && echo !== "" && random() < 0.1) echo += "=\r\n";
      echo += escape ? escapeChar(c, f, random) : c;
    }
    const text = ` <${echo}> `;
    const data = utf8.encode(text);
    const cuts: number[] = [];
    for (let at = 1; at < data.length; at += 1 + Math.floor(random() * 9)) {
      cuts.push(at);
    }
    const { out, count } = redactStream([secret], data, cuts, "#");
    assert.equal(
      latin1(out),
      " <#> ",
      JSON.stringify({ family, secret, echo, cuts }),
    );
    assert.equal(count, 1, JSON.stringify({ family, secret, echo }));
    assert.deepEqual(redactString(text, [secret], "#"), {
      text: " <#> ",
      count: 1,
    });
  }
});

Deno.test("EchoRedactor finds the base64 of Basic credentials when its +, / and = are escaped", () => {
  const secret = "pa~ss/w0rd?>>x";
  const basic = base64(utf8.encode(`user:${secret}`));
  assert.match(basic, /[+/=]/);
  for (
    const escaped of [
      basic.replaceAll("+", "\\u002B").replaceAll("/", "\\/"),
      basic.replaceAll("+", "&#43;").replaceAll("=", "&#x3d;"),
      basic.replaceAll("/", "%2f").replaceAll("=", "%3D"),
    ]
  ) {
    const { out } = redactStream(
      [secret],
      utf8.encode(`{"auth":"Basic ${escaped}"}`),
      [20],
    );
    const text = latin1(out);
    assert.ok(text.includes(REDACTION_MARKER), text);
    // What is left is base64 of "user:" and bits mixed with the padding.
    const left = /Basic ([^"]*)/.exec(text)![1]!.split(REDACTION_MARKER);
    assert.ok(left[0]!.length <= 7, text);
    assert.ok(left[1]!.replace(/\\u003d|&#x3d;|%3D|=/gi, "").length <= 2, text);
  }
});

Deno.test("EchoRedactor reads escapes as their decoders do: an escaped backslash starts no escape", () => {
  const secret = "ABCDEFGH+1";
  // JSON "\\u0041BCDEFGH+1" is a backslash and the text "u0041BCDEFGH+1".
  assert.equal(redactString("\\\\u0041BCDEFGH+1", [secret], "#").count, 0);
  assert.equal(redactString("\\u0041BCDEFGH\\u002b1", [secret], "#").text, "#");
  assert.equal(
    redactString("\\\\\\u0041BCDEFGH+1", [secret], "#").text,
    "\\\\#",
  );
  // Not escapes: an unknown name, a code point beyond U+10FFFF.
  assert.equal(redactString("&foo;&#x110000;", [secret], "#").count, 0);
});

Deno.test("EchoRedactor: 'key=AB…' in a URL is not taken for quoted-printable when the secret starts with hex digits", () => {
  const secret = "AB12cdef+ghij/kl";
  const echo =
    `{"next":"https://a.example/?tok=AB12cdef\\u002Bghij\\/kl","qp":"x=\r\ny"}`;
  const { out, count } = redactStream([secret], utf8.encode(echo), [30]);
  assert.equal(count, 1);
  assert.equal(
    latin1(out),
    `{"next":"https://a.example/?tok=${REDACTION_MARKER}","qp":"x=\r\ny"}`,
  );
});

Deno.test("EchoRedactor finds a secret escaped twice (one escape inside another)", () => {
  const secret = "tw1ce+Esc/aped=42";
  for (
    const echo of [
      // A URL parameter percent-encoded again inside another URL.
      "tw1ce%252BEsc%252Faped%253D42",
      // HTML-escaped twice (the double-escaping bug).
      "tw1ce&amp;#43;Esc&amp;#x2F;aped&amp;#61;42",
      // A JSON string inside a JSON string.
      "tw1ce\\u002BEsc\\/aped\\u003d42",
      // Percent-encoded, then HTML-escaped.
      "tw1ce%2BEsc%2Faped%3D42".replaceAll("%", "&#37;"),
    ]
  ) {
    assert.deepEqual(
      redactString(`<${echo}>`, [secret], "#"),
      { text: "<#>", count: 1 },
      echo,
    );
    const data = utf8.encode(`<${echo}>`);
    const cuts = Array.from({ length: data.length }, (_, i) => i);
    assert.equal(latin1(redactStream([secret], data, cuts, "#").out), "<#>");
  }
});

Deno.test("EchoRedactor finds a secret's base64 wrapped across lines (MIME, PEM)", () => {
  const secret = "wr4pped-credential-for-mime-bodies+/x";
  const encoded = base64(utf8.encode(`user:${secret}`));
  for (const lineBreak of ["\r\n", "\n"]) {
    for (let at = 20; at < encoded.length - 4; at += 7) {
      const wrapped = encoded.slice(0, at) + lineBreak + encoded.slice(at);
      const { out, count } = redactStream(
        [secret],
        utf8.encode(`Content-Transfer-Encoding: base64\r\n\r\n${wrapped}\r\n`),
        [at + 10],
      );
      const text = latin1(out);
      assert.equal(count, 1, JSON.stringify(wrapped));
      assert.ok(text.includes(REDACTION_MARKER), text);
      assert.ok(!text.includes(encoded.slice(12, 30)), text);
    }
  }
  // A line break in ordinary text is left alone.
  const plain = "some words\nmore words";
  assert.equal(redactString(plain, [secret]).text, plain);
});

Deno.test("EchoRedactor output is the same for every way of splitting an escape-laden stream", () => {
  const random = mulberry32(12);
  const pieces = [
    "a",
    "b",
    "+",
    "=",
    "%2B",
    "%2b",
    "\\u002B",
    "\\u0061",
    "&#43;",
    "&#x61;",
    "&plus;",
    "=3D",
    "=\r\n",
    "%25",
    "&amp;",
    "\n",
    "AAAAAAAAAAAAAAAA",
    "\\\\",
    "\\",
    "%",
    "&",
    "x",
  ];
  const pick = (n: number) =>
    Array.from(
      { length: n },
      () => pieces[Math.floor(random() * pieces.length)],
    ).join("");
  for (let round = 0; round < 1500; round++) {
    const secrets = [
      Array.from(
        { length: 4 + Math.floor(random() * 4) },
        () => "ab+="[Math.floor(random() * 4)],
      ).join(""),
    ];
    const data = utf8.encode(pick(Math.floor(random() * 40)));
    const whole = redactString(latin1(data), secrets, "#");
    const cuts: number[] = [];
    for (let at = 0; at < data.length; at += 1 + Math.floor(random() * 6)) {
      cuts.push(at);
    }
    const { out, count } = redactStream(secrets, data, cuts, "#");
    const context = JSON.stringify({ secrets, data: latin1(data), cuts });
    assert.equal(latin1(out), whole.text, context);
    assert.equal(count, whole.count, context);
  }
});

Deno.test("EchoRedactor leaves escape-laden text without a secret byte-exact", () => {
  const text = `{"a":"line\\nwith \\"quotes\\" \\u00e9 &amp; &#43; %2B =3D",` +
    `"url":"https://x.example/?a=1&b=%2F2"}`.repeat(50);
  const data = utf8.encode(text);
  const { out, count } = redactStream([SECRET, "Zm9v+YmFy/YmF6="], data, [
    7,
    100,
    1000,
  ]);
  assert.equal(count, 0);
  assert.deepEqual(out, data);
});

// ---- credentialForms ------------------------------------------------------

Deno.test("credentialForms() guards the whole value and the credential after its scheme", () => {
  assert.deepEqual(credentialForms("Bearer ghp_0123456789abcdef"), [
    "Bearer ghp_0123456789abcdef",
    "ghp_0123456789abcdef",
  ]);
  assert.deepEqual(credentialForms("token  xoxb-1234-5678 "), [
    "token  xoxb-1234-5678 ",
    "xoxb-1234-5678",
  ]);
  // No scheme word: the value is the credential.
  assert.deepEqual(credentialForms("sk-live-0123456789"), [
    "sk-live-0123456789",
  ]);
  // Too short to recognise without redacting ordinary text.
  assert.deepEqual(credentialForms("v1"), []);
  assert.deepEqual(credentialForms("Bearer abc"), ["Bearer abc"]);
});

Deno.test("credentialForms() guards each parameter value: cookies one by one, auth-params", () => {
  assert.deepEqual(
    credentialForms(
      'session=s3ss10n-v4lue-77; theme=dark; csrf="c5rf-t0ken-99"',
    ),
    [
      'session=s3ss10n-v4lue-77; theme=dark; csrf="c5rf-t0ken-99"',
      "s3ss10n-v4lue-77",
      "c5rf-t0ken-99",
    ],
  );
  assert.deepEqual(
    credentialForms(
      'Digest username="bot", response="6629fae49393a05397450978507c4ef1"',
    ),
    [
      'Digest username="bot", response="6629fae49393a05397450978507c4ef1"',
      "6629fae49393a05397450978507c4ef1",
    ],
  );
  // A list without parameters is not split: "Accept: a/b, c/d" stays whole.
  assert.deepEqual(credentialForms("application/json, text/plain"), [
    "application/json, text/plain",
  ]);
});

Deno.test("credentialForms() decodes Basic credentials: user:password, the password, the user name when the password is empty", () => {
  const basic = btoa("octo-user:pa+ss/w0rd=99");
  assert.deepEqual(credentialForms(`Basic ${basic}`), [
    `Basic ${basic}`,
    basic,
    "octo-user:pa+ss/w0rd=99",
    "pa+ss/w0rd=99",
  ]);
  const key = btoa("sk_test_4eC39HqLyjWDarjtT1zdp7dc:");
  assert.deepEqual(credentialForms(`basic ${key}`), [
    `basic ${key}`,
    key,
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc:",
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
  ]);
  // Not base64 of text: only the raw forms.
  assert.deepEqual(credentialForms("Basic not*base64!"), [
    "Basic not*base64!",
    "not*base64!",
  ]);
});
