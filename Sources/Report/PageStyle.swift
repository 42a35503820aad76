/// The page's stylesheet, inline: system fonts only (nothing fetched), legible at 1280 px, and a
/// print view that shows every scenario's detail.
enum PageStyle {
    static let css = """
    :root { color-scheme: light; --fg: #1a1a1a; --muted: #555; --line: #d0d0d0; --pass: #006d4f; --fail: #b3261e; --skip: #6b5900; }
    * { box-sizing: border-box; }
    body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: var(--fg); background: #fff;
           margin: 0 auto; padding: 20px 24px 40px; max-width: 1260px; }
    h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 28px 0 8px; } h3 { font-size: 16px; margin: 22px 0 6px; }
    .subtitle { color: var(--muted); margin: 0 0 16px; }
    .counts { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0 8px; padding: 0; list-style: none; }
    .counts li { border: 1px solid var(--line); border-radius: 6px; padding: 8px 16px; min-width: 120px; }
    .counts .n { display: block; font-size: 26px; font-weight: 700; }
    .counts .passed .n { color: var(--pass); } .counts .failed .n, .counts .errors .n { color: var(--fail); } .counts .skipped .n { color: var(--skip); }
    dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 18px; margin: 8px 0; }
    dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
    .row { display: grid; grid-template-columns: 100px minmax(200px, 1.4fr) 2.6fr 90px; gap: 12px; align-items: baseline; padding: 7px 10px; }
    .head { font-weight: 600; color: var(--muted); border-bottom: 2px solid var(--line); }
    details.scenario { border-bottom: 1px solid var(--line); }
    details.scenario > summary { cursor: pointer; list-style: none; }
    details.scenario > summary::-webkit-details-marker { display: none; }
    details.scenario > summary::before { content: "▸"; position: absolute; margin-left: -14px; color: var(--muted); }
    details.scenario[open] > summary::before { content: "▾"; }
    details.scenario > summary:hover, details.scenario > summary:focus-visible { background: #f4f6f8; outline: 2px solid #0072B2; outline-offset: -2px; }
    .detail { padding: 4px 12px 20px 22px; }
    .badge { display: inline-block; font-weight: 700; border-radius: 4px; padding: 1px 8px; border: 2px solid currentColor; }
    .badge.PASS { color: var(--pass); } .badge.FAIL, .badge.ERROR { color: var(--fail); } .badge.SKIP { color: var(--skip); }
    .badge.TRACE { color: var(--muted); }
    .num { text-align: right; font-variant-numeric: tabular-nums; }
    .figures { color: var(--muted); }
    table { border-collapse: collapse; margin: 6px 0; font-variant-numeric: tabular-nums; }
    th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
    th { background: #f4f4f4; }
    tr.failing td { background: #fdecea; font-weight: 600; }
    table.compare { width: 100%; table-layout: fixed; } table.compare td, table.compare th { overflow-wrap: anywhere; }
    ul.mismatches li { color: var(--fail); }
    .note { color: var(--muted); font-size: 14px; }
    svg.chart { display: block; width: 100%; height: auto; max-width: 1180px; margin: 6px 0 2px; font-size: 12px; }
    svg.chart .label, svg.chart .tick { fill: #333; } svg.chart .lane-name { font-weight: 600; fill: #222; }
    svg.chart .segment-label { font-size: 11px; font-weight: 600; fill: #000; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
    svg.chart .phase-label { font-size: 11px; fill: #333; font-style: italic; }
    svg.chart .axis-label { fill: #555; } svg.chart .reference-label { fill: #8a3500; font-weight: 600; }
    .key { display: inline-flex; gap: 18px; font-size: 13px; color: var(--muted); margin: 0 0 4px; flex-wrap: wrap; }
    footer { margin-top: 32px; color: var(--muted); font-size: 13px; }
    @media print {
      body { max-width: none; padding: 0; font-size: 11pt; }
      details.scenario > summary::before { content: none; }
      details.scenario::details-content { content-visibility: visible; display: block; }
      details.scenario:not([open]) > .detail { display: block; }
      svg.chart { break-inside: avoid; max-width: 100%; }
      summary:hover { background: none; outline: none; }
    }
    """
}
