// History: past batches; one batch with every item and its state, and a rollback button
// behind a confirmation dialog.

import { api } from '../api.js';
import { h, badge, time, kindLabel, kindVerb, matchLabel, pct, providerName, setProviderNames, confirmDialog, toast, section } from '../ui.js';
import { followBatch } from '../progress.js';

const TERMINAL = ['succeeded', 'completed_with_failures', 'cancelled', 'needs_reauth', 'skipped', 'failed'];

function title(b) {
  return `${b.kind === 'rollback' ? 'Undo' : 'Clean-up'} on ${providerName(b.provider)}`;
}

async function list(main) {
  main.append(h('h1', {}, 'History'), h('p', { class: 'lead' }, 'Every clean-up dnp ran, and every undo. Open one to see each item and to undo it.'));
  const tbody = h('tbody');
  const more = h('button', { type: 'button', class: 'btn secondary small', hidden: true }, 'Show older');
  let cursor = null;
  const load = async () => {
    const page = await api(`/enforcement/batches?limit=25${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    for (const b of page.items) {
      tbody.append(h('tr', {},
        h('td', {}, h('a', { href: `/history/${b.id}`, 'data-link': true }, title(b))),
        h('td', {}, time(b.created_at)),
        h('td', {}, badge(b.status)),
        h('td', { class: 'num' }, String(b.counts.confirmed || 0)),
        h('td', { class: 'num' }, String(b.total_actions))));
    }
    return page.items.length;
  };
  more.addEventListener('click', load);
  const n = await load();
  if (!n) {
    main.append(h('p', {}, 'Nothing yet. ', h('a', { href: '/enforce', 'data-link': true }, 'Clean up your libraries'), ' to start.'));
    return;
  }
  main.append(h('div', { class: 'card table-wrap' }, h('table', {},
    h('caption', { class: 'sr-only' }, 'Past clean-ups and undos, newest first'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'What'), h('th', { scope: 'col' }, 'When'), h('th', { scope: 'col' }, 'Status'),
      h('th', { scope: 'col', class: 'num' }, 'Changed'), h('th', { scope: 'col', class: 'num' }, 'Planned'))),
    tbody)), more);
}

function itemsTable(batch) {
  const groups = new Map();
  for (const it of batch.items) {
    if (!groups.has(it.kind)) groups.set(it.kind, []);
    groups.get(it.kind).push(it);
  }
  return [...groups.entries()].map(([kind, items]) => h('details', { class: 'group', open: groups.size === 1 },
    h('summary', {}, h('span', {}, kindLabel(kind)), h('span', { class: 'badge info' }, String(items.length))),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('caption', { class: 'sr-only' }, kindLabel(kind)),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Item'), h('th', { scope: 'col' }, 'Why'),
        h('th', { scope: 'col' }, 'Result'))),
      h('tbody', {}, items.map((it) => h('tr', {},
        h('td', {}, it.label, h('div', { class: 'reason' }, kindVerb(it.kind))),
        h('td', { class: 'reason' }, it.reason && it.reason.artist_name
          ? `${it.reason.artist_name} — ${matchLabel(it.reason.matched)} (${pct(it.reason.confidence)})`
          : '—'),
        h('td', {}, badge(it.state),
          it.failure ? h('div', { class: 'reason' }, it.failure.message || JSON.stringify(it.failure)) : null,
          it.note ? h('div', { class: 'reason' }, it.note) : null))))))));
}

async function detail(main, ctx) {
  const batch = await api(`/enforcement/batches/${ctx.params.id}`);
  main.append(
    h('p', {}, h('a', { href: '/history', 'data-link': true }, '← All history')),
    h('h1', {}, title(batch)),
    h('dl', { class: 'facts card' },
      h('dt', {}, 'Status'), h('dd', {}, badge(batch.status), batch.status_reason ? ` ${batch.status_reason}` : ''),
      h('dt', {}, 'Started'), h('dd', {}, time(batch.started_at || batch.created_at)),
      h('dt', {}, 'Finished'), h('dd', {}, time(batch.finished_at, 'not yet')),
      h('dt', {}, 'Changed'), h('dd', {}, `${batch.counts.confirmed || 0} of ${batch.total_actions}`),
      batch.rollback_of ? [h('dt', {}, 'Undoes'), h('dd', {}, h('a', { href: `/history/${batch.rollback_of}`, 'data-link': true }, 'the original clean-up'))] : null,
      batch.rollbacks.length ? [h('dt', {}, 'Undone by'), h('dd', {}, batch.rollbacks.map((id) => h('a', { href: `/history/${id}`, 'data-link': true }, 'an undo')))] : null));

  const live = h('div', {});
  main.append(live);
  if (!TERMINAL.includes(batch.status)) {
    const f = followBatch(batch, { onDone: () => ctx.navigate(`/history/${batch.id}`, { replace: true }) });
    ctx.cleanup = f.close;
    live.append(f.element);
  }

  const canUndo = batch.kind === 'enforcement' && TERMINAL.includes(batch.status) && (batch.counts.confirmed || 0) > 0 && !batch.rollbacks.length;
  if (canUndo) {
    const undo = h('button', { type: 'button', class: 'btn danger' }, 'Undo this clean-up');
    undo.addEventListener('click', async () => {
      const n = batch.counts.confirmed || 0;
      const ok = await confirmDialog({
        title: 'Undo this clean-up?',
        body: `dnp puts back the ${n} item${n === 1 ? '' : 's'} it removed from ${providerName(batch.provider)}: songs are liked again, albums saved, artists followed and playlist entries put back where they were.`,
        confirm: 'Undo', danger: true,
      });
      if (!ok) return;
      undo.disabled = true;
      try {
        const r = await api(`/enforcement/batches/${batch.id}/rollback`, { method: 'POST', body: {} });
        const f = followBatch(r.batch, {
          label: `Putting back ${r.planned} item${r.planned === 1 ? '' : 's'} on ${providerName(batch.provider)}`,
          onDone: (s) => toast(`Undo finished: ${s.counts.confirmed || 0} item${(s.counts.confirmed || 0) === 1 ? '' : 's'} put back.`),
        });
        ctx.cleanup = f.close;
        live.replaceChildren(f.element);
        undo.remove();
      } catch (err) {
        toast(err.message, 'bad');
        undo.disabled = false;
      }
    });
    main.append(h('div', { class: 'actions' }, undo));
  }
  main.append(section('Items', batch.items.length ? itemsTable(batch) : h('p', {}, 'No items.')));
  return title(batch);
}

export async function render(main, ctx) {
  const connections = await api('/connections');
  setProviderNames(connections.available);
  if (ctx.params.id) return detail(main, ctx);
  await list(main);
  return 'History';
}
