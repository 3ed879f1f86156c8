// Live progress of enforcement and rollback batches, fed by the server-sent events of
// GET /enforcement/batches/{id}/events (with a fallback to polling).

import { api, refreshSession } from './api.js';
import { h, badge, providerName } from './ui.js';

const FINISHED = ['confirmed', 'failed', 'indeterminate', 'cancelled'];
const TERMINAL = ['succeeded', 'completed_with_failures', 'cancelled', 'needs_reauth', 'skipped', 'failed'];

export function doneCount(summary) {
  return FINISHED.reduce((n, k) => n + (summary.counts[k] || 0), 0);
}

/**
 * A progress block for `batch` that follows it live. Calls `onDone(summary)` once when it
 * ends. Returns { element, close }.
 */
export function followBatch(batch, { onDone, label } = {}) {
  const total = Math.max(batch.total_actions, 0);
  const id = `p-${batch.id}`;
  const bar = h('progress', { id, max: String(total || 1), value: '0' });
  const text = h('span', { class: 'progress-text' });
  const status = h('span', {});
  const result = h('div', {});
  const element = h('div', { class: 'progress card', 'data-batch': batch.id },
    h('div', { class: 'card-head' },
      h('label', { for: id }, label || `${batch.kind === 'rollback' ? 'Undoing on' : 'Cleaning'} ${providerName(batch.provider)}`),
      status),
    bar, h('div', { 'aria-live': 'polite' }, text), result);
  let source = null;
  let poll = null;
  let closed = false;
  let finished = false;
  let attempts = 0;

  const update = (s) => {
    const done = Math.min(doneCount(s), total);
    const percent = total ? Math.round((done / total) * 100) : 100;
    bar.value = total ? done : 1;
    bar.max = total || 1;
    bar.setAttribute('aria-valuetext', `${percent} %`);
    text.textContent = `${percent} % · ${done} of ${total} done`;
    status.replaceChildren(badge(s.status));
    if (TERMINAL.includes(s.status) && !finished) {
      finished = true;
      close();
      const confirmed = s.counts.confirmed || 0;
      const failed = (s.counts.failed || 0) + (s.counts.indeterminate || 0);
      result.replaceChildren(h('p', {},
        `${confirmed} changed`, failed ? `, ${failed} could not be changed` : '', '. ',
        s.status_reason ? h('span', { class: 'muted' }, `${s.status_reason} `) : null,
        h('a', { href: `/history/${s.id}`, 'data-link': true }, 'See every item')));
      if (onDone) onDone(s);
    }
  };

  const startPolling = () => {
    if (poll || closed) return;
    poll = setInterval(async () => {
      try {
        update(await api(`/enforcement/batches/${batch.id}`));
      } catch {
        /* keep trying until the page is left */
      }
    }, 1000);
  };

  const open = () => {
    if (closed) return;
    source = new EventSource(`/api/v1/enforcement/batches/${batch.id}/events`);
    const handle = (e) => {
      try {
        update(JSON.parse(e.data));
      } catch {
        /* ignore a malformed event */
      }
    };
    source.addEventListener('progress', handle);
    source.addEventListener('done', handle);
    source.addEventListener('error', async () => {
      if (finished || closed) return;
      if (source.readyState === EventSource.CLOSED) {
        source = null;
        attempts += 1;
        if (attempts <= 2 && (await refreshSession())) open();
        else startPolling();
      }
    });
  };

  function close() {
    closed = true;
    if (source) source.close();
    if (poll) clearInterval(poll);
  }

  update(batch);
  if (!finished) open();
  return { element, close };
}
