// Analytics: actions of the last 30 days per day and service, and per day and kind.

import { api } from '../api.js';
import { h, pct, kindLabel, providerName, setProviderNames, section } from '../ui.js';
import { stackedBars, barList, colorOf } from '../chart.js';

export async function render(main) {
  const days = 30;
  const connections = await api('/connections');
  setProviderNames(connections.available);
  const providers = connections.available.map((p) => p.id);
  const [all, ...per] = await Promise.all([
    api(`/analytics/enforcement?days=${days}`),
    ...providers.map((p) => api(`/analytics/enforcement?days=${days}&provider=${encodeURIComponent(p)}`)),
  ]);
  main.append(h('h1', {}, 'Analytics'));
  main.append(h('ul', { class: 'stats', 'aria-label': `Last ${days} days` },
    h('li', {}, h('span', { class: 'figure' }, String(all.total_batches)), h('span', { class: 'label' }, 'clean-ups')),
    h('li', {}, h('span', { class: 'figure' }, String(all.total_actions)), h('span', { class: 'label' }, 'planned changes')),
    h('li', {}, h('span', { class: 'figure' }, all.success_rate === null ? '—' : pct(all.success_rate)), h('span', { class: 'label' }, 'succeeded')),
    h('li', {}, h('span', { class: 'figure' }, String(all.rollbacks)), h('span', { class: 'label' }, 'undone'))));

  const dayList = all.daily.map((d) => d.date);
  const series = per.map((a, i) => ({
    key: providers[i],
    label: providerName(providers[i]),
    values: dayList.map((d) => (a.daily.find((x) => x.date === d) || { confirmed: 0 }).confirmed),
  })).filter((se) => se.values.some(Boolean) || connections.items.some((c) => c.provider === se.key));

  main.append(section(`Changes per day, last ${days} days`,
    h('p', { class: 'muted' }, 'Items dnp removed each day, by service (undos not counted).'),
    stackedBars({ id: 'daily-chart', title: `Changes per day by service, ${dayList[0]} to ${dayList[dayList.length - 1]}`, days: dayList, series })));

  const kinds = Object.entries(all.actions_by_kind).sort((a, b) => b[1] - a[1]);
  const kindSeries = kinds.map(([k]) => ({
    key: k,
    label: kindLabel(k),
    values: all.daily.map((d) => (d.actions_by_kind || {})[k] || 0),
  }));
  main.append(section('By kind',
    kinds.length
      ? barList(kinds.map(([k, v]) => ({ label: kindLabel(k), value: v })), 'Changes by kind')
      : h('p', {}, 'No changes in this period yet.'),
    kinds.length
      ? stackedBars({ id: 'daily-kind-chart', title: `Changes per day by kind, ${dayList[0]} to ${dayList[dayList.length - 1]}`, days: dayList, series: kindSeries })
      : null,
    kinds.length ? h('div', { class: 'table-wrap' }, h('table', {},
      h('caption', {}, 'By service and kind'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Kind'), providers.map((p) => h('th', { scope: 'col', class: 'num' }, providerName(p))))),
      h('tbody', {}, kinds.map(([k]) => h('tr', {},
        h('th', { scope: 'row' }, kindLabel(k)),
        per.map((a) => h('td', { class: 'num' }, String(a.actions_by_kind[k] || 0)))))))) : null));

  main.append(section('By service',
    barList(per.map((a, i) => ({ label: providerName(providers[i]), value: Object.values(a.actions_by_kind).reduce((x, y) => x + y, 0), color: colorOf(providers[i], i) })), 'Changes by service')));
  return 'Analytics';
}
