// Settings: your name, two-step sign-in (TOTP), scheduled clean-ups, and the default clean-up rules.

import { api } from '../api.js';
import { h, toast, time, section, busy } from '../ui.js';
import { setUser } from '../main.js';

const INTERVALS = [[6, 'Every 6 hours'], [12, 'Every 12 hours'], [24, 'Every day'], [72, 'Every 3 days'], [168, 'Every week']];

function mfaSection(me) {
  const body = h('div', {});
  const draw = () => {
    if (me.mfa_enabled) {
      body.replaceChildren(h('p', {}, h('span', { class: 'badge ok' }, 'On'), ' Signing in asks for a code from your authenticator app.'));
      return;
    }
    const start = h('button', { type: 'button', class: 'btn' }, 'Set up two-step sign-in');
    body.replaceChildren(
      h('p', {}, h('span', { class: 'badge muted' }, 'Off'), ' Add a second step to signing in: a 6-digit code from an authenticator app on your phone.'),
      start);
    start.addEventListener('click', async () => {
      try {
        const setup = await busy(start, () => api('/auth/mfa/setup', { method: 'POST' }));
        const form = h('form', { class: 'stack' },
          h('ol', {},
            h('li', {}, 'Open your authenticator app and add an account. ',
              h('a', { href: setup.otpauth_url }, 'Open it in the app'), ' on this device, or type this key:',
              h('p', { class: 'secret', id: 'mfa-secret' }, setup.secret.replace(/(.{4})/g, '$1 ').trim())),
            h('li', {}, 'Type the 6-digit code the app shows.')),
          h('div', { class: 'field' },
            h('label', { for: 'mfa-code' }, 'Code'),
            h('input', { id: 'mfa-code', name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: '6', required: true })),
          h('button', { type: 'submit', class: 'btn' }, 'Turn on'));
        form.addEventListener('submit', async (e) => {
          e.preventDefault();
          try {
            await busy(form.querySelector('button'), () => api('/auth/mfa/verify', { method: 'POST', body: { code: form.code.value.trim() } }));
            me.mfa_enabled = true;
            setUser(me);
            toast('Two-step sign-in is on.');
            draw();
          } catch (err) {
            toast(err.message, 'bad');
            form.code.focus();
          }
        });
        body.replaceChildren(form);
        form.code.focus();
      } catch (err) {
        toast(err.message, 'bad');
      }
    });
  };
  draw();
  return section('Two-step sign-in', body);
}

function signedInAs(me) {
  return `Signed in as ${me.display_name ? `${me.display_name} (${me.email})` : me.email}.`;
}

function nameSection(me, line) {
  const input = h('input', { id: 'display-name', name: 'display_name', autocomplete: 'name', maxlength: '100', value: me.display_name || '', 'aria-describedby': 'display-name-hint' });
  const form = h('form', { class: 'stack' },
    h('div', { class: 'field' },
      h('label', { for: 'display-name' }, 'Your name'),
      input,
      h('small', { id: 'display-name-hint', class: 'muted' }, 'Up to 100 characters. Leave it empty to show your email address instead.')),
    h('button', { type: 'submit', class: 'btn' }, 'Save name'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = input.value.trim();
    try {
      const saved = await busy(form.querySelector('button'), () => api('/me', { method: 'PATCH', body: { display_name: name || null } }));
      Object.assign(me, saved);
      setUser(me);
      input.value = me.display_name || '';
      line.textContent = signedInAs(me);
      toast(me.display_name ? 'Name saved.' : 'Name removed.');
    } catch (err) {
      toast(err.message, 'bad');
      input.focus();
    }
  });
  return section('Profile', form);
}

