/**
 * The stylesheet of the HTML audit report (`render_html.ts`).
 *
 * @module
 */

/**
 * The audit page's stylesheet, inline so the file stands alone. Light and
 * dark by `prefers-color-scheme`. Static: no report data.
 *
 * @example Usage
 * ```ts
 * import { STYLE } from "./_html_style.ts";
 * console.log(STYLE.includes("prefers-color-scheme")); // true
 * ```
 */
export const STYLE = `
:root {
  color-scheme: light dark;
  --bg: #f6f7f9; --panel: #fff; --text: #1d232b; --muted: #5d6875;
  --line: #e2e6eb; --allow: #1a7f37; --allow-bg: #e8f5ec;
  --deny: #c62828; --deny-bg: #fdecec; --accent: #3b5bdb;
  --mono: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #14171c; --panel: #1c2027; --text: #e4e8ee; --muted: #98a2b0;
    --line: #2d333d; --allow: #5cc97b; --allow-bg: #1b2e22;
    --deny: #ff7b72; --deny-bg: #3a1e1f; --accent: #8ca6ff;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
header, main, footer { max-width: 1240px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 24px; }
h1 { font-size: 22px; margin: 0 0 8px; font-weight: 650; }
h1 .program { font-family: var(--mono); font-weight: 500; color: var(--accent); margin-left: 6px; word-break: break-all; }
h2 { font-size: 15px; margin: 28px 0 10px; font-weight: 650; }
code, pre, .mono { font-family: var(--mono); font-size: 12.5px; }
.facts { display: flex; flex-wrap: wrap; gap: 8px; margin: 0; padding: 0; list-style: none; }
.facts li { background: var(--panel); border: 1px solid var(--line); border-radius: 999px; padding: 3px 12px; color: var(--muted); }
.facts b { color: var(--text); font-weight: 600; }
.facts .bad b { color: var(--deny); }
.facts .good b { color: var(--allow); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(120px, 1fr)); gap: 8px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 10px 11px; }
.card h3 { margin: 0 0 6px; font-size: 13px; font-family: var(--mono); font-weight: 600; }
.card .counts { display: flex; gap: 14px; font-variant-numeric: tabular-nums; }
.card .n { font-size: 20px; font-weight: 650; line-height: 1.1; display: block; }
.card .label { font-size: 11.5px; color: var(--muted); }
.card .ok .n { color: var(--allow); }
.card .no .n { color: var(--deny); }
.card .bar { display: flex; height: 4px; border-radius: 2px; overflow: hidden; margin-top: 8px; background: var(--line); }
.card .bar i { display: block; }
.card .bar .a { background: var(--allow); }
.card .bar .d { background: var(--deny); }
.card.has-denied { box-shadow: inset 3px 0 0 var(--deny); }
.card.empty { opacity: .55; }
.card.empty .none { color: var(--muted); font-size: 12px; }
.grants { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 20px; }
@media (max-width: 900px) { .grants { grid-template-columns: minmax(0, 1fr); } }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; margin: 0;
  white-space: pre-wrap; word-break: break-all; }
.outcome { margin: 12px 0 0; padding: 8px 12px; border-radius: 8px; background: var(--allow-bg); color: var(--text); }
.outcome.partial { background: var(--deny-bg); box-shadow: inset 3px 0 0 var(--deny); font-weight: 600; }
.refused { margin: 0; padding: 0; list-style: none; }
.refused li { background: var(--panel); border: 1px solid var(--line); border-left: 3px solid var(--deny); border-radius: 6px; padding: 6px 10px; margin-bottom: 6px; }
.refused .why { display: block; color: var(--muted); font-size: 12.5px; }
.refused .tag { color: var(--deny); font-weight: 600; font-size: 12px; margin-left: 6px; }
.callout { margin: 0 0 8px; padding: 6px 10px; border-left: 3px solid var(--deny); background: var(--panel); font-size: 13px; }
.from { margin: 0 0 4px; color: var(--muted); font-size: 12.5px; }
pre.output { max-height: 420px; overflow: auto; }
.stream { margin: 10px 0 4px; font-family: var(--mono); font-size: 12.5px; color: var(--muted); }
.note { margin: 0 0 8px; padding: 6px 10px; border-left: 3px solid #d4a017; background: var(--panel); color: var(--muted); font-size: 13px; }
.filters { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 14px; margin-bottom: 10px; }
.filters label { display: inline-flex; align-items: center; gap: 5px; font-family: var(--mono); font-size: 12.5px; cursor: pointer; }
.filters .count { color: var(--muted); }
#shown { margin-left: auto; color: var(--muted); font-size: 12.5px; }
table { width: 100%; border-collapse: collapse; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; overflow: hidden; table-layout: fixed; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 11px; white-space: nowrap; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); font-weight: 600; background: var(--bg); }
th.time { width: 104px; } th.kind { width: 112px; } th.decision { width: 84px; } th.num { width: 128px; }
td { word-break: break-word; }
td.value { font-family: var(--mono); font-size: 12.5px; word-break: break-all; }
td.time, td.num { font-variant-numeric: tabular-nums; color: var(--muted); white-space: nowrap; }
td.num { text-align: right; }
.sub { display: block; color: var(--muted); font-size: 11.5px; }
tr.denied { background: var(--deny-bg); }
tr.denied td:first-child { box-shadow: inset 3px 0 0 var(--deny); }
tr.denied .badge { background: var(--deny); color: #fff; }
tr.allowed .badge { background: var(--allow-bg); color: var(--allow); }
tr.info .badge { background: var(--line); color: var(--muted); }
.badge { display: inline-block; border-radius: 4px; padding: 1px 7px; font-size: 12px; font-weight: 600; }
footer { color: var(--muted); font-size: 12px; padding: 24px; }
`;
