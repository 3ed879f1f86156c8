// Small DOM helpers shared by the pages: an element builder, formatting, messages.

/**
 * Builds an element: h('a', { href: '/x', class: 'btn' }, 'text', child…).
 * Attributes starting with "on" are event listeners; `false`/null attributes are left out.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** An SVG element (namespaced). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

let names = {};
/** Remembers the display names of providers. */
export function setProviderNames(list) {
  for (const p of list) names[p.id || p.provider] = p.display_name;
}
export function providerName(id) {
  return names[id] || { spotify: 'Spotify', apple_music: 'Apple Music', youtube_music: 'YouTube Music', tidal: 'TIDAL' }[id] || id;
}

const KINDS = {
  unlike_track: ['Liked songs removed', 'Remove from liked songs'],
  like_track: ['Liked songs restored', 'Like again'],
  remove_album: ['Saved albums removed', 'Remove saved album'],
  save_album: ['Albums saved again', 'Save album again'],
  unfollow_artist: ['Artists unfollowed', 'Unfollow artist'],
  follow_artist: ['Artists followed again', 'Follow again'],
  remove_playlist_item: ['Playlist entries removed', 'Remove from playlist'],
  insert_playlist_item: ['Playlist entries put back', 'Put back in playlist'],
  dislike_track: ['Songs rated “dislike”', 'Rate “dislike”'],
  clear_track_rating: ['Ratings cleared', 'Clear rating'],
};
/** A heading for a group of actions of `kind`. */
export function kindLabel(kind) {
  return (KINDS[kind] || [kind.replaceAll('_', ' ')])[0];
}
/** A verb for one action of `kind`. */
export function kindVerb(kind) {
  return (KINDS[kind] || [null, kind.replaceAll('_', ' ')])[1];
}

const MATCHES = {
  primary_credit: 'by the artist',
  featured_credit: 'the artist is featured',
  album_artist: 'on the artist’s album',
  credit_name: 'credited by name',
  title_feature: 'the title names the artist',
  name_only: 'same name, other id',
  followed_artist: 'you follow the artist',
};
export function matchLabel(m) {
  return MATCHES[m] || String(m || '').replaceAll('_', ' ');
}

export function pct(x) {
  return `${Math.round((Number(x) || 0) * 100)} %`;
}

const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
export function fmtDate(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '—' : dateFmt.format(d);
}
/** A <time> element with a readable date. */
export function time(iso, fallback = 'never') {
  if (!iso) return fallback;
  return h('time', { datetime: iso }, fmtDate(iso));
}

const STATUS = {
  active: ['Healthy', 'ok'],
  expiring_soon: ['Renewing soon', 'warn'],
  needs_reauth: ['Needs reconnecting', 'bad'],
  error: ['Error', 'bad'],
  queued: ['Queued', 'info'],
  running: ['Running', 'info'],
  waiting_retry: ['Waiting to retry', 'warn'],
  succeeded: ['Done', 'ok'],
  completed_with_failures: ['Done, some failed', 'warn'],
  cancelled: ['Cancelled', 'muted'],
  skipped: ['Skipped', 'muted'],
  failed: ['Failed', 'bad'],
  confirmed: ['Done', 'ok'],
  planned: ['Planned', 'muted'],
  sent: ['Sent', 'info'],
  indeterminate: ['Unknown', 'warn'],
  not_connected: ['Not connected', 'muted'],
};
/** A coloured badge with a word (never colour alone). */
export function badge(status) {
  const [label, tone] = STATUS[status] || [String(status).replaceAll('_', ' '), 'muted'];
  return h('span', { class: `badge ${tone}` }, label);
}

let toastTimer;
/** Says something in the polite live region. */
export function toast(message, tone = 'ok') {
  const el = document.getElementById('toast');
  el.className = `toast show ${tone}`;
  el.textContent = message;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.className = 'toast'; el.textContent = ''; }, 6000);
}

/** An error message block for a failed call. */
export function errorBox(err, retry) {
  return h('div', { class: 'banner error', role: 'alert' },
    h('p', {}, err && err.message ? err.message : String(err)),
    retry ? h('button', { type: 'button', class: 'btn small', onclick: retry }, 'Try again') : null);
}

/**
 * Asks for confirmation in a modal <dialog>; resolves true when confirmed.
 * Escape and "Cancel" resolve false; focus returns where it was.
 */
export function confirmDialog({ title, body, confirm = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const back = document.activeElement;
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId },
      h('form', { method: 'dialog' },
        h('h2', { id: titleId }, title),
        typeof body === 'string' ? h('p', {}, body) : body,
        h('div', { class: 'actions' },
          h('button', { value: 'cancel', class: 'btn secondary', autofocus: true }, 'Cancel'),
          h('button', { value: 'ok', class: danger ? 'btn danger' : 'btn' }, confirm))));
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      dialog.remove();
      if (back && back.focus) back.focus();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A section with a heading; `level` 2 by default. */
export function section(title, ...children) {
  const id = `s-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', { 'aria-labelledby': id, class: 'card' }, h('h2', { id }, title), ...children);
}

/** Sets the busy state of a button while `fn` runs. */
export async function busy(button, fn, label) {
  const old = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  if (label) button.textContent = label;
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = old;
  }
}

/** Waits `ms` milliseconds (between polls of a job). */
export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
