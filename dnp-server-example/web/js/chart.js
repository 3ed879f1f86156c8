// A stacked bar chart drawn as SVG (no chart library): one bar per day, one colour per
// series, with axes, a legend and a text alternative.

import { h, s } from './ui.js';

const PALETTE = ['#5b21b6', '#1d4ed8', '#a16207', '#0f766e', '#9d174d'];
const COLORS = { spotify: '#15803d', youtube_music: '#b91c1c', tidal: '#1f2937', apple_music: '#be185d' };

export function colorOf(key, i) {
  return COLORS[key] || PALETTE[i % PALETTE.length];
}

function niceMax(v) {
  if (v <= 5) return 5;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * days: ['2026-11-01', …]; series: [{ key, label, values: [n per day] }].
 * Returns a <figure> with the SVG, a legend and the numbers as a table.
 */
export function stackedBars({ id, title, days, series }) {
  const W = 720;
  const H = 260;
  const left = 40;
  const right = 8;
  const top = 12;
  const bottom = 34;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const totals = days.map((_, i) => series.reduce((n, se) => n + (se.values[i] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const step = plotW / Math.max(days.length, 1);
  const barW = Math.max(2, step * 0.7);
  const y = (v) => top + plotH - (v / max) * plotH;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${id}-title ${id}-desc`, 'data-max': max });
  const sum = totals.reduce((a, b) => a + b, 0);
  svg.append(s('title', { id: `${id}-title` }, title));
  svg.append(s('desc', { id: `${id}-desc` },
    `${sum} actions from ${days[0]} to ${days[days.length - 1]}. ` +
    series.map((se) => `${se.label}: ${se.values.reduce((a, b) => a + b, 0)}`).join('; ') + '.'));
  // Grid and y axis.
  const ticks = [4, 5, 2].find((n) => Number.isInteger(max / n)) || 4;
  for (let k = 0; k <= ticks; k++) {
    const v = (max / ticks) * k;
    const yy = y(v);
    svg.append(s('line', { x1: left, x2: W - right, y1: yy, y2: yy, stroke: k === 0 ? '#4a5160' : '#d5d3df', 'stroke-width': 1 }));
    svg.append(s('text', { x: left - 6, y: yy + 4, 'text-anchor': 'end' }, Number.isInteger(v) ? v : v.toFixed(1)));
  }
  // Bars.
  days.forEach((day, i) => {
    let base = 0;
    const x = left + i * step + (step - barW) / 2;
    series.forEach((se, j) => {
      const v = se.values[i] || 0;
      if (!v) return;
      const y0 = y(base);
      const y1 = y(base + v);
      base += v;
      svg.append(s('rect', { x: x.toFixed(1), y: y1.toFixed(1), width: barW.toFixed(1), height: Math.max(1, y0 - y1).toFixed(1), fill: colorOf(se.key, j), 'data-series': se.key, 'data-day': day },
        s('title', {}, `${day} · ${se.label}: ${v}`)));
    });
    if (i % 5 === 0 || i === days.length - 1) {
      svg.append(s('text', { x: (left + i * step + step / 2).toFixed(1), y: H - bottom + 16, 'text-anchor': 'middle' }, day.slice(5)));
    }
  });
  const legend = h('ul', { class: 'legend' }, series.map((se, j) => {
    const sw = h('span', { class: 'swatch' });
    sw.style.background = colorOf(se.key, j);
    return h('li', {}, sw, `${se.label} (${se.values.reduce((a, b) => a + b, 0)})`);
  }));
  const table = h('details', {},
    h('summary', {}, 'Show the numbers'),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('caption', { class: 'sr-only' }, title),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Day'), series.map((se) => h('th', { scope: 'col', class: 'num' }, se.label)), h('th', { scope: 'col', class: 'num' }, 'Total'))),
      h('tbody', {}, days.map((d, i) => totals[i] ? h('tr', {},
        h('th', { scope: 'row' }, d), series.map((se) => h('td', { class: 'num' }, String(se.values[i] || 0))), h('td', { class: 'num' }, String(totals[i]))) : null)))));
  return h('figure', { class: 'figure-chart', id }, svg, legend, table);
}

/** Horizontal bars: rows [{ label, value }]. */
export function barList(rows, label) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  return h('ul', { class: 'bars', 'aria-label': label }, rows.map((r) => {
    const bar = h('div', { class: 'bar' });
    bar.style.width = `${(r.value / max) * 100}%`;
    if (r.color) bar.style.background = r.color;
    return h('li', {}, h('span', {}, r.label), h('div', { class: 'track', 'aria-hidden': 'true' }, bar), h('span', { class: 'num conf' }, String(r.value)));
  }));
}
