// The dashboard: one card per music service with its health, a warning for any
// connection that must be authorized again (with the button that fixes it), the list
// size and the last and next enforcement.

import { api } from '../api.js';
import { h, badge, time, toast, confirmDialog, providerName, setProviderNames, errorBox, section, busy } from '../ui.js';

/** The link that starts (or restarts) connecting `provider`: the browser goes to the service and comes back. */
export function connectHref(provider) {
  return `/api/v1/connections/${encodeURIComponent(provider)}/authorize?redirect=true`;
}

const CONNECT_ERRORS = {
  authorization_denied: 'You did not allow access, so nothing was connected.',
  invalid_state: 'That connection request expired or was already used. Please try again.',
  invalid_code: 'The service refused the authorization. Please try again.',
};

export async function render(main, ctx) {
  const [summary, connections] = await Promise.all([api('/analytics/summary'), api('/connections')]);
  setProviderNames(connections.available);
  const byProvider = Object.fromEntries(connections.items.map((c) => [c.provider, c]));

  main.append(h('h1', {}, 'Dashboard'));

  const connected = ctx.query.get('connected');
  const failed = ctx.query.get('connect_error');
  if (connected) {
    main.append(h('div', { class: 'banner ok', role: 'status' },
      h('p', {}, `${providerName(connected)} is connected. `, h('a', { href: '/enforce', 'data-link': true }, 'Scan and clean up your library'), '.')));
    history.replaceState(null, '', '/dashboard');
  } else if (failed) {
    const p = ctx.query.get('provider');
    main.append(h('div', { class: 'banner error', role: 'alert' },
      h('p', {}, `${providerName(p)} could not be connected. ${CONNECT_ERRORS[failed] || `(${failed})`}`),
      p ? h('a', { class: 'btn small', href: connectHref(p) }, `Try connecting ${providerName(p)} again`) : null));
    history.replaceState(null, '', '/dashboard');
  }

  const broken = connections.items.filter((c) => c.status === 'needs_reauth' || c.status === 'error');
  for (const c of broken) {
    main.append(h('div', { class: 'banner warn', role: 'alert' },
      h('p', {}, h('strong', {}, `${c.display_name} needs you to sign in again. `),
        'Until you do, dnp cannot check or clean this library.'),
      h('a', { class: 'btn small', href: connectHref(c.provider) }, `Reconnect ${c.display_name}`)));
  }

  // Figures.
  main.append(h('ul', { class: 'stats', 'aria-label': 'At a glance' },
    h('li', {}, h('span', { class: 'figure' }, String(summary.dnp_list_size)),
      h('a', { href: '/dnp', 'data-link': true }, summary.dnp_list_size === 1 ? 'artist on your list' : 'artists on your list')),
    h('li', {}, h('span', { class: 'label' }, 'Last clean-up'), h('span', { class: 'value' }, time(summary.last_enforcement_at))),
    h('li', {}, h('span', { class: 'label' }, 'Next scheduled'),
      h('span', { class: 'value' }, summary.next_scheduled_run ? time(summary.next_scheduled_run) : h('a', { href: '/settings', 'data-link': true }, 'Not scheduled')))));

  // Connection cards.
  const cards = h('ul', { class: 'cards' });
  for (const p of connections.available) {
    const c = byProvider[p.id];
    const needs = c && (c.status === 'needs_reauth' || c.status === 'error');
    const disconnect = c ? h('button', {
      type: 'button', class: 'btn secondary small',
      onclick: async (e) => {
        const ok = await confirmDialog({
          title: `Disconnect ${p.display_name}?`,
          body: 'dnp forgets its access to this service and the copy of the library it scanned. Your library itself is not changed.',
          confirm: 'Disconnect', danger: true,
        });
        if (!ok) return;
        try {
          await busy(e.target, () => api(`/connections/${encodeURIComponent(p.id)}`, { method: 'DELETE' }));
          toast(`${p.display_name} is disconnected.`);
          ctx.navigate('/dashboard', { replace: true });
        } catch (err) {
          toast(err.message, 'bad');
        }
      },
    }, 'Disconnect') : null;
    const titleId = `card-${p.id}`;
    cards.append(h('li', { class: `card provider ${p.id}`, 'aria-labelledby': titleId },
      h('div', { class: 'card-head' }, h('h2', { id: titleId }, p.display_name), badge(c ? c.status : 'not_connected')),
      c ? h('dl', { class: 'facts' },
        h('dt', {}, 'Connected'), h('dd', {}, time(c.connected_at)),
        h('dt', {}, 'Last used'), h('dd', {}, time(c.last_used_at))) : h('p', { class: 'muted' }, 'Not connected yet.'),
      h('div', { class: 'actions' },
        !c ? h('a', { class: 'btn', href: connectHref(p.id) }, `Connect ${p.display_name}`) : null,
        needs ? h('a', { class: 'btn', href: connectHref(p.id) }, `Reconnect ${p.display_name}`) : null,
        disconnect)));
  }
  main.append(h('h2', { class: 'sr-only' }, 'Your music services'), cards);

  if (!connections.items.length) {
    main.append(h('p', { class: 'hint' }, 'Connect a music service to start. You will be asked to allow access at the service, then brought back here.'));
  } else {
    main.append(h('p', {}, h('a', { class: 'btn', href: '/enforce', 'data-link': true }, 'Clean up my libraries')));
  }

  if (summary.recent_enforcements.length) {
    main.append(section('Recent activity',
      h('ul', { class: 'plain' }, summary.recent_enforcements.map((b) => h('li', {},
        h('a', { href: `/history/${b.id}`, 'data-link': true },
          `${b.kind === 'rollback' ? 'Undo on' : 'Clean-up of'} ${providerName(b.provider)}`),
        ' ', badge(b.status), ` ${b.confirmed} changed · `, time(b.created_at))))));
  }
  return 'Dashboard';
}

export { errorBox };
