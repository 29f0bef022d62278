import {
  connectUnix,
  patternBody,
  sha256,
  startProxy,
  startUpstream,
} from "./_test_util.ts";
const MB = 1024 * 1024;
Deno.test("probe upload mem", async () => {
  await using upstream = startUpstream({
    handler: async (req, res) => {
      const h = sha256();
      for await (const c of req.bodyChunks()) h.update(c);
      await res.send(200, [], h.hex());
    },
  });
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: [`api.example.test:80:127.0.0.1:${upstream.port}`],
  });
  for (const size of [32 * MB, 100 * MB, 100 * MB, 100 * MB]) {
    const base = Deno.memoryUsage();
    const peak = { rss: 0, heapUsed: 0, external: 0, heapTotal: 0 };
    const t = setInterval(() => {
      const m = Deno.memoryUsage();
      for (const k of Object.keys(peak) as (keyof typeof peak)[]) {
        peak[k] = Math.max(peak[k], m[k]);
      }
    }, 20);
    const conn = await connectUnix(proxy.path);
    await conn.send(
      `POST http://api.example.test/upload HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: ${size}\r\n\r\n`,
    );
    for await (const chunk of patternBody(size)) await conn.send(chunk);
    const r = await conn.response("POST");
    conn.close();
    clearInterval(t);
    console.log(
      size / MB,
      r.status,
      Object.entries(peak).map(([k, v]) =>
        `${k}+${((v - (base as any)[k]) / MB).toFixed(1)}`
      ).join(" "),
      "base rss",
      (base.rss / MB).toFixed(0),
      "heap",
      (base.heapTotal / MB).toFixed(0),
    );
  }
});
