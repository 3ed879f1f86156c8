// The Do-Not-Play list: search artists across the connected services (candidates with a
// confidence), add, remove, import and export.

import { api } from '../api.js';
import { h, toast, pct, time, providerName, section, busy } from '../ui.js';

/** Candidates grouped by name: one group is one artist across services. */
function groupCandidates(candidates) {
  const groups = new Map();
  for (const c of candidates) {
    const key = c.name.normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();
    if (!groups.has(key)) groups.set(key, { name: c.name, items: [] });
    const g = groups.get(key);
    // One candidate per provider in a group: the most confident.
    const same = g.items.find((x) => x.provider === c.provider);
    if (!same) g.items.push(c);
  }
  const list = [...groups.values()];
  for (const g of list) g.best = Math.max(...g.items.map((c) => c.confidence));
  list.sort((a, b) => b.best - a.best);
  return list;
}

function entryLine(entry, onRemove) {
  const services = Object.keys(entry.artist.provider_ids || {}).map(providerName);
  return h('li', {},
    h('div', {},
      h('div', { class: 'who' }, entry.artist.name),
      h('div', { class: 'meta' },
        services.length ? `On ${services.join(', ')}` : 'Matched by name',
        entry.note ? ` · ${entry.note}` : '',
        ' · added ', time(entry.added_at))),
    h('button', {
      type: 'button', class: 'btn secondary small', 'aria-label': `Remove ${entry.artist.name}`,
      onclick: (e) => onRemove(entry, e.currentTarget),
    }, 'Remove'));
}

export async function render(main) {
  main.append(h('h1', {}, 'My Do-Not-Play list'),
    h('p', { class: 'lead' }, 'Artists on this list are removed from your libraries when you clean up. Nothing changes until you confirm a preview.'));

  // --- Search and add
  const results = h('div', { 'aria-live': 'polite' });
  const searchForm = h('form', { role: 'search', class: 'row', 'aria-label': 'Find an artist' },
    h('div', { class: 'field' },
      h('label', { for: 'artist-q' }, 'Artist name'),
      h('input', { id: 'artist-q', type: 'search', name: 'q', required: true, autocomplete: 'off', maxlength: '200' })),
    h('button', { type: 'submit', class: 'btn' }, 'Search'));

  const list = h('ul', { class: 'entries' });
  const countLine = h('p', { class: 'muted' });
  let entries = [];
  let next = null;
  const more = h('button', { type: 'button', class: 'btn secondary small', hidden: true }, 'Show more');

  const drawList = () => {
    list.replaceChildren(...entries.map((e) => entryLine(e, remove)));
    countLine.textContent = entries.length
      ? `${entries.length}${next ? '+' : ''} artist${entries.length === 1 ? '' : 's'} on your list.`
      : 'Your list is empty. Search for an artist above to add one.';
    more.hidden = !next;
  };
  const load = async (cursor) => {
    const page = await api(`/dnp?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    entries = cursor ? entries.concat(page.items) : page.items;
    next = page.next_cursor;
    drawList();
  };
  more.addEventListener('click', () => busy(more, () => load(next)));

  async function remove(entry, button) {
    try {
      await busy(button, () => api(`/dnp/${encodeURIComponent(entry.id)}`, { method: 'DELETE' }));
      entries = entries.filter((e) => e.id !== entry.id);
      drawList();
      toast(`${entry.artist.name} is no longer on your list.`);
      searchForm.q.focus();
    } catch (err) {
      toast(err.message, 'bad');
    }
  }

  async function add(group, button) {
    const provider_ids = {};
    for (const c of group.items) provider_ids[c.provider] = [c.id];
    try {
      await busy(button, () => api('/dnp', { method: 'POST', body: { artist: { name: group.name, provider_ids } } }), 'Adding…');
      toast(`${group.name} is on your list.`);
      button.textContent = 'Added';
      button.disabled = true;
      await load();
    } catch (err) {
      toast(err.code === 'duplicate_entry' ? `${group.name} is already on your list.` : err.message, err.code === 'duplicate_entry' ? 'warn' : 'bad');
    }
  }

  searchForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const q = searchForm.q.value.trim();
    if (!q) { searchForm.q.focus(); return; }
    const button = searchForm.querySelector('button');
    results.replaceChildren(h('p', { class: 'muted' }, 'Searching…'));
    try {
      const res = await busy(button, () => api(`/artists/search?q=${encodeURIComponent(q)}`));
      const groups = groupCandidates(res.candidates);
      const out = [];
      for (const f of res.errors) {
        out.push(h('p', { class: 'banner warn' }, `${providerName(f.provider)} could not be searched: ${f.message}`));
      }
      if (!groups.length) {
        out.push(h('p', {}, `No artist called “${q}” was found on your connected services.`));
      }
      out.push(h('ul', { class: 'candidates', 'aria-label': `Artists matching ${q}` }, groups.map((g) => {
        const b = h('button', { type: 'button', class: 'btn small', 'aria-label': `Add ${g.name} to my list` }, 'Add to list');
        b.addEventListener('click', () => add(g, b));
        return h('li', {},
          h('div', {},
            h('div', { class: 'who' }, g.name),
            h('ul', {}, g.items.map((c) => h('li', {},
              c.url ? h('a', { href: c.url, target: '_blank', rel: 'noopener noreferrer' }, providerName(c.provider)) : providerName(c.provider),
              ': ', h('span', { class: 'conf' }, `${pct(c.confidence)} match`),
              c.detail ? h('span', { class: 'muted' }, ` · ${c.detail}`) : null)))),
          b);
      })));
      if (groups.length) out.unshift(h('p', { class: 'muted' }, `${groups.length} artist${groups.length === 1 ? '' : 's'} found. The match shows how sure dnp is that the name is the one you typed.`));
      results.replaceChildren(...out);
    } catch (err) {
      results.replaceChildren(h('p', { class: 'banner error', role: 'alert' }, err.message));
    }
  });

  // --- Import and export
  const file = h('input', { id: 'import-file', type: 'file', accept: '.json,.csv,application/json,text/csv' });
  const importForm = h('form', { class: 'row' },
    h('div', { class: 'field' }, h('label', { for: 'import-file' }, 'Import a list (JSON or CSV)'), file),
    h('button', { type: 'submit', class: 'btn secondary' }, 'Import'));
  importForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = file.files[0];
    if (!f) { toast('Choose a file to import first.', 'warn'); file.focus(); return; }
    const csv = /\.csv$/i.test(f.name) || f.type === 'text/csv';
    try {
      const text = await f.text();
      const r = await busy(importForm.querySelector('button'), () => api('/dnp/import', {
        method: 'POST', body: text, contentType: csv ? 'text/csv' : 'application/json',
      }));
      toast(`Imported ${r.imported} of ${r.total} artists${r.skipped_duplicates ? ` (${r.skipped_duplicates} were already on your list)` : ''}.`);
      importForm.reset();
      await load();
    } catch (err) {
      toast(err.message, 'bad');
    }
  });

  main.append(
    section('Add an artist', searchForm, results),
    section('On your list', countLine, list, more),
    section('Import and export', importForm,
      h('p', { class: 'actions' },
        h('a', { class: 'btn secondary small', href: '/api/v1/dnp/export?format=json', download: 'dnp-list.json' }, 'Export as JSON'),
        h('a', { class: 'btn secondary small', href: '/api/v1/dnp/export?format=csv', download: 'dnp-list.csv' }, 'Export as CSV'))));
  await load();
  return 'My list';
}
