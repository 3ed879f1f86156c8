// Clean up: choose services and policy, scan, see the preview grouped by service and
// kind with reasons and confidence, run it with live progress, see the results. Items a
// service's API cannot remove come as a checklist to do by hand, with links.

import { api } from '../api.js';
import { h, toast, pct, kindLabel, matchLabel, providerName, setProviderNames, section, badge, sleep, time } from '../ui.js';
import { followBatch } from '../progress.js';

const STRICTNESS = [
  ['conservative', 'Only their own songs', 'Songs where the artist is a main credit.'],
  ['moderate', 'Their songs and features (recommended)', 'Also songs they are featured on, their albums, and “feat.” in titles.'],
  ['aggressive', 'Everything linked to them', 'Also collaborations and artists with the same name.'],
];
const TARGETS = [
  ['liked_tracks', 'Liked songs'],
  ['saved_albums', 'Saved albums'],
  ['followed_artists', 'Followed artists'],
  ['playlist_items', 'Songs in my playlists'],
];
const SKIP_REASONS = {
  playlist_not_editable: 'In playlists you cannot edit',
  own_playlist_excluded: 'In your own playlists (left alone by your settings)',
  collaborative_playlist_excluded: 'In collaborative playlists (left alone by your settings)',
  allow_listed: 'On your allow list',
  low_confidence: 'Uncertain matches (below your minimum confidence)',
  already_disliked: 'Already rated “dislike”',
  unsupported: 'The service cannot do this through its API',
};
const ROWS_SHOWN = 100;

function actionsOf(plan) {
  return plan.batches.flatMap((b) => b.actions);
}

function itemTable(caption, rows, withLink) {
  const body = h('tbody');
  const draw = (n) => body.replaceChildren(...rows.slice(0, n).map((a) => h('tr', {},
    h('td', {}, withLink && a.url ? h('a', { href: a.url, target: '_blank', rel: 'noopener noreferrer' }, a.label) : a.label),
    h('td', { class: 'reason' }, `${a.reason.artist_name} — ${matchLabel(a.reason.matched)}`),
    h('td', { class: 'num' }, pct(a.reason.confidence)))));
  draw(ROWS_SHOWN);
  const more = rows.length > ROWS_SHOWN
    ? h('button', { type: 'button', class: 'btn secondary small', onclick: (e) => { draw(rows.length); e.currentTarget.remove(); } }, `Show all ${rows.length}`)
    : null;
  return [h('div', { class: 'table-wrap' }, h('table', {},
    h('caption', { class: 'sr-only' }, caption),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Item'), h('th', { scope: 'col' }, 'Why'), h('th', { scope: 'col', class: 'num' }, 'Confidence'))),
    body)), more];
}

function checklist(provider, items) {
  return h('div', { class: 'banner info checklist-box' },
    h('div', {},
      h('h3', {}, `Remove these by hand in ${providerName(provider)}`),
      h('p', {}, `${providerName(provider)}’s API cannot remove these items, so dnp cannot do it for you. Open each link, remove the item, and tick it off here.`),
      h('ul', { class: 'checklist' }, items.map((s, i) => {
        const id = `chk-${provider}-${i}`;
        return h('li', {},
          h('input', { type: 'checkbox', id }),
          h('label', { for: id }, s.action.label, ' ',
            h('span', { class: 'reason' }, `(${s.action.reason.artist_name})`)),
          s.url ? h('a', { href: s.url, target: '_blank', rel: 'noopener noreferrer', 'aria-label': `Open ${s.action.label} in ${providerName(provider)}` }, 'Open') : null);
      }))));
}

/** The preview of one provider's plan. */
function providerPreview(pp) {
  const plan = pp.plan;
  const actions = actionsOf(plan);
  const byKind = new Map();
  for (const a of actions) {
    if (!byKind.has(a.kind)) byKind.set(a.kind, []);
    byKind.get(a.kind).push(a);
  }
  const manual = plan.skipped.filter((s) => s.reason.code === 'unsupported' && s.reason.alternative === 'manual_checklist');
  const otherSkipped = plan.skipped.filter((s) => !manual.includes(s));
  const skippedByReason = new Map();
  for (const s of otherSkipped) {
    const key = s.reason.code;
    if (!skippedByReason.has(key)) skippedByReason.set(key, []);
    skippedByReason.get(key).push(s);
  }
  const name = providerName(pp.provider);
  return section(name,
    h('p', {}, actions.length
      ? `${actions.length} change${actions.length === 1 ? '' : 's'} in ${plan.summary.api_calls} request${plan.summary.api_calls === 1 ? '' : 's'}.`
      : 'Nothing to change here.',
    plan.summary.days > 1 ? ` ${name}’s daily limit spreads this over ${plan.summary.days} days.` : '',
    pp.snapshot_taken_at ? h('span', { class: 'muted' }, ' Library checked ', time(pp.snapshot_taken_at), '.') : ''),
    [...byKind.entries()].map(([kind, rows]) => h('details', { class: 'group', 'data-kind': kind },
      h('summary', {}, h('span', {}, kindLabel(kind)), h('span', { class: 'badge info' }, String(rows.length))),
      h('div', {}, itemTable(`${kindLabel(kind)} on ${name}`, rows)))),
    manual.length ? checklist(pp.provider, manual) : null,
    [...skippedByReason.entries()].map(([code, rows]) => h('details', { class: 'group skipped' },
      h('summary', {}, h('span', {}, `Left alone: ${SKIP_REASONS[code] || code}`), h('span', { class: 'badge muted' }, String(rows.length))),
      h('div', {},
        code === 'unsupported' && rows[0].reason.reason ? h('p', { class: 'reason' }, rows[0].reason.reason) : null,
        itemTable(`Left alone on ${name}`, rows.map((s) => ({ ...s.action, url: s.url })), true)))));
}

