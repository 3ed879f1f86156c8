// Sign in or create an account (email and password, then the TOTP code when the account
// has a second factor), or sign in with an identity provider the server offers. An identity
// provider's sign-in into an account with a second factor comes back as ?step=mfa: the
// server holds the step in an HttpOnly cookie, so only the code is asked for.

import { api, serverInfo } from '../api.js';
import { h, toast } from '../ui.js';
import { setUser } from '../main.js';

const IDP_NAMES = { google: 'Google', apple: 'Apple', github: 'GitHub' };

function field(id, label, attrs, hint) {
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null,
    h('input', { id, name: id, ...attrs, 'aria-describedby': hint ? `${id}-hint` : null }));
}

function safeNext(query) {
  const next = query.get('next') || '/dashboard';
  return next.startsWith('/') && !next.startsWith('//') ? next : '/dashboard';
}

export async function render(main, ctx) {
  const info = await serverInfo();
  const mode = ctx.query.get('mode') === 'register' ? 'register' : 'login';
  const error = h('div', { class: 'banner error', role: 'alert', hidden: true });
  const showError = (msg) => { error.hidden = false; error.textContent = msg; };
  // A sign-in with an identity provider that failed comes back as ?error=code.
  const SIGNIN_ERRORS = {
    mfa_expired: 'That sign-in step expired (it lasts 5 minutes). Please sign in again.',
    email_not_verified: 'That account\'s email address is not verified, so dnp cannot use it. Verify it there, or sign in with your email and password.',
    unknown_identity_provider: 'That sign-in option is not available on this server.',
    oauth_state_mismatch: 'That sign-in was not started in this browser, or the browser blocked its cookie. Start again with the button below.',
    invalid_state: 'That sign-in took too long or was already used. Start again with the button below.',
  };
  const failed = ctx.query.get('error');
  if (failed) showError(SIGNIN_ERRORS[failed] || 'Signing in did not work. Please try again.');

  const done = (tokens) => {
    setUser(tokens.user);
    toast(mode === 'register' ? 'Welcome to dnp! Your account is ready.' : 'Signed in.');
    ctx.navigate(safeNext(ctx.query), { replace: true });
  };

  // `verify(code)` resolves with the tokens or throws an ApiError.
  const mfaForm = (verify) => {
    const form = h('form', { class: 'stack', novalidate: true },
      h('h2', {}, 'Enter your 6-digit code'),
      h('p', {}, 'Open your authenticator app and type the code it shows for dnp.'),
      field('totp', 'Code', { inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: '6', required: true }),
      h('button', { class: 'btn', type: 'submit' }, 'Verify'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.hidden = true;
      try {
        done(await verify(form.totp.value.trim()));
      } catch (err) {
        if (err.code === 'invalid_mfa_token') {
          ctx.navigate('/signin?error=mfa_expired', { replace: true });
          return;
        }
        showError(err.message);
        form.totp.focus();
      }
    });
    return form;
  };

  const register = mode === 'register';
  const form = h('form', { class: 'stack', novalidate: true },
    field('email', 'Email address', { type: 'email', autocomplete: 'email', required: true, spellcheck: 'false' }),
    field('password', 'Password', {
      type: 'password', required: true, minlength: register ? '10' : null,
      autocomplete: register ? 'new-password' : 'current-password',
    }, register ? 'At least 10 characters.' : null),
    h('button', { class: 'btn', type: 'submit' }, register ? 'Create account' : 'Sign in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    const email = form.email.value.trim();
    const password = form.password.value;
    if (!email || !password) {
      showError('Enter your email address and password.');
      (email ? form.password : form.email).focus();
      return;
    }
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      const res = await api(register ? '/auth/register' : '/auth/login', { method: 'POST', body: { email, password } });
      if (res.mfa_required) {
        const next = mfaForm((code) => api('/auth/mfa/verify', { method: 'POST', body: { code, mfa_token: res.mfa_token } }));
        form.replaceWith(next);
        next.querySelector('input').focus();
        return;
      }
      done(res);
    } catch (err) {
      showError(err.message);
      form.password.focus();
    } finally {
      button.disabled = false;
    }
  });

  const idps = (info.sign_in_with || []).filter((id) => IDP_NAMES[id]);
  if (ctx.query.get('step') === 'mfa' && !register) {
    const codeForm = mfaForm((code) => api('/auth/oauth/mfa/verify', { method: 'POST', body: { code } }));
    main.append(
      h('div', { class: 'auth' },
        h('h1', {}, 'Sign in to dnp'),
        h('p', { class: 'lead' }, 'Your account has two-step sign-in, so one more step.'),
        error,
        codeForm,
        h('p', { class: 'switch' }, h('a', { href: '/signin', 'data-link': true }, 'Sign in another way'))));
    codeForm.querySelector('input').focus();
    return 'Enter your code';
  }
  main.append(
    h('div', { class: 'auth' },
      h('h1', {}, register ? 'Create your dnp account' : 'Sign in to dnp'),
      h('p', { class: 'lead' }, 'One Do-Not-Play list for all your music services. See what would change before anything does, and undo it in one click.'),
      error,
      form,
      idps.length ? h('div', { class: 'idps' },
        h('p', { class: 'or' }, 'or'),
        idps.map((id) => h('a', { class: `btn secondary idp ${id}`, href: `/api/v1/auth/oauth/${id}/authorize` }, `Continue with ${IDP_NAMES[id]}`))) : null,
      h('p', { class: 'switch' }, register
        ? ['Already have an account? ', h('a', { href: '/signin', 'data-link': true }, 'Sign in')]
        : ['New here? ', h('a', { href: '/signin?mode=register', 'data-link': true }, 'Create an account')])));
  return register ? 'Create account' : 'Sign in';
}
