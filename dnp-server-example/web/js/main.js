// The single-page application: routes, the signed-in shell, navigation without reloads.

import { api, ApiError, serverInfo } from './api.js';
import { h, toast, setProviderNames } from './ui.js';

const ROUTES = [
  { path: /^\/signin$/, page: 'signin', title: 'Sign in', public: true },
  { path: /^\/(dashboard)?$/, page: 'dashboard', title: 'Dashboard' },
  { path: /^\/dnp$/, page: 'dnp', title: 'My Do-Not-Play list' },
  { path: /^\/enforce$/, page: 'enforce', title: 'Clean up my libraries' },
  { path: /^\/history$/, page: 'history', title: 'History' },
  { path: /^\/history\/([0-9a-f-]{36})$/, page: 'history', title: 'Batch', params: ['id'] },
  { path: /^\/analytics$/, page: 'analytics', title: 'Analytics' },
  { path: /^\/notifications$/, page: 'notifications', title: 'Notifications' },
  { path: /^\/settings$/, page: 'settings', title: 'Settings' },
];

const main = document.getElementById('main');
const state = { me: null, cleanup: null, token: 0 };

/** The signed-in user (null when signed out). */
export function currentUser() {
  return state.me;
}

export function setUser(me) {
  state.me = me;
  document.getElementById('nav').hidden = !me;
  document.getElementById('signout').hidden = !me;
}

/** Goes to `url` (same origin) without reloading. */
export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

function match(pathname) {
  for (const r of ROUTES) {
    const m = pathname.match(r.path);
    if (m) {
      const params = {};
      (r.params || []).forEach((name, i) => { params[name] = m[i + 1]; });
      return { route: r, params };
    }
  }
  return null;
}

async function ensureUser() {
  if (state.me) return state.me;
  try {
    setUser(await api('/me'));
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
    setUser(null);
  }
  return state.me;
}

function markCurrent(pathname) {
  for (const a of document.querySelectorAll('#nav a')) {
    const here = pathname === a.getAttribute('href') || (pathname.startsWith(a.getAttribute('href') + '/'));
    if (here) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

let unreadTimer;
async function refreshUnread() {
  if (!state.me) return;
  try {
    const page = await api('/notifications?unread=true&limit=100');
    const el = document.getElementById('unread');
    const n = page.items.length;
    el.hidden = n === 0;
    el.textContent = n >= 100 ? '99+' : String(n);
    el.setAttribute('aria-label', `${n} unread`);
  } catch {
    /* the badge is a nicety */
  }
}
export { refreshUnread };

async function render() {
  const token = ++state.token;
  if (typeof state.cleanup === 'function') state.cleanup();
  state.cleanup = null;
  const url = new URL(location.href);
  const found = match(url.pathname);
  if (!found) {
    main.replaceChildren(h('h1', { tabindex: '-1' }, 'Page not found'), h('p', {}, h('a', { href: '/dashboard', 'data-link': true }, 'Go to the dashboard')));
    document.title = 'Not found · dnp';
    return;
  }
  let me;
  try {
    me = await ensureUser();
  } catch (e) {
    main.replaceChildren(h('h1', {}, 'dnp'), h('div', { class: 'banner error', role: 'alert' }, e.message));
    return;
  }
  if (!found.route.public && !me) {
    const next = url.pathname + url.search;
    navigate(`/signin${next && next !== '/' && next !== '/dashboard' ? `?next=${encodeURIComponent(next)}` : ''}`, { replace: true });
    return;
  }
  if (found.route.public && me) {
    navigate('/dashboard', { replace: true });
    return;
  }
  markCurrent(url.pathname);
  main.setAttribute('aria-busy', 'true');
  const mod = await import(`./pages/${found.route.page}.js`);
  if (token !== state.token) return;
  const view = h('div', { class: 'page' });
  main.replaceChildren(view);
  const ctx = { params: found.params, query: url.searchParams, me, navigate, main: view };
  try {
    const title = await mod.render(view, ctx);
    if (token !== state.token) return;
    document.title = `${title || found.route.title} · dnp`;
    state.cleanup = ctx.cleanup || null;
  } catch (e) {
    if (token !== state.token) return;
    view.append(h('div', { class: 'banner error', role: 'alert' }, e.message || String(e)));
  } finally {
    main.removeAttribute('aria-busy');
  }
  const heading = view.querySelector('h1');
  if (heading && state.rendered) {
    heading.setAttribute('tabindex', '-1');
    heading.focus();
  }
  state.rendered = true;
  refreshUnread();
}

document.addEventListener('click', (event) => {
  const a = event.target.closest('a[href]');
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (a.target || a.hasAttribute('download') || a.origin !== location.origin) return;
  if (a.getAttribute('href').startsWith('#')) return;
  if (a.pathname.startsWith('/api/') || a.pathname.startsWith('/assets/')) return;
  event.preventDefault();
  navigate(a.pathname + a.search + a.hash);
});

window.addEventListener('popstate', render);

window.addEventListener('dnp:signedout', () => {
  if (!state.me) return;
  setUser(null);
  toast('Your session ended. Please sign in again.', 'warn');
  navigate(`/signin?next=${encodeURIComponent(location.pathname)}`, { replace: true });
});

document.getElementById('signout').addEventListener('click', async () => {
  try {
    await api('/auth/logout', { method: 'POST' });
  } catch {
    /* signed out anyway */
  }
  setUser(null);
  navigate('/signin');
  toast('You are signed out.');
});

clearInterval(unreadTimer);
unreadTimer = setInterval(refreshUnread, 60000);

// Provider names for every page.
serverInfo().then((i) => setProviderNames(i.providers || [])).finally(render);