export async function render(main, ctx) {
  const [connections, settings, library] = await Promise.all([api('/connections'), api('/settings'), api('/library')]);
  setProviderNames(connections.available);
  main.append(h('h1', {}, 'Clean up my libraries'));
  const usable = connections.items.filter((c) => c.status !== 'needs_reauth');
  const broken = connections.items.filter((c) => c.status === 'needs_reauth');
  for (const c of broken) {
    main.append(h('div', { class: 'banner warn', role: 'alert' },
      h('p', {}, `${c.display_name} needs you to sign in again before it can be cleaned.`),
      h('a', { class: 'btn small', href: `/api/v1/connections/${c.provider}/authorize?redirect=true` }, `Reconnect ${c.display_name}`)));
  }
  if (!usable.length) {
    main.append(h('p', {}, 'Connect a music service first. ', h('a', { href: '/dashboard', 'data-link': true }, 'Go to the dashboard')));
    return 'Clean up';
  }
  const scannedAt = Object.fromEntries(library.map((s) => [s.provider, s.taken_at]));
  const policy = settings.policy;

  const form = h('form', { class: 'card' },
    h('fieldset', {},
      h('legend', {}, 'Services'),
      usable.map((c) => h('label', { class: 'choice' },
        h('input', { type: 'checkbox', name: 'provider', value: c.provider, checked: true }),
        h('span', {}, c.display_name, h('small', {}, scannedAt[c.provider] ? ['Last checked ', time(scannedAt[c.provider])] : 'Not checked yet'))))),
    h('fieldset', {},
      h('legend', {}, 'How strict'),
      STRICTNESS.map(([value, label, hint]) => h('label', { class: 'choice' },
        h('input', { type: 'radio', name: 'strictness', value, checked: policy.strictness === value }),
        h('span', {}, label, h('small', {}, hint))))),
    h('fieldset', {},
      h('legend', {}, 'What to clean'),
      TARGETS.map(([key, label]) => h('label', { class: 'choice' },
        h('input', { type: 'checkbox', name: 'target', value: key, checked: policy.targets[key] }),
        h('span', {}, label)))),
    h('label', { class: 'choice' },
      h('input', { type: 'checkbox', name: 'rescan', checked: true }),
      h('span', {}, 'Check my libraries for changes first', h('small', {}, 'Recommended: the preview is only as fresh as the last check.'))),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn' }, 'Preview changes')));

  const out = h('div', {});
  const followers = [];
  ctx.cleanup = () => followers.forEach((f) => f.close());
  main.append(h('p', { class: 'lead' }, 'First you see exactly what would change. Nothing is removed until you press the button under the preview, and you can undo it afterwards.'), form, out);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const providers = [...form.querySelectorAll('input[name=provider]:checked')].map((i) => i.value);
    if (!providers.length) { toast('Choose at least one service.', 'warn'); return; }
    const chosen = {
      ...policy,
      strictness: form.querySelector('input[name=strictness]:checked')?.value || policy.strictness,
      targets: Object.fromEntries(TARGETS.map(([k]) => [k, form.querySelector(`input[name=target][value=${k}]`).checked])),
    };
    if (!Object.values(chosen.targets).some(Boolean)) { toast('Choose at least one thing to clean.', 'warn'); return; }
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    followers.forEach((f) => f.close());
    followers.length = 0;
    try {
      if (form.rescan.checked) await scan(providers, out);
      out.replaceChildren(h('p', { class: 'muted', role: 'status' }, 'Preparing the preview…'));
      const plan = await api('/enforcement/plans', { method: 'POST', body: { providers, policy: chosen } });
      showPlan(plan, out, followers);
    } catch (err) {
      out.replaceChildren(h('div', { class: 'banner error', role: 'alert' }, h('p', {}, err.message)));
    } finally {
      button.disabled = false;
    }
  });
  return 'Clean up';
}

