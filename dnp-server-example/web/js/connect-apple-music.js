// The MusicKit page: configure MusicKit JS with the developer token the server put in the
// page, let the listener authorize, and return the Music User Token (or the refusal) to
// the server's callback with the state of this connection request.

const cfg = JSON.parse(document.getElementById('musickit-config').textContent);
const button = document.getElementById('authorize');
const status = document.getElementById('status');

function back(params) {
  const url = new URL(cfg.redirect_uri);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  url.searchParams.set('state', cfg.state);
  location.assign(url.toString());
}

function musicKitReady() {
  if (window.MusicKit) return Promise.resolve(window.MusicKit);
  return new Promise((resolve, reject) => {
    document.addEventListener('musickitloaded', () => resolve(window.MusicKit), { once: true });
    setTimeout(() => reject(new Error('timeout')), 20000);
  });
}

musicKitReady()
  .then((MusicKit) => MusicKit.configure({ developerToken: cfg.developer_token, app: { name: 'dnp', build: cfg.version } }))
  .then(() => {
    button.disabled = false;
    status.textContent = '';
    button.focus();
  })
  .catch(() => {
    status.textContent = 'Apple’s MusicKit could not be loaded. Check your connection, then reload this page.';
  });

button.addEventListener('click', async () => {
  button.disabled = true;
  status.textContent = 'Waiting for Apple…';
  try {
    const token = await window.MusicKit.getInstance().authorize();
    if (!token) throw new Error('no token');
    status.textContent = 'Connected. Taking you back to dnp…';
    back({ code: token });
  } catch {
    back({ error: 'access_denied' });
  }
});
