import { connectUnix, patternBody, sampleRss, sha256, startProxy, startUpstream } from "./_test_util.ts";
const MB = 1024*1024;
Deno.test("probe upload mem", async () => {
  await using upstream = startUpstream({ handler: async (req, res) => { const h = sha256(); for await (const c of req.bodyChunks()) h.update(c); await res.send(200, [], h.hex()); } });
  await using proxy = await startProxy({ network: { allow: ["api.example.test"] }, connectTo: [`api.example.test:80:127.0.0.1:${upstream.port}`] });
  for (const [size, collect] of [[1*MB, false], [100*MB, true], [100*MB, false], [100*MB, true]] as const) {
    const s = sampleRss(50, { collect });
    const t0 = performance.now();
    const conn = await connectUnix(proxy.path);
    await conn.send(`POST http://api.example.test/upload HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: ${size}\r\n\r\n`);
    for await (const chunk of patternBody(size)) await conn.send(chunk);
    const r = await conn.response("POST");
    conn.close();
    const m = s.stop();
    console.log(size/MB, collect, r.status, Math.round(performance.now()-t0)+"ms", ((m.peak-m.before)/MB).toFixed(1));
  }
});