/** Scans `providers` and waits for the jobs, showing their progress. */
async function scan(providers, out) {
  const bar = h('progress', { id: 'scan-progress', max: '1', value: '0' });
  const text = h('p', { class: 'muted' }, 'Starting…');
  out.replaceChildren(h('div', { class: 'progress card', role: 'status' }, h('label', { for: 'scan-progress' }, 'Checking your libraries'), bar, text));
  const jobs = [];
  for (const provider of providers) {
    const r = await api('/library/scans', { method: 'POST', body: { provider } });
    jobs.push(...r.jobs);
    for (const s of r.skipped) toast(s.message, 'warn');
  }
  const deadline = Date.now() + 10 * 60 * 1000;
  for (;;) {
    const states = await Promise.all(jobs.map((j) => api(`/jobs/${j.id}`)));
    const done = states.reduce((n, j) => n + (j.progress ? j.progress.done : 0), 0);
    const total = states.reduce((n, j) => n + (j.progress ? j.progress.total : 0), 0);
    bar.max = Math.max(total, 1);
    bar.value = done;
    text.textContent = states.map((j) => (j.progress && j.progress.message) || `${providerName(j.payload.provider)}: ${j.status}`).join(' · ');
    const failed = states.filter((j) => j.status === 'dead' || j.status === 'cancelled');
    if (failed.length) {
      throw new Error(`Checking ${failed.map((j) => providerName(j.payload.provider)).join(', ')} failed: ${failed[0].last_error || failed[0].status}`);
    }
    if (states.every((j) => j.status === 'succeeded')) return;
    if (Date.now() > deadline) throw new Error('Checking your libraries is taking long; it continues in the background. Try the preview again later.');
    await sleep(500);
  }
}

function showPlan(plan, out, followers) {
  const parts = [h('h2', { id: 'preview', tabindex: '-1' }, 'Preview')];
  for (const s of plan.skipped_providers) {
    parts.push(h('div', { class: 'banner warn' }, h('p', {}, s.message)));
  }
  const total = plan.summary.total_actions;
  const manual = plan.providers.reduce((n, p) => n + p.plan.skipped.filter((s) => s.reason.code === 'unsupported' && s.reason.alternative === 'manual_checklist').length, 0);
  const kinds = Object.entries(plan.summary.actions_by_kind).map(([k, n]) => `${kindLabel(k).toLowerCase()}: ${n}`).join('; ');
  const byHand = manual ? `${manual} item${manual === 1 ? '' : 's'} must be removed by hand (see the checklist).` : '';
  let lead;
  if (total) lead = `dnp will make ${total} change${total === 1 ? '' : 's'}: ${kinds}. ${byHand}`;
  else if (manual) lead = `dnp cannot change these items through the services’ APIs: ${byHand}`;
  else lead = 'Nothing on your libraries matches your list. All clean!';
  parts.push(h('p', { class: 'lead' }, lead.trim()));
  for (const pp of plan.providers) parts.push(providerPreview(pp));
  const results = h('div', { id: 'results' });
  if (total) {
    const run = h('button', { type: 'button', class: 'btn' }, `Remove ${total} item${total === 1 ? '' : 's'} now`);
    run.addEventListener('click', async () => {
      run.disabled = true;
      try {
        const started = await api('/enforcement/batches', { method: 'POST', body: { plan_id: plan.id } });
        const blocks = [h('h2', { tabindex: '-1', id: 'results-title' }, 'Progress')];
        for (const s of started.skipped) {
          if (s.reason !== 'nothing_to_do') blocks.push(h('div', { class: 'banner warn' }, h('p', {}, `${providerName(s.provider)}: ${s.message}`)));
        }
        let left = started.batches.length;
        const summary = h('div', { 'aria-live': 'polite' });
        for (const b of started.batches) {
          const f = followBatch(b, {
            onDone: () => {
              left -= 1;
              if (left === 0) {
                summary.replaceChildren(h('div', { class: 'banner ok' },
                  h('p', {}, 'All done. Changed your mind? You can undo any clean-up from the '),
                  h('a', { class: 'btn small', href: '/history', 'data-link': true }, 'History')));
                toast('Clean-up finished.');
              }
            },
          });
          followers.push(f);
          blocks.push(f.element);
        }
        blocks.push(summary);
        results.replaceChildren(...blocks);
        results.querySelector('h2').focus();
      } catch (err) {
        results.replaceChildren(h('div', { class: 'banner error', role: 'alert' }, h('p', {}, err.message)));
        run.disabled = false;
      }
    });
    parts.push(h('div', { class: 'actions' }, run,
      h('span', { class: 'muted' }, `This preview can be used until ${new Date(plan.expires_at).toLocaleString()}.`)));
  }
  parts.push(results);
  out.replaceChildren(...parts);
  out.querySelector('#preview').focus();
}


