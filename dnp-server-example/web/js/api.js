// The JSON API client: cookie authentication, the CSRF header on unsafe methods, one
// refresh of the access token on 401, errors as ApiError.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const BASE = '/api/v1';

export function csrfToken() {
  const m = document.cookie.split(';').map((c) => c.trim()).find((c) => c.startsWith('dnp_csrf='));
  return m ? decodeURIComponent(m.slice('dnp_csrf='.length)) : '';
}

let refreshing = null;

/** Trades the refresh cookie for a new access cookie; true when it worked. */
export function refreshSession() {
  if (!refreshing) {
    const token = csrfToken();
    refreshing = (token
      ? fetch(`${BASE}/auth/refresh`, { method: 'POST', headers: { 'X-CSRF-Token': token }, credentials: 'same-origin' })
        .then((r) => r.ok)
        .catch(() => false)
      : Promise.resolve(false)
    ).finally(() => {
      setTimeout(() => { refreshing = null; }, 0);
    });
  }
  return refreshing;
}

async function errorOf(res) {
  let code = 'http_' + res.status;
  let message = `The server answered ${res.status}.`;
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    /* not JSON */
  }
  if (res.status === 429) {
    const wait = res.headers.get('retry-after');
    if (wait) message += ` Try again in ${wait} s.`;
  }
  return new ApiError(res.status, code, message);
}

/**
 * Calls the API. `body` is sent as JSON unless it is a string or Blob (then
 * `contentType` says what it is). Resolves with the parsed JSON (null for 204).
 */
export async function api(path, { method = 'GET', body, contentType, signal, retry = true } = {}) {
  const headers = { Accept: 'application/json' };
  let payload;
  if (body !== undefined) {
    if (typeof body === 'string' || body instanceof Blob) {
      payload = body;
      headers['Content-Type'] = contentType || 'application/octet-stream';
    } else {
      payload = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
  }
  if (!['GET', 'HEAD'].includes(method)) {
    const token = csrfToken();
    if (token) headers['X-CSRF-Token'] = token;
  }
  let res;
  try {
    res = await fetch(BASE + path, { method, headers, body: payload, credentials: 'same-origin', signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection and try again.');
  }
  if (res.status === 401 && retry && !path.startsWith('/auth/')) {
    if (await refreshSession()) return api(path, { method, body, contentType, signal, retry: false });
    const err = await errorOf(res);
    window.dispatchEvent(new CustomEvent('dnp:signedout'));
    throw err;
  }
  if (!res.ok) throw await errorOf(res);
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  return type.includes('json') ? res.json() : res.text();
}

/** Follows a keyset-paginated list to its end (at most `max` items). */
export async function all(path, max = 1000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api(`${path}${sep}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

let info = null;
/** The server's JSON index: providers on offer, identity providers for sign-in. */
export function serverInfo() {
  if (!info) {
    info = fetch('/', { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
      .then((r) => (r.ok ? r.json() : { providers: [], sign_in_with: [] }))
      .catch(() => ({ providers: [], sign_in_with: [] }));
  }
  return info;
}
