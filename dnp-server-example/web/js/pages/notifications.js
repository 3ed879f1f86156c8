// Notifications: what happened while you were away (finished clean-ups, connections that
// need you), newest first; mark them read.

import { api } from '../api.js';
import { h, time, toast, busy } from '../ui.js';
import { refreshUnread } from '../main.js';

export async function render(main) {
  main.append(h('h1', {}, 'Notifications'));
  const list = h('ul', { class: 'plain notifications card' });
  const more = h('button', { type: 'button', class: 'btn secondary small', hidden: true }, 'Show older');
  let cursor = null;
  let shown = 0;
  const load = async () => {
    const page = await api(`/notifications?limit=25${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    shown += page.items.length;
    for (const n of page.items) {
      const item = h('li', { class: n.read_at ? 'read' : 'unread' },
        h('div', {},
          h('div', { class: 'title' }, n.read_at ? null : h('span', { class: 'sr-only' }, 'Unread: '), n.title),
          h('p', {}, n.body),
          h('div', { class: 'muted' }, time(n.created_at))));
      if (!n.read_at) {
        const b = h('button', { type: 'button', class: 'btn secondary small', 'aria-label': `Mark “${n.title}” as read` }, 'Mark as read');
        b.addEventListener('click', async () => {
          try {
            await busy(b, () => api(`/notifications/${encodeURIComponent(n.id)}/read`, { method: 'POST' }));
            item.className = 'read';
            item.querySelector('.sr-only')?.remove();
            b.remove();
            refreshUnread();
            toast('Marked as read.');
          } catch (err) {
            toast(err.message, 'bad');
          }
        });
        item.append(b);
      }
      list.append(item);
    }
  };
  more.addEventListener('click', () => busy(more, load));
  await load();
  if (!shown) main.append(h('p', {}, 'No notifications yet.'));
  else main.append(list, more);
  return 'Notifications';
}
