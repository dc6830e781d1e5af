// Medians and the plain-text tables.

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** Median req/s, p50, p99 and the summed errors of a list of wrk results. */
export function summarise(runs) {
  return {
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50 || undefined)),
    p99: median(runs.map((r) => r.p99 || undefined)),
    errors: runs.reduce((n, r) => n + (r.errors ?? 0), 0),
    /** (max − min) / median of req/s over the rounds: how noisy this figure was */
    spread: spread(runs.map((r) => r.rps)),
  };
}

function spread(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x));
  const m = median(v);
  return v.length > 1 && m ? (Math.max(...v) - Math.min(...v)) / m : undefined;
}

export function ratio(a, b) {
  return a !== undefined && b ? a / b : undefined;
}

export const fmt = {
  int: (x) => (x === undefined ? 'n/a' : Math.round(x).toLocaleString('en-US')),
  ms: (x) => (x === undefined ? 'n/a' : x < 1 ? x.toFixed(3) : x < 100 ? x.toFixed(2) : x.toFixed(0)),
  x: (x) => (x === undefined ? '' : `${x.toFixed(2)}×`),
  pct: (x) => (x === undefined ? '' : `${Math.round(x * 100)}%`),
  bytes: (x) => {
    if (x === undefined) return 'n/a';
    const a = Math.abs(x);
    if (a >= 1024 * 1024) return `${(x / 1024 / 1024).toFixed(1)} MiB`;
    if (a >= 1024) return `${(x / 1024).toFixed(1)} KiB`;
    return `${Math.round(x)} B`;
  },
};

/** Rows of cells → aligned text; `align` per column: 'l' or 'r'. */
export function table(header, rows, align) {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => String(r[i] ?? '').length)));
  const line = (r) =>
    r
      .map((c, i) => {
        const s = String(c ?? '');
        return (align[i] ?? 'l') === 'r' ? s.padStart(widths[i]) : s.padEnd(widths[i]);
      })
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}