export async function render(main, ctx) {
  const [me, settings] = await Promise.all([api('/me'), api('/settings')]);
  const line = h('p', { class: 'muted', id: 'signed-in-as' }, signedInAs(me));
  main.append(h('h1', {}, 'Settings'), line, nameSection(me, line), mfaSection(me));

  // Scheduled clean-ups.
  const on = settings.reenforce_every_hours !== null;
  const select = h('select', { id: 'interval', name: 'interval', disabled: !on },
    INTERVALS.map(([v, label]) => h('option', { value: String(v), selected: settings.reenforce_every_hours === v }, label)),
    on && !INTERVALS.some(([v]) => v === settings.reenforce_every_hours)
      ? h('option', { value: String(settings.reenforce_every_hours), selected: true }, `Every ${settings.reenforce_every_hours} hours`) : null);
  const toggle = h('input', { type: 'checkbox', id: 'auto', name: 'auto', checked: on });
  toggle.addEventListener('change', () => { select.disabled = !toggle.checked; });
  const next = h('p', { class: 'muted', 'aria-live': 'polite' }, settings.next_reenforce_at ? ['Next run: ', time(settings.next_reenforce_at)] : 'Not scheduled.');
  const schedule = h('form', {},
    h('label', { class: 'choice', for: 'auto' }, toggle,
      h('span', {}, 'Clean up automatically', h('small', {}, 'dnp checks your libraries and removes what matches your list, with your default rules below. Every run appears in History and can be undone.'))),
    h('div', { class: 'field' }, h('label', { for: 'interval' }, 'How often'), select),
    next,
    h('button', { type: 'submit', class: 'btn' }, 'Save schedule'));

  // Default rules.
  const p = settings.policy;
  const rules = h('form', {},
    h('div', { class: 'field' }, h('label', { for: 'strictness' }, 'How strict'),
      h('select', { id: 'strictness', name: 'strictness' },
        [['conservative', 'Only their own songs'], ['moderate', 'Their songs and features (recommended)'], ['aggressive', 'Everything linked to them']]
          .map(([v, l]) => h('option', { value: v, selected: p.strictness === v }, l)))),
    h('fieldset', {}, h('legend', {}, 'What to clean'),
      [['liked_tracks', 'Liked songs'], ['saved_albums', 'Saved albums'], ['followed_artists', 'Followed artists'], ['playlist_items', 'Songs in my playlists']]
        .map(([k, l]) => h('label', { class: 'choice' }, h('input', { type: 'checkbox', name: k, checked: p.targets[k] }), h('span', {}, l)))),
    h('fieldset', {}, h('legend', {}, 'Playlists'),
      h('label', { class: 'choice' }, h('input', { type: 'checkbox', name: 'touch_own_playlists', checked: p.touch_own_playlists }), h('span', {}, 'Clean playlists I made')),
      h('label', { class: 'choice' }, h('input', { type: 'checkbox', name: 'touch_collaborative_playlists', checked: p.touch_collaborative_playlists }), h('span', {}, 'Clean collaborative playlists I can edit'))),
    h('label', { class: 'choice' }, h('input', { type: 'checkbox', name: 'use_alternatives', checked: p.use_alternatives }),
      h('span', {}, 'Where a service cannot remove something, rate it “dislike” instead')),
    h('button', { type: 'submit', class: 'btn' }, 'Save rules'));

  const save = async (button, change) => {
    const body = { policy: { ...settings.policy }, reenforce_every_hours: settings.reenforce_every_hours };
    change(body);
    try {
      const saved = await busy(button, () => api('/settings', { method: 'PUT', body }));
      Object.assign(settings, saved);
      next.replaceChildren(...(saved.next_reenforce_at ? ['Next run: ', time(saved.next_reenforce_at)] : ['Not scheduled.']));
      toast('Saved.');
    } catch (err) {
      toast(err.message, 'bad');
    }
  };
  schedule.addEventListener('submit', (e) => {
    e.preventDefault();
    save(schedule.querySelector('button'), (b) => { b.reenforce_every_hours = toggle.checked ? Number(select.value) : null; });
  });
  rules.addEventListener('submit', (e) => {
    e.preventDefault();
    save(rules.querySelector('button'), (b) => {
      b.policy.strictness = rules.strictness.value;
      b.policy.targets = Object.fromEntries(['liked_tracks', 'saved_albums', 'followed_artists', 'playlist_items'].map((k) => [k, rules[k].checked]));
      b.policy.touch_own_playlists = rules.touch_own_playlists.checked;
      b.policy.touch_collaborative_playlists = rules.touch_collaborative_playlists.checked;
      b.policy.use_alternatives = rules.use_alternatives.checked;
    });
  });
  main.append(section('Scheduled clean-ups', schedule), section('Default clean-up rules', rules));
  void ctx;
  return 'Settings';
}
